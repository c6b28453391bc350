"""
Which packages txscales installs, and its optional compiled modules;
everything else is in pyproject.toml.

Twisted finds plugins in every C{twisted/plugins/} folder on C{sys.path}, and
by Twisted's convention neither C{twisted/} nor C{twisted/plugins/} has an
C{__init__.py}: C{find_packages()} cannot see the folder, so it is listed by
hand beside the C{txscales} packages (pyproject.toml cannot combine a found
list with a written one). C{find_packages()} finds a C{txscales} package by its
C{__init__.py}; a folder without one is not installed, which
C{scripts/check-wheel} reports.

C{package_dir={"": "."}} makes an editable install put the checkout itself on
C{sys.path}, so that twistd finds C{twisted/plugins/txscales_*.py} there.

The compiled modules: Cython (a build requirement in pyproject.toml)
compiles each module of C{txscales._compiled.MODULES} from its own C{.py},
with the C{.pxd} beside it where there is one, into an extension module of
the same name.  They are optional: without Cython, without a C compiler, or
when a module fails to compile, the build goes on and that module stays
pure Python (a warning says so).  C{TXSCALES_NO_EXTENSIONS=1} at build time
builds none.
"""

import ast
import os
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def compiledModules():
    """
    @return: C{txscales._compiled.MODULES}, read without importing txscales.
    """
    with open(os.path.join(HERE, "txscales", "_compiled.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["MODULES"]:
            return ast.literal_eval(node.value)
    raise RuntimeError("txscales/_compiled.py has no MODULES")


def warn(message):
    sys.stderr.write("txscales: %s; that part of txscales stays pure Python\n" % (message,))


def extensions():
    """
    @return: the extension modules to build, or none when they cannot or
        must not be built.
    """
    if os.environ.get("TXSCALES_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        warn("Cython is not installed, no module is compiled")
        return []
    modules = [
        Extension(name, [name.replace(".", "/") + ".py"], extra_compile_args=["-O2", "-g0"])
        for name in compiledModules()
    ]
    try:
        return cythonize(
            modules,
            quiet=True,
            compiler_directives={
                "language_level": 3,
                # Functions that introspect as Python's do.
                "binding": True,
                # The annotations are for mypy: only the .pxd files declare
                # C types, so a compiled function accepts what its pure
                # twin accepts.
                "annotation_typing": False,
            },
        )
    except Exception as e:
        warn("Cython failed (%s)" % (e,))
        return []


class OptionalBuildExt(build_ext):
    """
    Build the extension modules, each optional: a failure leaves its
    module pure Python.
    """

    def run(self):
        try:
            build_ext.run(self)
        except Exception as e:
            warn("the compiled modules could not be built (%s)" % (e,))

    def build_extension(self, ext):
        try:
            build_ext.build_extension(self, ext)
        except Exception as e:
            warn("%s could not be compiled (%s)" % (ext.name, e))


setup(
    package_dir={"": "."},
    packages=find_packages(include=["txscales", "txscales.*"]) + ["twisted.plugins"],
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
)
