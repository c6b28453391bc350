"""
Twisted protocols for Mux, client and server.

They are thin: received bytes go to a sans-IO session
(L{txscales.mux._session}), the session's events become Deferred results,
and whatever the session wants written is written.  Time comes from an
injected clock.
"""

from txscales.mux._clientprotocol import MuxClientProtocol
from txscales.mux._serverprotocol import MuxServerFactory, MuxServerProtocol, Request

__all__ = ["MuxClientProtocol", "MuxServerProtocol", "MuxServerFactory", "Request"]

# Also here, for txscales' protocol packages and their tests: what a
# discarded call fails with, and the servers' default limits.  Not in
# __all__.
from txscales._connection import DiscardedCall
from txscales.mux._framing import DEFAULT_MAX_FRAME_SIZE
from txscales.mux._serversession import DEFAULT_MAX_PENDING
