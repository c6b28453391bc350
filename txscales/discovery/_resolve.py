"""
Destinations: the static one, and resolution of URIs by scheme.
"""

from typing import Any, Callable, Dict, Iterable, List, Tuple

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from txscales._plugins import findPlugin
from txscales.errors import BadDestinationError
from txscales.interfaces import IDestination, IDiscoveryScheme


@implementer(IDestination)
class StaticDestination:
    """
    A fixed list of servers.
    """

    def __init__(self, addresses: Iterable[Tuple[str, int]]) -> None:
        self.addresses = list(addresses)
        self.ready = succeed(self.addresses)

    def describe(self) -> Dict[str, Any]:
        """
        @return: the destination for the admin page: C{static}, and its
            servers as C{members}.
        """
        return {"kind": "static", "members": [{"host": host, "port": port} for host, port in self.addresses]}

    def watch(self, callback: Callable[[List[Tuple[str, int]]], object]) -> Callable[[], None]:
        callback(self.addresses)
        return lambda: None

    def close(self) -> "Deferred[None]":
        return succeed(None)


def parseStatic(uri: str) -> List[Tuple[str, int]]:
    """
    Parse C{tcp://host:port[,host:port...]}.

    @return: a list of (host, port).
    @raise BadDestinationError: for anything else.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme != "tcp":
        raise BadDestinationError("not a tcp:// destination: %r" % (uri,))
    hosts = []
    for item in rest.split(","):
        host, colon, port = item.strip().rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadDestinationError("bad host:port %r in destination %r" % (item, uri))
        hosts.append((host, int(port)))
    return hosts


def resolveDestination(uri: str, reactor: Any, **options: Any) -> IDestination:
    """
    Resolve C{uri} with the discovery plugin of its scheme.

    @return: an L{IDestination}.
    @raise BadDestinationError: for a URI without a scheme, or a malformed
        one.
    @raise txscales.errors.UnknownPluginError: when no plugin handles its
        scheme.
    """
    if not isinstance(uri, str) or "://" not in uri:
        raise BadDestinationError("destination %r has no scheme (tcp://, zk://, ...)" % (uri,))
    scheme = uri.partition("://")[0]
    plugin = findPlugin(IDiscoveryScheme, scheme, "discovery scheme", key="scheme")
    return plugin.resolve(uri, reactor, **options)
