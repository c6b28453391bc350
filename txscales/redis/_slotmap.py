"""
A Redis Cluster's slot map: which master serves each of the 16384 slots,
read from a C{CLUSTER SHARDS} or C{CLUSTER SLOTS} reply.  Plain Python, no
Twisted.

A slot map is a list of C{SLOTS} entries, each the C{(host, port)} of the
slot's master or None for a slot no master serves: its size is fixed,
whatever a server sends.  The parsers take the replies as hiredis gives
them: RESP2 or RESP3 (a map is a flat list in RESP2, a dict in RESP3),
bytes or str (C{decodeResponses}).
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from txscales.redis._slots import SLOTS

Address = Tuple[str, int]
SlotMap = List[Optional[Address]]

_UNKNOWN_HOSTS = ("", "?")


class SlotMapError(ValueError):
    """
    A C{CLUSTER SHARDS} or C{CLUSTER SLOTS} reply is not one: the map it
    would give is not used.
    """


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None:
        return ""
    raise SlotMapError("expected a string, got %r" % (type(value).__name__,))


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise SlotMapError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    text = _text(value)
    if not text.isdigit():
        raise SlotMapError("expected an integer, got %r" % (text[:40],))
    return int(text)


def _list(value: Any) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise SlotMapError("expected an array, got %r" % (type(value).__name__,))
    return value


def _mapping(value: Any) -> Dict[str, Any]:
    """
    A RESP3 map, or a RESP2 flat list of key, value pairs, as a dict of
    str keys.
    """
    if isinstance(value, dict):
        return {_text(k): v for k, v in value.items()}
    items = _list(value)
    if len(items) % 2:
        raise SlotMapError("a map of %d items" % (len(items),))
    return {_text(items[i]): items[i + 1] for i in range(0, len(items), 2)}


def _address(host: Any, port: Any, via: str) -> Address:
    name = _text(host)
    number = _integer(port)
    if not 0 < number < 65536:
        raise SlotMapError("bad port %d" % (number,))
    return (via if name in _UNKNOWN_HOSTS else name, number)


def _assign(slots: SlotMap, first: int, last: int, address: Address) -> None:
    if not 0 <= first <= last < SLOTS:
        raise SlotMapError("bad slot range %d-%d" % (first, last))
    slots[first : last + 1] = [address] * (last + 1 - first)


def slotMapFromShards(reply: Any, via: str) -> SlotMap:
    """
    Read a C{CLUSTER SHARDS} reply (Redis 7): each shard's slot ranges go to
    its node whose role is master and whose health is not C{failed} (a
    shard without one leaves its slots unserved).

    @param via: the host of the node that answered, for a node whose
        endpoint it does not know (C{?} or empty).
    @return: the slot map.
    @raise SlotMapError: for a reply of another shape.
    """
    slots: SlotMap = [None] * SLOTS
    for shard in _list(reply):
        fields = _mapping(shard)
        ranges = _list(fields.get("slots", []))
        if len(ranges) % 2:
            raise SlotMapError("an odd number of slot bounds")
        master: Optional[Address] = None
        for node in _list(fields.get("nodes", [])):
            info = _mapping(node)
            if _text(info.get("role")) != "master" or _text(info.get("health")) == "failed":
                continue
            if "port" not in info:
                # A TLS-only node: not reachable by this client.
                continue
            host = _text(info.get("endpoint"))
            if host in _UNKNOWN_HOSTS:
                host = _text(info.get("ip"))
            master = _address(host, info["port"], via)
            break
        if master is None:
            continue
        for i in range(0, len(ranges), 2):
            _assign(slots, _integer(ranges[i]), _integer(ranges[i + 1]), master)
    return slots


def slotMapFromSlots(reply: Any, via: str) -> SlotMap:
    """
    Read a C{CLUSTER SLOTS} reply (Redis 3 to 6; deprecated in 7): each
    range's first node is its master.

    @param via: as L{slotMapFromShards}'.
    @return: the slot map.
    @raise SlotMapError: for a reply of another shape.
    """
    slots: SlotMap = [None] * SLOTS
    for entry in _list(reply):
        fields = _list(entry)
        if len(fields) < 3:
            raise SlotMapError("a slot range without a master")
        master = _list(fields[2])
        if len(master) < 2:
            raise SlotMapError("a master without a port")
        _assign(slots, _integer(fields[0]), _integer(fields[1]), _address(master[0], master[1], via))
    return slots


def masters(slots: SlotMap) -> List[Address]:
    """
    @return: the addresses serving at least one slot, sorted.
    """
    return sorted(set(address for address in slots if address is not None))


def served(slots: SlotMap) -> int:
    """
    @return: how many slots have a master.
    """
    return sum(1 for address in slots if address is not None)
