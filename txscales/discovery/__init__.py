"""
Service discovery: destinations resolved by plugins keyed by URI scheme.

C{tcp://host:port[,host:port...]} is a static list;
C{zk://zkhost:port[,zkhost:port...]/path[#endpointName]} follows a
ZooKeeper serverset (Finagle's and Aurora's JSON members).  Further schemes
come from L{txscales.interfaces.IDiscoveryScheme} plugins in
C{twisted/plugins/}.
"""

from txscales.discovery._resolve import resolveDestination
from txscales.discovery._serverset import Member, formatMember, parseMember

__all__ = ["Member", "formatMember", "parseMember", "resolveDestination"]
