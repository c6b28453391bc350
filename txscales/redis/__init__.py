"""
Redis (in progress): the foundations of a Redis client, not the client yet.

So far: the errors a server answers with, as typed exceptions (every one a
L{RedisError}).  The sans-IO wire code beneath them is private for now:
RESP commands and replies (C{_resp}), ketama consistent hashing for
sharded servers (C{_hashing}) and Redis Cluster's key slots (C{_slots}).
"""

from txscales.redis._errors import (
    AskError,
    BusyError,
    BusyGroupError,
    BusyKeyError,
    ClusterDownError,
    CrossSlotError,
    ERROR_CLASSES,
    errorFromReply,
    ExecAbortError,
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
    RedisProtocolError,
    RedisReplyError,
    RefusedCommandError,
    ReplyTooLargeError,
    TryAgainError,
    UnavailableError,
    WrongPassError,
    WrongTypeError,
)
from txscales.redis._resp import ReplyDecodeError

__all__ = [
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
    "TryAgainError",
    "UnavailableError",
    "WrongPassError",
    "WrongTypeError",
    "ReplyDecodeError",
]
