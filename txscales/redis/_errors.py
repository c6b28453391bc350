"""
Redis' errors: the error replies a server sends, as typed exceptions, and
the errors of the wire code itself.  Plain Python, no Twisted.

A server error reply (C{-WRONGTYPE Operation against a key ...}) fails the
one command it answers: the connection stays up.  Its first word, the
prefix, picks the class (L{errorFromReply}); a prefix without a class of its
own gives a L{RedisReplyError} that carries it.

Each class says whether retrying is sensible (C{retryable}) and whether the
command may have run (C{mayHaveReachedServer}).  As for a Mux nack, a reply
saying that the server refused the command before running it (C{MOVED},
C{LOADING}, C{READONLY}, ...) has C{mayHaveReachedServer = False}, although
the bytes did reach a server: the command did nothing there.
"""

from typing import Any, Dict, List, Optional, Tuple, Type

from txscales.errors import ConnectError, EncodeError, FrameTooLargeError, HandshakeError, ProtocolError, TxScalesError


class RedisError(TxScalesError):
    """
    Base class of every Redis error.
    """


class RedisProtocolError(RedisError, ProtocolError):
    """
    The bytes a Redis server sent are not RESP; the connection is closed, and
    every command waiting on it fails.

    @ivar replies: the complete replies parsed before the bad bytes, in the
        same call of the reader (they answer their commands).
    """

    replies: List[Any] = []


class ReplyTooLargeError(RedisProtocolError, FrameTooLargeError):
    """
    A reply grew past the reader's bound (C{maxReplyBytes}) before it was
    complete; refused before more of it was buffered.
    """


class RedisEncodeError(RedisError, EncodeError):
    """
    A command cannot be encoded: an argument is not bytes, str, int or float
    (C{None} and C{bool} are refused, as their meaning would be a guess), or
    the command is empty.  Nothing was sent.
    """


class RedisReplyError(RedisError):
    """
    A server answered a command with an error reply.

    @cvar prefix: the reply's first word this class stands for (C{ERR},
        C{WRONGTYPE}, ...).
    @ivar message: the whole error reply, prefix included, as the server
        sent it (decoded as UTF-8, bad bytes replaced).
    @ivar code: the reply's own first word (for a L{RedisReplyError} made
        for an unknown prefix, that prefix).
    """

    prefix: str = "ERR"

    def __init__(self, message: str) -> None:
        """
        @param message: the error reply, without its C{-} and line end.
        """
        TxScalesError.__init__(self, message)
        self.message = message
        self.code = message.split(" ", 1)[0]


class RefusedCommandError(RedisReplyError):
    """
    The server refused the command without running it.
    """

    mayHaveReachedServer = False


class WrongTypeError(RefusedCommandError):
    """
    C{WRONGTYPE}: the key holds a value of another type than the command
    works on.
    """

    prefix = "WRONGTYPE"


class NoAuthError(RefusedCommandError):
    """
    C{NOAUTH}: the connection must authenticate first.
    """

    prefix = "NOAUTH"


class WrongPassError(RefusedCommandError):
    """
    C{WRONGPASS}: AUTH (or HELLO's AUTH) was given a wrong user name or
    password, or the user is disabled.
    """

    prefix = "WRONGPASS"


class NoPermError(RefusedCommandError):
    """
    C{NOPERM}: the connection's ACL user may not run this command or touch
    this key.
    """

    prefix = "NOPERM"


class NoScriptError(RefusedCommandError):
    """
    C{NOSCRIPT}: EVALSHA named a script the server does not have; send it
    with EVAL (or SCRIPT LOAD) first.
    """

    prefix = "NOSCRIPT"


class ExecAbortError(RefusedCommandError):
    """
    C{EXECABORT}: EXEC discarded the transaction because a command queued
    in it was refused; none of its commands ran.
    """

    prefix = "EXECABORT"


class CrossSlotError(RefusedCommandError):
    """
    C{CROSSSLOT}: a Redis Cluster node refused a command whose keys hash to
    more than one slot.
    """

    prefix = "CROSSSLOT"


class BusyKeyError(RefusedCommandError):
    """
    C{BUSYKEY}: the target key already exists (RESTORE, COPY, ...).
    """

    prefix = "BUSYKEY"


class BusyGroupError(RefusedCommandError):
    """
    C{BUSYGROUP}: the stream's consumer group already exists.
    """

    prefix = "BUSYGROUP"


class OutOfMemoryError(RefusedCommandError):
    """
    C{OOM}: the server is at its C{maxmemory} and refuses commands that
    would use more.
    """

    prefix = "OOM"


class MisconfError(RefusedCommandError):
    """
    C{MISCONF}: the server refuses writes because it failed to save its RDB
    snapshot.
    """

    prefix = "MISCONF"


class NoReplicasError(RefusedCommandError):
    """
    C{NOREPLICAS}: the server refuses writes because too few replicas are
    connected (C{min-replicas-to-write}).
    """

    prefix = "NOREPLICAS"


class UnavailableError(RefusedCommandError):
    """
    The server (or the cluster) cannot run commands right now, but will: the
    same command may be retried after a while or elsewhere.
    """

    retryable = True


class BusyError(UnavailableError):
    """
    C{BUSY}: the server is running a script or function (SCRIPT KILL or
    FUNCTION KILL stops it).
    """

    prefix = "BUSY"


class LoadingError(UnavailableError):
    """
    C{LOADING}: the server is loading its data set into memory.
    """

    prefix = "LOADING"


class ReadOnlyError(UnavailableError):
    """
    C{READONLY}: a write was sent to a replica; after a failover, the
    client's map of who is master is stale.
    """

    prefix = "READONLY"


class MasterDownError(UnavailableError):
    """
    C{MASTERDOWN}: a replica lost its link with its master and is
    configured not to serve stale data.
    """

    prefix = "MASTERDOWN"


class ClusterDownError(UnavailableError):
    """
    C{CLUSTERDOWN}: the cluster cannot serve this slot (no master for it, or
    the cluster state is not ok).
    """

    prefix = "CLUSTERDOWN"


class TryAgainError(UnavailableError):
    """
    C{TRYAGAIN}: a multi-key command met a slot being migrated whose keys
    are split between two nodes.
    """

    prefix = "TRYAGAIN"


class RedirectError(UnavailableError):
    """
    A Redis Cluster node does not serve the command's slot and says which
    node does.

    @ivar slot: the slot (an int), or None when the reply did not parse.
    @ivar host: the node's host (may be empty: the same host as the
        one that answered, as Redis 7 sends for an unknown endpoint).
    @ivar port: the node's port (an int), or None when the reply did not
        parse.
    """

    def __init__(self, message: str) -> None:
        """
        @param message: the error reply: C{MOVED 3999 127.0.0.1:6381}.
        """
        RedisReplyError.__init__(self, message)
        self.slot: Optional[int] = None
        self.host = ""
        self.port: Optional[int] = None
        parts = message.split(" ")
        if len(parts) == 3:
            host, _, port = parts[2].rpartition(":")
            if parts[1].isdigit() and port.isdigit():
                self.slot = int(parts[1])
                self.host = host
                self.port = int(port)


class MovedError(RedirectError):
    """
    C{MOVED}: the slot is served by another node for good: update the slot
    map, then send there.
    """

    prefix = "MOVED"


class AskError(RedirectError):
    """
    C{ASK}: the slot is being migrated and this key is on the target node
    already: send C{ASKING} then the command there, once, without updating
    the slot map.
    """

    prefix = "ASK"


_CLASSES: Tuple[Type[RedisReplyError], ...] = (
    WrongTypeError,
    NoAuthError,
    WrongPassError,
    NoPermError,
    NoScriptError,
    ExecAbortError,
    CrossSlotError,
    BusyKeyError,
    BusyGroupError,
    OutOfMemoryError,
    MisconfError,
    NoReplicasError,
    BusyError,
    LoadingError,
    ReadOnlyError,
    MasterDownError,
    ClusterDownError,
    TryAgainError,
    MovedError,
    AskError,
)

ERROR_CLASSES: Dict[str, Type[RedisReplyError]] = {c.prefix: c for c in _CLASSES}
"""
The classes of error replies, by their prefix; any other prefix (C{ERR}
first) gives a L{RedisReplyError}.
"""


def errorFromReply(message: str) -> RedisReplyError:
    """
    The typed error for an error reply.

    @param message: the reply without its C{-} and line end
        (C{WRONGTYPE Operation against a key ...}).
    @return: an instance of the class of its prefix in L{ERROR_CLASSES}, or
        a L{RedisReplyError}.
    """
    cls = ERROR_CLASSES.get(message.split(" ", 1)[0], RedisReplyError)
    return cls(message)


class TooManyPendingCommandsError(RedisError):
    """
    The connection already waits for as many replies as it may (those of
    commands that timed out or were cancelled included); the command was
    not sent.
    """

    mayHaveReachedServer = False
    retryable = True


class UnexpectedReplyError(RedisProtocolError):
    """
    The server sent a reply while no command waited for one; the connection
    is closed, as its replies can no longer be matched to commands.
    """


class RedisHandshakeError(RedisError, HandshakeError):
    """
    The server refused the commands a new connection starts with (HELLO,
    AUTH, SELECT, CLIENT SETNAME): a wrong password, an unknown user, a
    database out of range, or RESP3 asked of a server without HELLO.  The
    connection was closed and no command was sent on it.

    @ivar reason: the error the server answered (a L{RedisReplyError}) or
        the client's own (a timeout, a lost connection).
    """

    mayHaveReachedServer = False

    def __init__(self, reason: BaseException) -> None:
        """
        @param reason: see L{reason}.
        """
        RedisError.__init__(self, "the Redis handshake failed: %s" % (reason,))
        self.reason = reason


class ServerDownError(RedisError, ConnectError):
    """
    The server a key maps to is down (its last connection attempt failed)
    and the client reconnects with backoff: the command failed at once,
    without being sent.  Keys are not moved to another server meanwhile.

    @ivar address: the server's C{(host, port)}.
    @ivar reason: why its last connection attempt failed.
    """

    def __init__(self, address: Tuple[str, int], reason: Any) -> None:
        """
        @param address: see L{address}.
        @param reason: see L{reason}.
        """
        RedisError.__init__(self, "the Redis server %s:%d is down: %s" % (address[0], address[1], reason))
        self.address = address
        self.reason = reason


class KeylessCommandError(RedisError):
    """
    A command without a key (PING, INFO, FLUSHDB, ...) was given to a
    client sharded over several servers, which cannot tell which server
    should run it; nothing was sent.
    """

    mayHaveReachedServer = False


class CrossShardError(RedisError):
    """
    A command, pipeline or transaction that must run on one server names
    keys of several servers of a sharded client; nothing was sent.
    """

    mayHaveReachedServer = False


class TooManyRedirectsError(RedisError):
    """
    A Redis Cluster command was redirected (C{MOVED} or C{ASK}) more often
    than the client's C{maxRedirects}: the slot map keeps changing, or a
    node misbehaves.  No attempt ran the command.

    @ivar last: the last redirect, a L{RedirectError}.
    """

    mayHaveReachedServer = False
    retryable = True

    def __init__(self, last: "RedirectError", count: int) -> None:
        """
        @param last: see L{last}.
        @param count: how many redirects the command followed.
        """
        RedisError.__init__(self, "redirected %d times, last by %s" % (count, last.message))
        self.last = last


class ClusterMapError(RedisError):
    """
    No node of a Redis Cluster (its seeds, then the masters known) gave a
    slot map: the command was not sent.

    @ivar reason: the last node's error.
    """

    mayHaveReachedServer = False
    retryable = True

    def __init__(self, reason: Any) -> None:
        """
        @param reason: see L{reason}.
        """
        RedisError.__init__(self, "no Redis Cluster node gave a slot map: %s" % (reason,))
        self.reason = reason


class WatchConflictError(RedisError):
    """
    A transaction's watched keys changed before its EXEC on every attempt
    (EXEC answered nil each time); none of its queued commands ran.
    """

    mayHaveReachedServer = False
    retryable = True
