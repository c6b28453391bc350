"""
One connection to one Redis server: a thin Twisted protocol over the
sans-IO code of L{txscales.redis._resp}.

Commands are pipelined: L{RedisConnection.execute} writes a command at
once, whatever waits before it, and returns a Deferred of its reply.  Redis
answers in order, so replies are matched to commands by their place in a
queue.  A command that times out or is cancelled keeps its place in the
queue until its reply arrives, and that reply is then dropped: no later
command is ever shifted by one and given another command's reply.

The hot path is kept cheap.  A command is its own queue entry (a
L{Deferred} that stays queued once it fired).  Commands sent while replies
are being delivered (by the replies' callbacks) go out in one write at the
end of the delivery.  Timeouts take one timer per connection, not one per
command: commands' deadlines are queued in order, and the timer is set for
the earliest; only a command whose deadline comes before that of a command
sent earlier (a shorter timeout of its own) gets a timer of its own.

An error reply fails its own command only.  Bytes that are not RESP, a
reply too large, or a reply while no command waits close the connection,
and every command waiting on it fails with L{ConnectionLostError}, as when
the connection is lost: each may have run.
"""

from collections import deque
from typing import Any, Callable, Deque, List, Optional, Sequence, cast

from hiredis import PushNotification
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from txscales._connection import noDelay
from txscales._deferreds import leanDeferred
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


_EARLY = 1e-6
"""
Seconds before its deadline a command may time out: the timer of a later
deadline is set for the difference of two clock readings, which a float
may round down.
"""


class _Command(Deferred):
    """
    A command's Deferred, and its entry in its connection's queue: it stays
    queued until its reply arrives, even once it fired (it timed out or was
    cancelled: the reply is then dropped).

    @ivar deadline: when it times out, while it is in its connection's
        queue of deadlines; else None.
    @ivar timeout: its timeout, for its L{RequestTimeoutError}.
    @ivar timer: its own timer, for a deadline that came before that of a
        command sent earlier; else None.
    """

    deadline: Optional[float] = None
    timeout = 0.0
    timer: Optional[IDelayedCall] = None


# Its attributes kept inline, those set by _queue and _expire included.
leanDeferred(_Command, "deadline", "timeout", "timer")


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
        self._pending: Deque[_Command] = deque()
        # The commands of _pending that have a deadline and no timer of
        # their own, in order (so by deadline), and the timer of the first.
        self._deadlines: Deque[_Command] = deque()
        self._timer: Optional[IDelayedCall] = None
        # While replies are delivered: the commands to write at its end.
        self._held: Optional[List[bytes]] = None
        self._closed: Optional[TxScalesError] = None
        self._transport: Any = None
        self.droppedReplies = 0
        self.onPush: Callable[[PushNotification], object] = lambda push: None

    # Protocol

    def connectionMade(self) -> None:
        self._transport = self.transport
        noDelay(self.transport)

    def dataReceived(self, data: bytes) -> None:
        if self._held is not None:
            # Within a delivery (a callback fed us): it writes at its end.
            self._receive(data)
            return
        held: List[bytes] = []
        self._held = held
        try:
            self._receive(data)
        finally:
            self._held = None
        if held and self._closed is None:
            self._transport.write(b"".join(held))

    def _receive(self, data: bytes) -> None:
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
            d = pending.popleft()
            if d.deadline is not None:
                # The first of the deadlines, as every command before it
                # was answered or timed out.
                deadlines = self._deadlines
                deadlines.popleft()
                if not deadlines and self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            if d.called:
                self.droppedReplies += 1
                continue
            if d.timer is not None:
                d.timer.cancel()
                d.timer = None
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
        return self.executeOne(args, timeout)

    def executeOne(self, command: Sequence[CommandArgument], timeout: Optional[float] = -1.0) -> "Deferred[Any]":
        """
        Send a command and wait for its reply: L{execute} with the command
        as one sequence (a tuple is encoded without a copy).
        """
        if self._closed is not None or self._transport is None:
            return _failed(ClientClosedError("the connection to the Redis server is closed"))
        if len(self._pending) >= self._maxPending:
            return _failed(self._tooMany())
        try:
            data = encodeCommand(command)
        except RedisEncodeError as e:
            return _failed(e)
        d = self._queue(self.timeout if timeout == -1.0 else timeout)
        held = self._held
        if held is None:
            self._transport.write(data)
        else:
            held.append(data)
        return d

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
                raise self._tooMany()
            data = b"".join([encodeCommand(command) for command in commands])
        except (ClientClosedError, TooManyPendingCommandsError, RedisEncodeError) as e:
            return [_failed(e) for _ in commands]
        if timeout == -1.0:
            timeout = self.timeout
        deferreds: List["Deferred[Any]"] = [self._queue(timeout) for _ in commands]
        if self._held is None:
            self._transport.write(data)
        else:
            self._held.append(data)
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

    def _tooMany(self) -> TooManyPendingCommandsError:
        return TooManyPendingCommandsError(
            "%d commands already wait for their replies (maxPending %d)" % (len(self._pending), self._maxPending)
        )

    def _queue(self, timeout: Optional[float]) -> _Command:
        """
        Queue a command about to be written.

        @param timeout: its timeout, or None.
        @return: its Deferred.
        """
        if timeout is None:
            d = _Command()
        else:
            deadline = self._clock.seconds() + timeout
            deadlines = self._deadlines
            if not deadlines or deadline >= deadlines[-1].deadline:
                d = _Command()
                d.deadline = deadline
                d.timeout = timeout
                deadlines.append(d)
                if self._timer is None:
                    self._timer = self._clock.callLater(timeout, self._expire)
            else:
                d = _Command(self._cancelled)
                d.timeout = timeout
                d.timer = self._clock.callLater(timeout, self._timedOut, d)
        self._pending.append(d)
        return d

    def _expire(self) -> None:
        """
        Time out the commands whose deadline passed, then set the timer for
        the next deadline.
        """
        self._timer = None
        now = self._clock.seconds()
        deadlines = self._deadlines
        # Not those queued by the callbacks of those timed out here.
        count = len(deadlines)
        while count and deadlines:
            count -= 1
            d = deadlines[0]
            if d.deadline - now > _EARLY:
                break
            deadlines.popleft()
            d.deadline = None
            if not d.called:
                d.errback(Failure(RequestTimeoutError(d.timeout)))
        if deadlines and self._timer is None:
            self._timer = self._clock.callLater(max(deadlines[0].deadline - now, 0.0), self._expire)

    def _cancelled(self, d: "Deferred[Any]") -> None:
        command = cast(_Command, d)
        if command.timer is not None:
            command.timer.cancel()
            command.timer = None

    def _timedOut(self, d: _Command) -> None:
        d.timer = None
        if not d.called:
            d.errback(Failure(RequestTimeoutError(d.timeout)))

    def _abort(self, error: RedisProtocolError) -> None:
        self._closed = ConnectionLostError(error)
        self._fail(self._closed)
        if self._transport is not None:
            self._transport.loseConnection()

    def _fail(self, reason: TxScalesError) -> None:
        pending, self._pending = self._pending, deque()
        self._deadlines.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for d in pending:
            d.deadline = None
            self._cancelled(d)
            if not d.called:
                d.errback(Failure(reason))


def _failed(error: Exception) -> "Deferred[Any]":
    d: "Deferred[Any]" = Deferred()
    d.errback(Failure(error))
    return d
