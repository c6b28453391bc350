"""
Destination URIs: C{tcp://host:port[,host:port...]}.
"""

from txscales.errors import BadDestinationError


def parseDestination(dest):
    """
    Parse a static destination.

    @return: a list of (host, port).
    @raise BadDestinationError: for anything else.
    """
    scheme, sep, rest = dest.partition("://")
    if not sep or scheme != "tcp":
        raise BadDestinationError("unsupported destination %r (expected tcp://host:port[,host:port...])" % (dest,))
    hosts = []
    for item in rest.split(","):
        host, colon, port = item.strip().rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadDestinationError("bad host:port %r in destination %r" % (item, dest))
        hosts.append((host, int(port)))
    return hosts
