"""
Serverset members as Finagle and Aurora write them: plain Python.

A member is a znode C{member_<sequence>} holding the JSON of a
C{ServiceInstance}::

    {"serviceEndpoint": {"host": "10.0.0.1", "port": 9090},
     "additionalEndpoints": {"admin": {"host": "10.0.0.1", "port": 9990}},
     "status": "ALIVE", "shard": 3, "metadata": {"k": "v"}}
"""

import ipaddress
import json
import re
from typing import Any, Dict, Optional, Tuple

from txscales.errors import BadMemberError

MEMBER_PREFIX = "member_"
STATUSES = ("DEAD", "STARTING", "ALIVE", "STOPPING", "STOPPED", "WARNING")

MAX_MEMBER_SIZE = 64 * 1024
"""The largest member data accepted, in bytes (Finagle's are a few hundred)."""
MAX_DEPTH = 8
"""The deepest nesting of JSON objects and arrays accepted in a member."""
MAX_HOST_LENGTH = 253
"""The longest host accepted: a DNS name's limit."""

_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?\Z")
_NESTING = re.compile(rb'[\[\]{}"\\]')


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


def _checkDepth(data: bytes) -> None:
    """
    Refuse JSON nested deeper than L{MAX_DEPTH}, before parsing it (the
    parser recurses once per level).

    @param data: the member's bytes.
    @raise BadMemberError: when it nests too deep.
    """
    depth = 0
    inString = escaped = False
    for match in _NESTING.finditer(data):
        char = match.group()
        if inString:
            if escaped:
                escaped = False
            elif char == b"\\":
                # It escapes the next byte, which matters only when that
                # is a quote or a backslash.
                escaped = data[match.end() : match.end() + 1] in (b'"', b"\\")
            elif char == b'"':
                inString = False
            continue
        if char == b'"':
            inString = True
        elif char in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise BadMemberError("member data nests deeper than %d levels" % (MAX_DEPTH,))
        elif char in b"]}":
            depth -= 1


def _validHost(host: str) -> bool:
    """
    @return: whether C{host} is a DNS name or an IP address.
    """
    if not 0 < len(host) <= MAX_HOST_LENGTH:
        return False
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    return _HOSTNAME.match(host) is not None


def _endpoint(value: Any, what: str) -> Tuple[str, int]:
    if not isinstance(value, dict):
        raise BadMemberError("%s is not an object" % (what,))
    host, port = value.get("host"), value.get("port")
    if not isinstance(host, str) or not _validHost(host):
        raise BadMemberError("%s has no valid host" % (what,))
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise BadMemberError("%s has no valid port" % (what,))
    return host, port


def parseMember(data: bytes, endpointName: Optional[str] = None) -> Optional[Member]:
    """
    Parse a member znode's data.

    @param data: the znode's bytes.
    @param endpointName: the C{additionalEndpoints} entry to use, or None
        for C{serviceEndpoint}.
    @return: a L{Member}, or None when the member has no endpoint of that
        name.
    @raise BadMemberError: for data that is not a valid ServiceInstance,
        or is larger than L{MAX_MEMBER_SIZE}, or nests deeper than
        L{MAX_DEPTH}.  Nothing else is raised, whatever the data.
    """
    if not isinstance(data, bytes):
        raise BadMemberError("member data is not bytes")
    if len(data) > MAX_MEMBER_SIZE:
        raise BadMemberError("member data of %d bytes exceeds the limit of %d" % (len(data), MAX_MEMBER_SIZE))
    _checkDepth(data)
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BadMemberError("member data is not JSON: %s" % (str(e)[:200],))
    if not isinstance(document, dict):
        raise BadMemberError("member data is not a JSON object")
    endpoints: Dict[Optional[str], Tuple[str, int]] = {
        None: _endpoint(document.get("serviceEndpoint"), "serviceEndpoint")
    }
    additional = document.get("additionalEndpoints") or {}
    if not isinstance(additional, dict):
        raise BadMemberError("additionalEndpoints is not an object")
    for name, value in additional.items():
        endpoints[name] = _endpoint(value, "additionalEndpoints[%r]" % (name[:100],))
    status = document.get("status", "ALIVE")
    if not isinstance(status, str) or status not in STATUSES:
        raise BadMemberError("unknown status %.100r" % (status,))
    shard = document.get("shard")
    if shard is not None and (not isinstance(shard, int) or isinstance(shard, bool) or not -(2**31) <= shard < 2**31):
        raise BadMemberError("shard %.100r is not a 32-bit integer" % (shard,))
    metadata = document.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise BadMemberError("metadata is not an object of strings")
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
