"""
The live clients and servers of the process, for the admin pages
(C{/admin/clients}, C{/admin/server}).

A client's stack or a server's listening service adds itself when it is
built; nothing happens per call.  The registry holds them weakly, so that
being listed keeps nothing alive, and a closed client removes itself.
Each entry has a C{describe()} method returning a plain, JSON-ready dict.
"""

import itertools
import weakref
from typing import Any, List


class Registry:
    """
    Weak sets of live clients and servers, listed in the order they were
    added.
    """

    def __init__(self) -> None:
        self._order = itertools.count()
        self._clients: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()
        self._servers: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()

    def addClient(self, client: Any) -> None:
        """
        List C{client} (an object with C{describe()}) until it is removed
        or collected.
        """
        self._clients[client] = next(self._order)

    def removeClient(self, client: Any) -> None:
        """
        Stop listing C{client}, if it is listed.
        """
        self._clients.pop(client, None)

    def addServer(self, server: Any) -> None:
        """
        List C{server} (an object with C{describe()} and C{drainState})
        until it is collected.
        """
        self._servers[server] = next(self._order)

    def clients(self) -> List[Any]:
        """
        @return: the listed clients, oldest first.
        """
        return _ordered(self._clients)

    def servers(self) -> List[Any]:
        """
        @return: the listed servers, oldest first.
        """
        return _ordered(self._servers)


def _ordered(entries: "weakref.WeakKeyDictionary[Any, int]") -> List[Any]:
    return [entry for entry, _ in sorted(list(entries.items()), key=lambda item: item[1])]


REGISTRY = Registry()
"""The registry every client and server of the process adds itself to."""
