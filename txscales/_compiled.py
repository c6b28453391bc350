"""
The optional compiled hot path: which modules Cython may compile, and the
switch that keeps their pure-Python source in use.

The modules named in L{MODULES} are plain Python.  When txscales is built
with Cython and a C compiler (C{pip install} does, see setup.py), each also
exists as an extension module beside its C{.py}, built from that same file
(with the C{.pxd} beside it, where one declares C types).  Python's import
system prefers the extension.  L{install}, which C{txscales/__init__.py}
runs first, puts a L{PureFinder} before it, which finds the C{.py} files
instead when C{TXSCALES_NO_EXTENSIONS=1} is set, or when any extension is
older than its sources (a checkout edited since its last build; with a
warning).  The modules are compiled or pure all together: a compiled module
may depend on another's C types.  Standard library only.
"""

import importlib
import os
import sys
import warnings
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from importlib.util import spec_from_file_location
from types import ModuleType
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

MODULES = (
    "txscales._framing",
    "txscales.mux._framing",
    "txscales.mux._messages",
    "txscales.thrift._codec",
)
"""The modules that may be compiled, each from its own C{.py}.  setup.py
reads this tuple (without importing txscales) to know what to build."""

ENVIRONMENT_VARIABLE = "TXSCALES_NO_EXTENSIONS"
"""Set to anything but C{""} or C{"0"}, the pure-Python modules are used."""


def pureForced(environ: Mapping[str, str] = os.environ) -> bool:
    """
    @return: whether C{environ} asks for the pure-Python path.
    """
    return environ.get(ENVIRONMENT_VARIABLE, "") not in ("", "0")


STALE_SECONDS = 1.0
"""How much newer than its extension a source must be for the extension to
be stale: the files of one wheel, written one after the other when it is
installed, are not."""


def _stale(folder: str, leaf: str) -> bool:
    """
    @return: whether C{folder} holds an extension module C{leaf} older than
        its C{.py} or C{.pxd}.
    """
    for suffix in EXTENSION_SUFFIXES:
        extension = os.path.join(folder, leaf + suffix)
        if os.path.isfile(extension):
            built = os.path.getmtime(extension) + STALE_SECONDS
            sources = [os.path.join(folder, leaf + ending) for ending in (".py", ".pxd")]
            return any(os.path.isfile(s) and os.path.getmtime(s) > built for s in sources)
    return False


def staleModules(root: str = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) -> List[str]:
    """
    @param root: the folder that holds the C{txscales} package.
    @return: the names of L{MODULES} whose extension is older than their
        C{.py} or C{.pxd}.
    """
    return [name for name in MODULES if _stale(os.path.join(root, *name.split(".")[:-1]), name.rpartition(".")[2])]


class PureFinder:
    """
    A meta path finder that finds the C{.py} source of the modules it is
    given, never a compiled extension of the same name.

    @ivar names: the dotted names of the modules it finds.
    """

    def __init__(self, names: Iterable[str] = MODULES) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, name: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None
    ) -> Optional[ModuleSpec]:
        """
        @return: the spec of C{name}'s source file, or None for a module
            it was not given (the other finders find it).
        """
        if name not in self.names or path is None:
            return None
        leaf = name.rpartition(".")[2] + ".py"
        for entry in path:
            candidate = os.path.join(entry, leaf)
            if os.path.isfile(candidate):
                return spec_from_file_location(name, candidate)
        return None


def install(environ: Mapping[str, str] = os.environ, root: Optional[str] = None) -> bool:
    """
    Put a L{PureFinder} first on C{sys.meta_path} (once) when C{environ}
    forces the pure path, or when a compiled module under C{root} (by
    default, where this txscales is) is older than its sources, which a
    warning says.

    @return: whether the pure path is in use.
    """
    if any(isinstance(f, PureFinder) for f in sys.meta_path):
        return True
    if not pureForced(environ):
        stale = staleModules() if root is None else staleModules(root)
        if not stale:
            return False
        warnings.warn(
            "txscales runs in pure Python: its compiled modules %s are older than their sources"
            " (rebuild them: scripts/bootstrap, or setup.py build_ext --inplace)" % (", ".join(stale),),
            RuntimeWarning,
            stacklevel=2,
        )
    sys.meta_path.insert(0, PureFinder())
    return True


def isCompiled(module: ModuleType) -> bool:
    """
    @return: whether C{module} was loaded from a compiled extension.
    """
    return (getattr(module, "__file__", None) or "").endswith(tuple(EXTENSION_SUFFIXES))


def compiledModules() -> List[str]:
    """
    @return: the names of L{MODULES} in use as compiled extensions (they
        are imported to find out).
    """
    return [name for name in MODULES if isCompiled(importlib.import_module(name))]


def pureTwins() -> Dict[str, ModuleType]:
    """
    Import a second, pure-Python copy of each of L{MODULES}, beside the
    ones in use, for tests that run both paths on the same inputs.

    The copies import each other and share every other module (so their
    errors are the same classes); C{sys.modules} and the packages'
    attributes are left as they were.

    @return: the copies, by dotted name.
    """
    # The modules in use, and their packages, first: what those import
    # must not see the copies.
    saved = {name: importlib.import_module(name) for name in MODULES}
    for name in MODULES:
        del sys.modules[name]
    finder = PureFinder()
    sys.meta_path.insert(0, finder)
    try:
        return {name: importlib.import_module(name) for name in MODULES}
    finally:
        sys.meta_path.remove(finder)
        for name in MODULES:
            parent, _, leaf = name.rpartition(".")
            sys.modules[name] = saved[name]
            setattr(sys.modules[parent], leaf, saved[name])
