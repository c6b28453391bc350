"""
L{RedisClientBuilder}: a Redis client's options set one by one, as the
ThriftMux client's builder does.
"""

from random import Random
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from txscales.errors import BadDestinationError
from txscales.redis._options import checkOption

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from txscales.redis._client import RedisClient


class RedisClientBuilder:
    """
    Build a Redis client step by step; each setter checks its value
    (raising L{txscales.errors.BadOptionError} for a bad one) and returns
    the builder, and L{build} makes the client.

        >>> client = (Redis.newBuilder().dest("tcp://127.0.0.1:6379")
        ...           .protocol(3).timeout(0.5).build())

    Each setter is an option of L{txscales.redis.Redis.newClient}, which
    documents it; an option not set keeps its default there.
    """

    def __init__(self) -> None:
        self._dest: Optional[str] = None
        self._options: Dict[str, Any] = {}

    def _set(self, name: str, value: Any) -> "RedisClientBuilder":
        checkOption(name, value)
        self._options[name] = value
        return self

    def dest(self, dest: str) -> "RedisClientBuilder":
        """
        Set the servers: C{tcp://host:port[,host:port...]}, a discovery
        URI, or C{redis-cluster://host:port[,host:port...]}.
        """
        if not isinstance(dest, str):
            raise BadDestinationError("a Redis destination is a str, not %r" % (dest,))
        self._dest = dest
        return self

    def password(self, password: Optional[str]) -> "RedisClientBuilder":
        """
        Authenticate with this password.
        """
        return self._set("password", password)

    def username(self, username: Optional[str]) -> "RedisClientBuilder":
        """
        Authenticate as this ACL user (with L{password}).
        """
        return self._set("username", username)

    def db(self, db: int) -> "RedisClientBuilder":
        """
        Use this database number.
        """
        return self._set("db", db)

    def clientName(self, name: Optional[str]) -> "RedisClientBuilder":
        """
        Name the connections (C{CLIENT SETNAME}).
        """
        return self._set("clientName", name)

    def protocol(self, protocol: int) -> "RedisClientBuilder":
        """
        Speak RESP2 (2) or RESP3 (3, with C{HELLO 3}).
        """
        return self._set("protocol", protocol)

    def timeout(self, seconds: Optional[float]) -> "RedisClientBuilder":
        """
        Set each command's timeout (None: none).
        """
        return self._set("timeout", seconds)

    def connectTimeout(self, seconds: float) -> "RedisClientBuilder":
        """
        Set how long connecting, and the handshake, may take.
        """
        return self._set("connectTimeout", seconds)

    def maxPending(self, count: int) -> "RedisClientBuilder":
        """
        Set how many commands may wait for their replies per server.
        """
        return self._set("maxPending", count)

    def decodeResponses(self, decode: bool = True) -> "RedisClientBuilder":
        """
        Give replies as str (UTF-8) instead of bytes.
        """
        return self._set("decodeResponses", decode)

    def backoff(self, backoff: Tuple[float, float]) -> "RedisClientBuilder":
        """
        Set the C{(start, maximum)} seconds between reconnection attempts.
        """
        return self._set("backoff", backoff)

    def maxTransactionRetries(self, count: int) -> "RedisClientBuilder":
        """
        Set how often a transaction runs again after a WATCH conflict.
        """
        return self._set("maxTransactionRetries", count)

    def blockingPoolSize(self, size: int) -> "RedisClientBuilder":
        """
        Set how many connections of blocking commands (BLPOP, ...) a
        server may have.
        """
        return self._set("blockingPoolSize", size)

    def maxRedirects(self, count: int) -> "RedisClientBuilder":
        """
        Set how many MOVED or ASK redirects a Redis Cluster command follows.
        """
        return self._set("maxRedirects", count)

    def maxClusterRetries(self, count: int) -> "RedisClientBuilder":
        """
        Set how often a Redis Cluster command that did not reach a server is
        sent again.
        """
        return self._set("maxClusterRetries", count)

    def stats(self, enabled: bool = True, registry: "Optional[CollectorRegistry]" = None) -> "RedisClientBuilder":
        """
        Count in prometheus metrics (on by default), in C{registry} when
        given.
        """
        self._set("stats", enabled)
        return self if registry is None else self._set("registry", registry)

    def label(self, label: str) -> "RedisClientBuilder":
        """
        Name the client in metrics (default: its destination).
        """
        return self._set("label", label)

    def reactor(self, reactor: Any) -> "RedisClientBuilder":
        """
        Use C{reactor} (and its clock) instead of the global reactor.
        """
        return self._set("reactor", reactor)

    def random(self, random: Random) -> "RedisClientBuilder":
        """
        Use C{random} for the backoff's jitter.
        """
        return self._set("random", random)

    def build(self) -> "RedisClient":
        """
        @return: the client.
        @raise BadDestinationError: without a valid destination.
        """
        if self._dest is None:
            raise BadDestinationError("no destination set: call .dest(uri) first")
        from txscales.redis import Redis

        return Redis.newClient(self._dest, **self._options)
