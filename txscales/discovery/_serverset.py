"""
Serverset members as Finagle and Aurora write them: plain Python.

A member is a znode C{member_<sequence>} holding the JSON of a
C{ServiceInstance}::

    {"serviceEndpoint": {"host": "10.0.0.1", "port": 9090},
     "additionalEndpoints": {"admin": {"host": "10.0.0.1", "port": 9990}},
     "status": "ALIVE", "shard": 3, "metadata": {"k": "v"}}
"""

import json
from typing import Any, Dict, Optional, Tuple

from txscales.errors import BadMemberError

MEMBER_PREFIX = "member_"
STATUSES = ("DEAD", "STARTING", "ALIVE", "STOPPING", "STOPPED", "WARNING")


class Member:
    """
    One serverset member.

    @ivar host: the chosen endpoint's host.
    @ivar port: the chosen endpoint's port.
    @ivar status: C{"ALIVE"}, C{"DEAD"}, ...
    @ivar shard: the shard number, or None.
    @ivar metadata: a dict of strings.
    @ivar endpoints: every named endpoint, name -> (host, port); the
        service endpoint is under the name None.
    """

    def __init__(
        self,
        host: str,
        port: int,
        status: str = "ALIVE",
        shard: Optional[int] = None,
        metadata: Optional[Dict[str, str]] = None,
        endpoints: Optional[Dict[Optional[str], Tuple[str, int]]] = None,
    ) -> None:
        self.host = host
        self.port = port
        self.status = status
        self.shard = shard
        self.metadata = metadata or {}
        self.endpoints = endpoints if endpoints is not None else {None: (host, port)}

    @property
    def alive(self) -> bool:
        """
        Whether the member takes traffic (status C{ALIVE}).
        """
        return self.status == "ALIVE"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Member) and (self.host, self.port, self.status, self.shard, self.metadata) == (
            other.host,
            other.port,
            other.status,
            other.shard,
            other.metadata,
        )

    def __repr__(self) -> str:
        return "Member(%s:%d, %s)" % (self.host, self.port, self.status)


def _endpoint(value: Any, what: str) -> Tuple[str, int]:
    if not isinstance(value, dict):
        raise BadMemberError("%s is not an object" % (what,))
    host, port = value.get("host"), value.get("port")
    if not isinstance(host, str) or not host or not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise BadMemberError("%s has no valid host and port" % (what,))
    return host, port


def parseMember(data: bytes, endpointName: Optional[str] = None) -> Optional[Member]:
    """
    Parse a member znode's data.

    @param data: the znode's bytes.
    @param endpointName: the C{additionalEndpoints} entry to use, or None
        for C{serviceEndpoint}.
    @return: a L{Member}, or None when the member has no endpoint of that
        name.
    @raise BadMemberError: for data that is not a valid ServiceInstance.
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadMemberError("member data is not JSON: %s" % (e,))
    if not isinstance(document, dict):
        raise BadMemberError("member data is not a JSON object")
    endpoints: Dict[Optional[str], Tuple[str, int]] = {
        None: _endpoint(document.get("serviceEndpoint"), "serviceEndpoint")
    }
    additional = document.get("additionalEndpoints") or {}
    if not isinstance(additional, dict):
        raise BadMemberError("additionalEndpoints is not an object")
    for name, value in additional.items():
        endpoints[name] = _endpoint(value, "additionalEndpoints[%r]" % (name,))
    status = document.get("status", "ALIVE")
    if status not in STATUSES:
        raise BadMemberError("unknown status %r" % (status,))
    shard = document.get("shard")
    if shard is not None and (not isinstance(shard, int) or isinstance(shard, bool)):
        raise BadMemberError("shard %r is not an integer" % (shard,))
    metadata = document.get("metadata") or {}
    if endpointName not in endpoints:
        return None
    host, port = endpoints[endpointName]
    return Member(host, port, status, shard, metadata, endpoints)


def formatMember(
    host: str,
    port: int,
    status: str = "ALIVE",
    shard: Optional[int] = None,
    metadata: Optional[Dict[str, str]] = None,
    additionalEndpoints: Optional[Dict[str, Tuple[str, int]]] = None,
) -> bytes:
    """
    @return: the JSON bytes of a member, in Finagle's layout.
    """
    document: Dict[str, Any] = {
        "serviceEndpoint": {"host": host, "port": port},
        "additionalEndpoints": {
            name: {"host": h, "port": p} for name, (h, p) in (additionalEndpoints or {}).items()
        },
        "status": status,
    }
    if shard is not None:
        document["shard"] = shard
    if metadata:
        document["metadata"] = metadata
    return json.dumps(document, sort_keys=True).encode("utf-8")


def parseZooKeeperUri(uri: str) -> Tuple[str, str, Optional[str]]:
    """
    Parse C{zk://host:port[,host:port...]/path[#endpointName]}.

    @return: (hosts string for kazoo, path, endpoint name or None).
    @raise txscales.errors.BadDestinationError: for anything else.
    """
    from txscales.errors import BadDestinationError

    scheme, sep, rest = uri.partition("://")
    if scheme != "zk" or not sep:
        raise BadDestinationError("not a zk:// destination: %r" % (uri,))
    rest, _, endpointName = rest.partition("#")
    hosts, slash, path = rest.partition("/")
    if not hosts or not slash or not path.strip("/"):
        raise BadDestinationError("zk:// destination needs hosts and a path: %r" % (uri,))
    for item in hosts.split(","):
        host, colon, port = item.rpartition(":")
        if not colon or not host or not port.isdigit():
            raise BadDestinationError("bad ZooKeeper host:port %r in %r" % (item, uri))
    return hosts, "/" + path.strip("/"), endpointName or None
