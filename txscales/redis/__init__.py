"""
Redis (in progress): a pipelined Redis client, on one server, sharded
over several by ketama consistent hashing, or of a Redis Cluster.

    >>> client = Redis.newClient("tcp://127.0.0.1:6379", timeout=1.0)
    >>> d = client.set("k", "v").addCallback(lambda _: client.get("k"))

Every error is a
L{RedisError} (or another L{txscales.errors.TxScalesError}).
"""

from random import Random
from typing import TYPE_CHECKING, Any, Dict, Literal, Optional, Tuple, Union

from txscales._reactor import defaultReactor
from txscales._registry import REGISTRY
from txscales.discovery import parseStatic, resolveDestination
from txscales.redis._blockingpool import DEFAULT_BLOCKING_POOL_SIZE
from txscales.redis._builder import RedisClientBuilder
from txscales.redis._client import Pipeline, RedisClient, Transaction
from txscales.redis._cluster import CLUSTER_SCHEME, ClusterClient, newClusterClient
from txscales.redis._connection import DEFAULT_MAX_PENDING
from txscales.redis._node import RedisNode, handshakeCommands
from txscales.redis._health import NodeHealth
from txscales.redis._options import checkOptions, failFastDelays
from txscales.redis._pubsub import Subscription
from txscales.redis._stats import RedisStats

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

from txscales.redis._errors import (
    AskError,
    BusyError,
    BusyGroupError,
    BusyKeyError,
    ClusterDownError,
    ClusterMapError,
    CrossShardError,
    CrossSlotError,
    ERROR_CLASSES,
    errorFromReply,
    ExecAbortError,
    KeylessCommandError,
    LoadingError,
    MasterDownError,
    MisconfError,
    MovedError,
    NoAuthError,
    NoPermError,
    NoReplicasError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedirectError,
    RedisEncodeError,
    RedisError,
    RedisHandshakeError,
    RedisProtocolError,
    RedisReplyError,
    RefusedCommandError,
    ReplyTooLargeError,
    ServerDeadError,
    ServerDownError,
    TooManyPendingCommandsError,
    TooManyRedirectsError,
    TryAgainError,
    UnexpectedReplyError,
    UnavailableError,
    WatchConflictError,
    WrongPassError,
    WrongTypeError,
)
from txscales.redis._resp import ReplyDecodeError


def _listed(client: RedisClient, label: Optional[str], dest: str) -> RedisClient:
    """
    Name C{client} and list it among the process's clients (for the admin
    page) until it is closed.

    @return: C{client}.
    """
    client.label, client.dest = label if label is not None else dest, dest
    REGISTRY.addClient(client)
    return client


class Redis:
    """
    Make Redis clients.
    """

    @staticmethod
    def newClient(dest: str, password: Optional[str] = None, username: Optional[str] = None, db: int = 0,
                  clientName: Optional[str] = None, protocol: int = 2, timeout: Optional[float] = None,
                  connectTimeout: float = 10.0, maxPending: int = DEFAULT_MAX_PENDING,
                  decodeResponses: bool = False,
                  maxTransactionRetries: int = 10, blockingPoolSize: int = DEFAULT_BLOCKING_POOL_SIZE,
                  stats: bool = True,
                  registry: "Optional[CollectorRegistry]" = None, label: Optional[str] = None,
                  reactor: Any = None, random: Optional[Random] = None,
                  maxRedirects: int = 5, maxClusterRetries: int = 5,
                  failFast: Optional[Dict[str, float]] = None,
                  failureAccrual: Union[Dict[str, Any], Literal[False], None] = None,
                  ejectFailedHosts: bool = False) -> RedisClient:
        """
        A client of the Redis servers at C{dest}.  It connects at its first
        command.

        @param dest: C{tcp://host:port} for one server;
            C{tcp://host:port,host:port,...} or a discovery URI
            (C{zk://...}, or an installed scheme's) for keys sharded over
            the servers by ketama consistent hashing (twemproxy's and
            Finagle's ring with MD5 keys), followed as the members change.
            A sharded client refuses commands without a key
            (L{KeylessCommandError}) and commands whose keys are on several
            servers (L{CrossShardError}), except C{mget}, C{mset},
            C{delete} and C{exists}, which it splits.
            C{redis-cluster://host:port[,host:port...]} for a Redis
            Cluster (a L{ClusterClient}), whose slot map is asked of these
            nodes.
        @param password: authenticate with it (C{AUTH}, or inside
            C{HELLO 3}).
        @param username: the ACL user (with C{password}).
        @param db: the database number (C{SELECT}).
        @param clientName: the connections' name (C{CLIENT SETNAME}).
        @param protocol: 2 (RESP2) or 3 (RESP3, by C{HELLO 3}).
        @param timeout: seconds a command waits for its reply, or None: a
            command that times out fails with L{RequestTimeoutError} and
            keeps its place in the connection's queue, its late reply
            dropped.
        @param connectTimeout: seconds connecting may take, and again the
            handshake; a handshake refused fails with
            L{RedisHandshakeError}.
        @param maxPending: how many commands may wait per server (for their
            replies or for a connection); more fail with
            L{TooManyPendingCommandsError}, not sent.
        @param decodeResponses: give replies as str (UTF-8) instead of
            bytes.
        @param failFast: C{{"start": s, "maximum": m}}, the seconds between
            reconnection attempts (exponential, jittered; default 0.05 to
            5), as the ThriftMux client's option: once a connection attempt
            failed, the server's commands fail at once with
            L{ServerDownError} (not sent) until an attempt succeeds.
        @param failureAccrual: the options of
            L{txscales.stack.FailureAccrual} per server
            (C{consecutiveFailures=5}, C{successRate=0.8}, C{window=30.0},
            C{minRequests=5}, C{markDeadFor=(5.0, 300.0)},
            C{countTimeouts=True}), or False to turn it off.  Commands that
            timed out after they were sent, connections lost under commands
            and failed connection attempts count as failures; any reply,
            error replies included, as a success.  A server marked dead
            fails its commands at once with L{ServerDeadError} (not sent)
            until, after C{markDeadFor}, a probe command succeeds.
        @param ejectFailedHosts: on a sharded client, take a server marked
            dead by failure accrual out of the ketama ring (its keys go to
            the next server on the ring) and put it back when it may be
            probed, as Finagle's C{ejectFailedHost} and twemproxy's
            C{auto_eject_hosts}; off by default.
        @param maxTransactionRetries: how often L{RedisClient.transaction}
            runs again after a WATCH conflict.
        @param blockingPoolSize: how many connections of their own the
            blocking commands (C{blpop}, C{brpop}, C{blmove}, C{bzpopmin},
            C{bzpopmax}, and C{execute} of any blocking command) may have
            per server; further ones wait for a free connection, at most
            C{maxPending} of them and for at most C{timeout}.  Such a
            command's own timeout is the server's (its C{timeout}
            argument) plus C{timeout}.
        @param stats: count calls, errors and latency per command in
            prometheus metrics (C{txscales_redis_client_*}).
        @param registry: the prometheus C{CollectorRegistry} (None: the
            global one).
        @param label: the client's name in metrics (default: C{dest}).
        @param reactor: the reactor (default: the global one).
        @param random: the backoff's jitter (default: a new
            C{random.Random}).
        @param maxRedirects: on a Redis Cluster, how many C{MOVED} or
            C{ASK} redirects a command follows before it fails with
            L{TooManyRedirectsError}.
        @param maxClusterRetries: on a Redis Cluster, how often a command
            that surely did not reach a server (its connection refused,
            C{CLUSTERDOWN}, C{TRYAGAIN}, ...) is sent again, after delays
            of C{failFast}, while the slot map is refreshed.
        @raise txscales.errors.BadOptionError: for a bad option.
        @raise txscales.errors.BadDestinationError: for a malformed C{dest}.
        @raise txscales.errors.UnknownPluginError: for a discovery scheme
            no plugin handles.
        """
        checkOptions(dict(password=password, username=username, db=db, clientName=clientName, protocol=protocol,
                          timeout=timeout, connectTimeout=connectTimeout, maxPending=maxPending,
                          decodeResponses=decodeResponses, failFast=failFast,
                          failureAccrual=failureAccrual, ejectFailedHosts=ejectFailedHosts,
                          maxTransactionRetries=maxTransactionRetries, stats=stats, registry=registry,
                          label=label, blockingPoolSize=blockingPoolSize, maxRedirects=maxRedirects,
                          maxClusterRetries=maxClusterRetries))
        reactor = defaultReactor(reactor)
        random = random if random is not None else Random()
        handshake = handshakeCommands(protocol, username, password, db, clientName)
        encoding = "utf-8" if decodeResponses else None
        backoff = failFastDelays(failFast)
        accrual = {} if failureAccrual is None else failureAccrual

        def makeNode(address: Tuple[str, int]) -> RedisNode:
            health = NodeHealth(address, reactor, random, accrual) if accrual is not False else None
            return RedisNode(address, reactor, random, handshake, timeout, connectTimeout, maxPending, encoding,
                             backoff, health=health)

        if isinstance(dest, str) and dest.startswith(CLUSTER_SCHEME):
            return _listed(newClusterClient(dest, makeNode, dict(db=db, reactor=reactor, random=random, stats=stats,
                                                         registry=registry, label=label, maxPending=maxPending,
                                                         maxTransactionRetries=maxTransactionRetries,
                                                         maxRedirects=maxRedirects,
                                                         maxClusterRetries=maxClusterRetries, backoff=backoff,
                                                         blockingPoolSize=blockingPoolSize,
                                                         connectTimeout=connectTimeout)), label, dest)
        addresses = parseStatic(dest) if isinstance(dest, str) and dest.startswith("tcp://") else None
        destination = None if addresses is not None else resolveDestination(
            dest, reactor, connectTimeout=connectTimeout)
        redisStats = RedisStats(label if label is not None else dest, reactor, registry) if stats else None
        client = RedisClient(makeNode, addresses, destination, addresses is not None and len(addresses) == 1,
                             redisStats, maxPending, maxTransactionRetries, blockingPoolSize=blockingPoolSize,
                             ejectFailedHosts=ejectFailedHosts)
        return _listed(client, label, dest)

    @staticmethod
    def newBuilder() -> RedisClientBuilder:
        """
        @return: a L{RedisClientBuilder}, whose setters are L{newClient}'s
            options.
        """
        return RedisClientBuilder()

__all__ = [
    "Pipeline",
    "Redis",
    "RedisClient",
    "RedisClientBuilder",
    "Subscription",
    "Transaction",
    "ClusterClient",
    "ClusterMapError",
    "TooManyRedirectsError",
    "CrossShardError",
    "KeylessCommandError",
    "RedisHandshakeError",
    "ServerDeadError",
    "ServerDownError",
    "WatchConflictError",
    "AskError",
    "BusyError",
    "BusyGroupError",
    "BusyKeyError",
    "ClusterDownError",
    "CrossSlotError",
    "ERROR_CLASSES",
    "errorFromReply",
    "ExecAbortError",
    "LoadingError",
    "MasterDownError",
    "MisconfError",
    "MovedError",
    "NoAuthError",
    "NoPermError",
    "NoReplicasError",
    "NoScriptError",
    "OutOfMemoryError",
    "ReadOnlyError",
    "RedirectError",
    "RedisEncodeError",
    "RedisError",
    "RedisProtocolError",
    "RedisReplyError",
    "RefusedCommandError",
    "ReplyTooLargeError",
    "TooManyPendingCommandsError",
    "TryAgainError",
    "UnexpectedReplyError",
    "UnavailableError",
    "WrongPassError",
    "WrongTypeError",
    "ReplyDecodeError",
]
