"""
txscales: Twisted-native RPC.

ThriftMux client and server byte-compatible with Finagle, with more protocols
behind one client stack.  The protocol facades live in subpackages (for
example L{txscales.thriftmux.ThriftMux}); this package exports the version,
the error classes and L{compiled}, and imports nothing outside the standard
library.
"""

from txscales import _compiled

# First: TXSCALES_NO_EXTENSIONS=1 must be seen before any compiled module
# is imported.
_compiled.install()

from txscales._version import __version__  # noqa: E402
from txscales.errors import TxScalesError  # noqa: E402

__all__ = ["__version__", "TxScalesError", "compiled"]

compiled: bool
"""Whether the compiled hot path is in use: True when every module that
txscales can compile was built and is loaded compiled; False on the
pure-Python path (no C compiler or Cython at install time, a compiled
module older than its source, or C{TXSCALES_NO_EXTENSIONS=1} set before
txscales was imported)."""


def __getattr__(name: str) -> bool:
    # Found on first use: the compiled modules import the Thrift library,
    # and this package imports nothing outside the standard library.
    if name == "compiled":
        return len(_compiled.compiledModules()) == len(_compiled.MODULES)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
