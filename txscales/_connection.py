"""
What the protocols' connections share.
"""

from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import HostnameEndpoint


def noDelay(transport) -> None:
    """
    Turn off Nagle's algorithm: RPC protocols write small messages and wait
    for their answers, and Nagle with delayed ACKs would hold them ~40 ms.
    """
    setTcpNoDelay = getattr(transport, "setTcpNoDelay", None)
    if setTcpNoDelay is not None:
        try:
            setTcpNoDelay(True)
        except OSError:
            pass


class DiscardedCall(CancelledError):
    """
    A call's Deferred was cancelled and the call discarded.

    @ivar written: whether the request had reached the connection (and so
        may have reached the server).
    """

    def __init__(self, written) -> None:
        CancelledError.__init__(self, "call discarded")
        self.written = written


def tcpEndpoint(reactor, host, port, timeout):
    """
    The protocol clients' default endpoint factory.

    @param timeout: seconds to wait for the connection.
    @return: a C{HostnameEndpoint} for C{host}:C{port}.
    """
    return HostnameEndpoint(reactor, host, port, timeout=timeout)
