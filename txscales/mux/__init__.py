"""
The Mux protocol: sans-IO framing and session state machines, and the thin
Twisted protocols (L{txscales.mux.protocol}) that drive them.
"""

# For the protocol packages built on Mux (thriftmux), not for users: what
# they use of Mux.  Not in __all__.
from txscales.mux._client import MuxEndpoint, MuxRequest
from txscales.mux._framing import DEFAULT_MAX_FRAME_SIZE, EncodedContexts
from txscales.mux._messages import MESSAGE_TYPES, R_ERR, R_ERR_LEGACY, RETRIES_KEY
from txscales.mux._serversession import DEFAULT_MAX_PENDING, Dispatch

__all__: "list[str]" = []
