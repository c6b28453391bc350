"""
txscales: Twisted-native RPC.

ThriftMux client and server byte-compatible with Finagle, with more protocols
behind one client stack.  The protocol facades live in subpackages (for
example L{txscales.thriftmux.ThriftMux}); this package exports the version and
the error classes, and imports nothing outside the standard library.
"""

from txscales._version import __version__
from txscales.errors import TxScalesError

__all__ = ["__version__", "TxScalesError"]
