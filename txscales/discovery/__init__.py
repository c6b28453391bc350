"""
Service discovery: destinations resolved by plugins keyed by URI scheme.

C{tcp://host:port[,host:port...]} is a static list;
C{zk://zkhost:port[,zkhost:port...]/path[#endpointName]} follows a
ZooKeeper serverset (Finagle's and Aurora's JSON members).  Further schemes
come from L{txscales.interfaces.IDiscoveryScheme} plugins in
C{twisted/plugins/}.
"""

from typing import Any

from txscales.discovery._resolve import parseStatic, resolveDestination
from txscales.discovery._serverset import Member, formatMember, parseMember, parseZooKeeperUri

__all__ = ["AnnouncedService", "Member", "formatMember", "parseMember", "parseStatic", "parseZooKeeperUri", "resolveDestination"]


def __getattr__(name: str) -> Any:
    # Imported on first use: kazoo costs every client its import time.
    if name == "AnnouncedService":
        from txscales.discovery._zookeeper import AnnouncedService

        return AnnouncedService
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
