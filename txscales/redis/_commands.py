"""
The typed helpers of the common commands, shared by the client (each
returns a Deferred of its reply), its pipelines (each queues its command)
and transactions.

A class using them defines C{_call(args, transform)} for a command routed
by its first key (or channel), and C{_callKeys(name, keys, args, combine,
transform)} for a command over several keys, which a sharded client splits
by server.
"""

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

Key = Union[bytes, str]
Value = Union[bytes, str, int, float]
Transform = Optional[Callable[[Any], Any]]

OK_VALUES = (b"OK", "OK")


def isOk(reply: Any) -> bool:
    """
    @return: whether C{reply} is the simple string C{OK}.
    """
    return reply in OK_VALUES


def toDict(reply: Any) -> Dict[Any, Any]:
    """
    @return: a RESP3 map as it is, or a RESP2 flat list of keys and values
        as a dict.
    """
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def toSet(reply: Any) -> set:
    """
    @return: a RESP3 set, or a RESP2 array, as a set.
    """
    return set(reply)


def toFloat(reply: Any) -> Optional[float]:
    """
    @return: a score (a RESP3 double, or a RESP2 bulk string) as a float,
        None for nil.
    """
    return None if reply is None else float(reply)


def toBool(reply: Any) -> bool:
    """
    @return: an integer reply (0 or 1) as a bool.
    """
    return bool(reply)


def toScored(reply: Any) -> List[Tuple[Any, float]]:
    """
    @return: C{(member, score)} pairs from a RESP3 array of pairs or a RESP2
        flat array.
    """
    if reply and isinstance(reply[0], list):
        return [(member, float(score)) for member, score in reply]
    return [(member, float(score)) for member, score in zip(reply[::2], reply[1::2])]


class Commands:
    """
    Typed helpers of the common commands; see the module's docstring.
    """

    def _call(self, args: List[Any], transform: Transform = None) -> Any:
        raise NotImplementedError()

    def _callKeys(self, name: str, keys: Sequence[Key], args: Sequence[Sequence[Any]], combine: str,
                  transform: Transform = None) -> Any:
        raise NotImplementedError()

    # Strings

    def get(self, key: Key) -> Any:
        """
        C{GET}: the value of C{key}, or None.
        """
        return self._call(["GET", key])

    def set(self, key: Key, value: Value, ex: Optional[int] = None, px: Optional[int] = None, nx: bool = False,
            xx: bool = False) -> Any:
        """
        C{SET}: set C{key} to C{value}.

        @param ex: expire after this many seconds.
        @param px: expire after this many milliseconds.
        @param nx: only if C{key} does not exist.
        @param xx: only if C{key} exists.
        @return: (a Deferred of) C{True} when set, C{False} when C{nx} or
            C{xx} prevented it.
        """
        args: List[Any] = ["SET", key, value]
        if ex is not None:
            args += ["EX", ex]
        if px is not None:
            args += ["PX", px]
        if nx:
            args.append("NX")
        if xx:
            args.append("XX")
        return self._call(args, isOk)

    def mget(self, *keys: Key) -> Any:
        """
        C{MGET}: the values of C{keys} (None for a missing one), in order;
        a sharded client asks each server for its keys and joins the
        replies.
        """
        return self._callKeys("MGET", keys, [[key] for key in keys], "list")

    def mset(self, mapping: Mapping[Key, Value]) -> Any:
        """
        C{MSET}: set every key of C{mapping} to its value; a sharded client
        sends each server its keys (atomic on each server, not across
        them).

        @return: (a Deferred of) C{True}.
        """
        items = list(mapping.items())
        return self._callKeys("MSET", [k for k, _ in items], [[k, v] for k, v in items], "all", isOk)

    # Keys

    def delete(self, *keys: Key) -> Any:
        """
        C{DEL}: remove C{keys}.

        @return: (a Deferred of) how many existed.
        """
        return self._callKeys("DEL", keys, [[key] for key in keys], "sum")

    def exists(self, *keys: Key) -> Any:
        """
        C{EXISTS}: how many of C{keys} exist (a key named twice counts
        twice).
        """
        return self._callKeys("EXISTS", keys, [[key] for key in keys], "sum")

    def expire(self, key: Key, seconds: int) -> Any:
        """
        C{EXPIRE}: expire C{key} after C{seconds}.

        @return: (a Deferred of) C{True} if the key exists.
        """
        return self._call(["EXPIRE", key, seconds], toBool)

    def ttl(self, key: Key) -> Any:
        """
        C{TTL}: the seconds C{key} has left, -1 without expiry, -2 when
        missing.
        """
        return self._call(["TTL", key])

    # Counters

    def incr(self, key: Key) -> Any:
        """
        C{INCR}: add one to C{key}; the new value.
        """
        return self._call(["INCR", key])

    def incrby(self, key: Key, amount: int) -> Any:
        """
        C{INCRBY}: add C{amount} to C{key}; the new value.
        """
        return self._call(["INCRBY", key, amount])

    def decr(self, key: Key) -> Any:
        """
        C{DECR}: take one from C{key}; the new value.
        """
        return self._call(["DECR", key])

    # Hashes

    def hget(self, key: Key, field: Key) -> Any:
        """
        C{HGET}: the value of C{field} in the hash C{key}, or None.
        """
        return self._call(["HGET", key, field])

    def hset(self, key: Key, field: Optional[Key] = None, value: Optional[Value] = None,
             mapping: Optional[Mapping[Key, Value]] = None) -> Any:
        """
        C{HSET}: set C{field} to C{value}, and every field of C{mapping},
        in the hash C{key}.

        @return: (a Deferred of) how many fields were added.
        """
        args: List[Any] = ["HSET", key]
        if field is not None:
            args += [field, value]
        for k, v in (mapping or {}).items():
            args += [k, v]
        return self._call(args)

    def hgetall(self, key: Key) -> Any:
        """
        C{HGETALL}: the hash C{key} as a dict (empty when missing), with
        RESP2 and RESP3 alike.
        """
        return self._call(["HGETALL", key], toDict)

    def hdel(self, key: Key, *fields: Key) -> Any:
        """
        C{HDEL}: remove C{fields} from the hash C{key}; how many existed.
        """
        return self._call(["HDEL", key, *fields])

    # Lists

    def lpush(self, key: Key, *values: Value) -> Any:
        """
        C{LPUSH}: put C{values} at the head of the list C{key}; its length.
        """
        return self._call(["LPUSH", key, *values])

    def rpush(self, key: Key, *values: Value) -> Any:
        """
        C{RPUSH}: put C{values} at the tail of the list C{key}; its length.
        """
        return self._call(["RPUSH", key, *values])

    def lpop(self, key: Key) -> Any:
        """
        C{LPOP}: remove and return the head of the list C{key}, or None.
        """
        return self._call(["LPOP", key])

    def rpop(self, key: Key) -> Any:
        """
        C{RPOP}: remove and return the tail of the list C{key}, or None.
        """
        return self._call(["RPOP", key])

    def lrange(self, key: Key, start: int, stop: int) -> Any:
        """
        C{LRANGE}: the elements of the list C{key} from C{start} to C{stop}
        (inclusive; negative counts from the end).
        """
        return self._call(["LRANGE", key, start, stop])

    # Sets

    def sadd(self, key: Key, *members: Value) -> Any:
        """
        C{SADD}: add C{members} to the set C{key}; how many were new.
        """
        return self._call(["SADD", key, *members])

    def srem(self, key: Key, *members: Value) -> Any:
        """
        C{SREM}: remove C{members} from the set C{key}; how many were there.
        """
        return self._call(["SREM", key, *members])

    def smembers(self, key: Key) -> Any:
        """
        C{SMEMBERS}: the members of the set C{key}, as a Python set.
        """
        return self._call(["SMEMBERS", key], toSet)

    # Sorted sets

    def zadd(self, key: Key, mapping: Mapping[Value, float]) -> Any:
        """
        C{ZADD}: add each member of C{mapping} with its score to the sorted
        set C{key}; how many were new.
        """
        args: List[Any] = ["ZADD", key]
        for member, score in mapping.items():
            args += [score, member]
        return self._call(args)

    def zrange(self, key: Key, start: int, stop: int, withscores: bool = False) -> Any:
        """
        C{ZRANGE}: the members of the sorted set C{key} by rank from
        C{start} to C{stop} (inclusive).

        @param withscores: give C{(member, score)} pairs, scores as floats.
        """
        if withscores:
            return self._call(["ZRANGE", key, start, stop, "WITHSCORES"], toScored)
        return self._call(["ZRANGE", key, start, stop])

    def zscore(self, key: Key, member: Value) -> Any:
        """
        C{ZSCORE}: the score of C{member} in the sorted set C{key} as a
        float, or None.
        """
        return self._call(["ZSCORE", key, member], toFloat)

    # Pub/sub

    def publish(self, channel: Key, message: Value) -> Any:
        """
        C{PUBLISH}: send C{message} to C{channel}'s subscribers; how many
        received it.  A sharded client sends it to the channel's server, as
        for a key of that name.
        """
        return self._call(["PUBLISH", channel, message])
