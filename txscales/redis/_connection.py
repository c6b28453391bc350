"""
One connection to one Redis server: a thin Twisted protocol over the
sans-IO code of L{txscales.redis._resp}.

Commands are pipelined: L{RedisConnection.execute} writes a command at
once, whatever waits before it, and returns a Deferred of its reply.  Redis
answers in order, so replies are matched to commands by their place in a
queue.  A command that times out or is cancelled keeps its place in the
queue until its reply arrives, and that reply is then dropped: no later
command is ever shifted by one and given another command's reply.

An error reply fails its own command only.  Bytes that are not RESP, a
reply too large, or a reply while no command waits close the connection,
and every command waiting on it fails with L{ConnectionLostError}, as when
the connection is lost: each may have run.
"""

from collections import deque
from typing import Any, Callable, Deque, List, Optional, Sequence

from hiredis import PushNotification
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from txscales._connection import noDelay
from txscales.errors import ClientClosedError, ConnectionLostError, RequestTimeoutError, TxScalesError
from txscales.redis._errors import (
    RedisEncodeError,
    RedisProtocolError,
    TooManyPendingCommandsError,
    UnexpectedReplyError,
)
from txscales.redis._resp import DEFAULT_MAX_REPLY_BYTES, CommandArgument, ReplyReader, encodeCommand

DEFAULT_MAX_PENDING = 10000
"""
The default bound on the commands a connection waits for at once.
"""


class _Pending:
    """
    A command waiting for its reply: its Deferred (None once it timed out or
    was cancelled: the reply is then dropped) and its timer.
    """

    __slots__ = ("deferred", "timer")

    def __init__(self) -> None:
        self.deferred: Optional["Deferred[Any]"] = None
        self.timer: Optional[IDelayedCall] = None


class RedisConnection(Protocol):
    """
    A pipelined connection to a Redis server.

    @ivar timeout: the default seconds a command waits for its reply, or
        None for no limit.
    @ivar droppedReplies: how many replies arrived for commands that had
        timed out or been cancelled, and were dropped.
    @ivar onPush: called with each RESP3 push the server sends
        (a C{hiredis.PushNotification}, a list); pushes take no command's
        place.  By default they are dropped.
    """

    def __init__(
        self,
        clock: Any,
        timeout: Optional[float] = None,
        maxPending: int = DEFAULT_MAX_PENDING,
        maxReplyBytes: int = DEFAULT_MAX_REPLY_BYTES,
        encoding: Optional[str] = None,
    ) -> None:
        """
        @param clock: an C{IReactorTime}, for the commands' timeouts.
        @param timeout: see L{timeout}.
        @param maxPending: how many commands may wait for their replies at
            once, those that timed out but were not answered yet included;
            a command past it fails with L{TooManyPendingCommandsError}
            without being sent.
        @param maxReplyBytes: the reply reader's bound (see
            L{ReplyReader}).
        @param encoding: decode replies' strings with this codec (None:
            bytes).
        """
        self._clock = clock
        self.timeout = timeout
        self._maxPending = maxPending
        self._reader = ReplyReader(maxReplyBytes, encoding)
        self._pending: Deque[_Pending] = deque()
        self._closed: Optional[TxScalesError] = None
        self._transport: Any = None
        self.droppedReplies = 0
        self.onPush: Callable[[PushNotification], object] = lambda push: None

    # Protocol

    def connectionMade(self) -> None:
        self._transport = self.transport
        noDelay(self.transport)

    def dataReceived(self, data: bytes) -> None:
        try:
            replies = self._reader.feed(data)
        except RedisProtocolError as e:
            # The replies before the bad bytes still answer their commands.
            if self._deliver(e.replies):
                self._abort(e)
            return
        self._deliver(replies)

    def _deliver(self, replies: List[Any]) -> bool:
        """
        Fire the Deferreds of the commands C{replies} answer.

        @return: C{False} if a reply came while no command waited (the
            connection is then closed).
        """
        pending = self._pending
        for reply in replies:
            if type(reply) is PushNotification:
                self.onPush(reply)
                continue
            if not pending:
                kind = type(reply).__name__
                self._abort(UnexpectedReplyError("a reply (%s) arrived while no command waited" % (kind,)))
                return False
            entry = pending.popleft()
            d = entry.deferred
            if d is None:
                self.droppedReplies += 1
                continue
            entry.deferred = None
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
            if isinstance(reply, Exception):
                d.errback(Failure(reply))
            else:
                d.callback(reply)
        return True

    def connectionLost(self, reason: Failure = Failure(ConnectionLostError())) -> None:
        if self._closed is None:
            self._closed = ConnectionLostError(reason)
        self._fail(self._closed)

    # API

    @property
    def pendingCount(self) -> int:
        """
        How many commands wait for their replies (timed-out or cancelled
        ones included).
        """
        return len(self._pending)

    def execute(self, *args: CommandArgument, timeout: Optional[float] = -1.0) -> "Deferred[Any]":
        """
        Send a command and wait for its reply.

        @param args: the command's name and arguments (see
            L{CommandArgument}).
        @param timeout: seconds to wait for the reply (default: the
            connection's L{timeout}; None for no limit).  When it passes,
            the Deferred fails with L{RequestTimeoutError} and the reply,
            when it comes, is dropped.
        @return: a Deferred firing with the reply, or failing with the
            L{RedisReplyError} the server answered,
            L{RedisEncodeError} (nothing sent), L{TooManyPendingCommandsError}
            (nothing sent), L{ClientClosedError} (nothing sent) or
            L{ConnectionLostError} (the connection ended while the command
            waited).  Cancelling it drops the reply.
        """
        return self.executeMany([args], timeout)[0]

    def executeMany(
        self, commands: Sequence[Sequence[CommandArgument]], timeout: Optional[float] = -1.0
    ) -> List["Deferred[Any]"]:
        """
        Send commands in one write (a pipeline) and wait for their replies.

        @param commands: each a sequence as C{execute}'s C{args}.
        @param timeout: as for L{execute}, each command's own.
        @return: a Deferred per command, as L{execute} returns; when any
            command cannot be encoded, or they do not all fit under
            C{maxPending}, none is sent and all fail alike.
        """
        try:
            if self._closed is not None or self._transport is None:
                raise ClientClosedError("the connection to the Redis server is closed")
            if len(self._pending) + len(commands) > self._maxPending:
                raise TooManyPendingCommandsError(
                    "%d commands already wait for their replies (maxPending %d)"
                    % (len(self._pending), self._maxPending)
                )
            data = b"".join([encodeCommand(command) for command in commands])
        except (ClientClosedError, TooManyPendingCommandsError, RedisEncodeError) as e:
            return [_failed(e) for _ in commands]
        if timeout == -1.0:
            timeout = self.timeout
        deferreds = []
        for _ in commands:
            entry = _Pending()
            d: "Deferred[Any]" = Deferred(self._canceller(entry))
            entry.deferred = d
            if timeout is not None:
                entry.timer = self._clock.callLater(timeout, self._timedOut, entry, timeout)
            self._pending.append(entry)
            deferreds.append(d)
        self._transport.write(data)
        return deferreds

    def close(self) -> None:
        """
        Close the connection: every command waiting fails with
        L{ClientClosedError}.
        """
        if self._closed is not None:
            return
        self._closed = ClientClosedError("the connection to the Redis server was closed")
        self._fail(self._closed)
        if self._transport is not None:
            self._transport.loseConnection()

    # Internals

    def _canceller(self, entry: _Pending) -> Callable[["Deferred[Any]"], None]:
        def cancel(d: "Deferred[Any]") -> None:
            self._abandon(entry)

        return cancel

    def _abandon(self, entry: _Pending) -> None:
        entry.deferred = None
        if entry.timer is not None:
            if entry.timer.active():
                entry.timer.cancel()
            entry.timer = None

    def _timedOut(self, entry: _Pending, timeout: float) -> None:
        entry.timer = None
        d, entry.deferred = entry.deferred, None
        if d is not None:
            d.errback(Failure(RequestTimeoutError(timeout)))

    def _abort(self, error: RedisProtocolError) -> None:
        self._closed = ConnectionLostError(error)
        self._fail(self._closed)
        if self._transport is not None:
            self._transport.loseConnection()

    def _fail(self, reason: TxScalesError) -> None:
        pending, self._pending = self._pending, deque()
        for entry in pending:
            d = entry.deferred
            self._abandon(entry)
            if d is not None:
                d.errback(Failure(reason))


def _failed(error: Exception) -> "Deferred[Any]":
    d: "Deferred[Any]" = Deferred()
    d.errback(Failure(error))
    return d
