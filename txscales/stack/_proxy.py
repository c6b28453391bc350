"""
The base of the protocols' client proxies: what every client built on a
L{txscales.stack.ClientStack} offers besides its calls.
"""

from typing import TYPE_CHECKING, Any, Optional, TypeVar

from twisted.internet.defer import Deferred

if TYPE_CHECKING:
    from txscales.stack._clientstack import ClientStack

_UNSET: Any = object()
_Client = TypeVar("_Client", bound="StackClient")


class StackClient:
    """
    Base of the client proxies whose calls go through a
    L{txscales.stack.ClientStack} (in C{self.stack}, with the default
    timeout in C{self._timeout}).
    """

    stack: "ClientStack"
    _timeout: Optional[float]

    def withOptions(self: _Client, timeout: Optional[float] = _UNSET) -> _Client:
        """
        Return a view of this client that shares its connections but uses
        other options for its calls.

        @param timeout: the per-call timeout in seconds, or None for none.
        """
        view = type(self).__new__(type(self))
        view.__dict__.update(self.__dict__)
        if timeout is not _UNSET:
            view._timeout = timeout
        return view

    def whenReady(self: _Client) -> "Deferred[_Client]":
        """
        @return: a Deferred firing with the client once its destination has
            given the first set of servers (at once for C{tcp://}), or
            failing with L{txscales.errors.DiscoveryError} (for example when
            ZooKeeper cannot be reached within C{discoveryTimeout}).
        """
        return self.stack.whenReady().addCallback(lambda _: self)

    def close(self) -> Deferred:
        """
        Close the client's connections (those in use once their call
        ends); later calls fail with L{txscales.errors.ClientClosedError}.

        @return: a Deferred firing when they are closed.
        """
        return self.stack.close()
