"""
txscales' discovery schemes as plugins; the real code is imported only when
a destination is resolved.
"""

from importlib import import_module

from twisted.plugin import IPlugin
from zope.interface import implementer

from txscales.interfaces import IDiscoveryScheme


@implementer(IPlugin, IDiscoveryScheme)
class _Static:
    """
    The C{tcp://} scheme: a static list of servers.
    """

    scheme = "tcp"
    description = "A static list: tcp://host:port[,host:port...]."

    def resolve(self, uri, reactor, **options):
        module = import_module("txscales.discovery._resolve")
        return module.StaticDestination(module.parseStatic(uri))


@implementer(IPlugin, IDiscoveryScheme)
class _ZooKeeper:
    """
    The C{zk://} scheme: a ZooKeeper serverset, followed with watches.
    """

    scheme = "zk"
    description = "A ZooKeeper serverset: zk://zkhost:port[,...]/path[#endpointName]."

    def resolve(self, uri, reactor, **options):
        return import_module("txscales.discovery._zookeeper").ZooKeeperScheme().resolve(uri, reactor, **options)


tcp = _Static()
zk = _ZooKeeper()
