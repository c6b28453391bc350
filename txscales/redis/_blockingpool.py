"""
The connections of blocking commands (C{BLPOP} and the like): a small
pool per server, so that a command the server holds for seconds never
stalls the pipelined connection other commands share.

A pooled connection runs one command at a time.  When the command is
answered (a reply or an error reply) the connection goes back to the
pool.  When it timed out, was cancelled or lost its connection, the
connection is closed instead: its late reply would otherwise be taken by
the next command sent on it.  Commands wait for a free connection in
order, at most C{maxPending} of them and for at most the client's
C{timeout}.
"""

from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Set

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from txscales.errors import ClientClosedError, RequestTimeoutError
from txscales.redis._connection import RedisConnection
from txscales.redis._errors import RedisHandshakeError, RedisReplyError, ServerDownError, TooManyPendingCommandsError
from txscales.redis._node import Address, RedisNode

DEFAULT_BLOCKING_POOL_SIZE = 8
"""
The default bound on the connections of blocking commands per server.
"""


class _Waiter:
    """
    A blocking command waiting for a pooled connection.
    """

    __slots__ = ("args", "timeout", "deferred", "timer", "running", "forget")

    def __init__(self, args: Sequence[Any], timeout: Optional[float]) -> None:
        self.args = args
        self.timeout = timeout
        self.deferred: "Deferred[Any]" = Deferred(self._cancel)
        self.timer: Optional[IDelayedCall] = None
        self.running: Optional["Deferred[Any]"] = None
        self.forget = lambda: None

    def _cancel(self, d: "Deferred[Any]") -> None:
        if self.running is not None:
            self.running.cancel()
        else:
            self.forget()


class BlockingPool:
    """
    The pooled connections of one server's blocking commands.

    @ivar size: the most connections it holds at once.
    @ivar closedAfterTimeout: how many connections were closed because
        their command timed out or was cancelled.
    """

    def __init__(self, node: RedisNode, size: int) -> None:
        """
        @param node: the server; it makes the connections, and gives the
            client's C{timeout} (the longest a command waits for a
            connection, and what is added to its own timeout) and
            C{maxPending} (how many commands may wait for one).
        @param size: see L{size}.
        """
        self._node = node
        self.size = size
        self._idle: List[RedisConnection] = []
        self._connections: Set[RedisConnection] = set()
        self._opening = 0
        self._waiters: Deque[_Waiter] = deque()
        self._closed = False
        self.closedAfterTimeout = 0

    @property
    def connectionCount(self) -> int:
        """
        How many connections are open or being opened.
        """
        return len(self._connections) + self._opening

    @property
    def waitingCount(self) -> int:
        """
        How many commands wait for a busy connection (not those for which a
        new connection is being opened).
        """
        return max(0, len(self._waiters) - self._opening)

    def execute(self, args: Sequence[Any], seconds: Optional[float]) -> "Deferred[Any]":
        """
        Send a blocking command on a pooled connection.

        @param args: the command.
        @param seconds: how long the server may block it (None: forever).
            The command's timeout is this plus the client's C{timeout}
            (None when either is None).
        @return: a Deferred of its reply; failing with the server's error,
            L{RequestTimeoutError}, L{ConnectionLostError},
            L{ServerDownError} or L{RedisHandshakeError} (not sent),
            L{TooManyPendingCommandsError} (not sent) or
            L{ClientClosedError}.  Cancelling it closes its connection.
        """
        option = self._node.timeout
        timeout = None if option is None or seconds is None else seconds + option
        if self._closed:
            return fail(ClientClosedError("the Redis client is closed"))
        if self._node.down is not None:
            return fail(ServerDownError(self._node.address, self._node.down))
        if self._idle:
            return self._run(self._idle.pop(), args, timeout)
        if self.waitingCount >= self._node.maxPending:
            return fail(TooManyPendingCommandsError(
                "%d blocking commands already wait for a connection to %s:%d (maxPending %d)"
                % (self.waitingCount, self._node.address[0], self._node.address[1], self._node.maxPending)))
        waiter = _Waiter(args, timeout)
        waiter.forget = lambda: self._forget(waiter)
        if option is not None:
            waiter.timer = self._node.reactor.callLater(option, self._waitedTooLong, waiter, option)
        self._waiters.append(waiter)
        self._open()
        return waiter.deferred

    def _open(self) -> None:
        if self._closed or self._opening >= len(self._waiters) or self.connectionCount >= self.size:
            return
        self._opening += 1
        self._node.newConnection().addCallbacks(self._opened, self._notOpened)

    def _opened(self, connection: RedisConnection) -> None:
        self._opening -= 1
        if self._closed:
            connection.close()
            return
        self._connections.add(connection)
        connection.onLost = self._lost  # type: ignore[attr-defined]
        self._release(connection)

    def _notOpened(self, failure: Failure) -> None:
        self._opening -= 1
        if self._closed:
            return
        error = failure.value
        if not isinstance(error, RedisHandshakeError):
            error = ServerDownError(self._node.address, error)
        # The server refused a connection just now: the commands waiting
        # for one fail rather than try again, each, at once.
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            self._stopTimer(waiter)
            waiter.deferred.errback(Failure(error))

    def _run(self, connection: RedisConnection, args: Sequence[Any], timeout: Optional[float]) -> "Deferred[Any]":
        d = connection.execute(*args, timeout=timeout)

        def done(result: Any) -> Any:
            if isinstance(result, Failure) and not result.check(RedisReplyError):
                # Timed out, cancelled or lost: a late reply may still come.
                if result.check(RequestTimeoutError, CancelledError):
                    self.closedAfterTimeout += 1
                self._discard(connection)
                connection.close()
                self._open()
            else:
                self._release(connection)
            return result

        return d.addBoth(done)

    def _release(self, connection: RedisConnection) -> None:
        """
        Give a free connection to the first waiting command, or keep it.
        """
        if connection not in self._connections:
            return
        if self._waiters:
            waiter = self._waiters.popleft()
            self._stopTimer(waiter)
            waiter.running = self._run(connection, waiter.args, waiter.timeout)
            waiter.running.chainDeferred(waiter.deferred)
        else:
            self._idle.append(connection)

    def _lost(self, connection: RedisConnection) -> None:
        self._discard(connection)
        self._open()

    def _discard(self, connection: RedisConnection) -> None:
        self._connections.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)

    def _forget(self, waiter: _Waiter) -> None:
        self._stopTimer(waiter)
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def _waitedTooLong(self, waiter: _Waiter, timeout: float) -> None:
        waiter.timer = None
        self._waiters.remove(waiter)
        waiter.deferred.errback(Failure(RequestTimeoutError(timeout, written=False)))

    @staticmethod
    def _stopTimer(waiter: _Waiter) -> None:
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.timer = None

    def close(self) -> None:
        """
        Close every connection: the commands waiting, and those running,
        fail with L{ClientClosedError}.
        """
        self._closed = True
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            self._stopTimer(waiter)
            waiter.deferred.errback(Failure(ClientClosedError("the Redis client was closed")))
        connections, self._connections, self._idle = self._connections, set(), []
        for connection in connections:
            connection.close()


class BlockingPools:
    """
    The L{BlockingPool} of each server of a client, made at a server's
    first blocking command.
    """

    def __init__(self, size: int) -> None:
        """
        @param size: each pool's L{BlockingPool.size}.
        """
        self._size = size
        self._pools: Dict[Address, BlockingPool] = {}

    def poolFor(self, node: RedisNode) -> BlockingPool:
        """
        @return: the pool of C{node}'s server.
        """
        pool = self._pools.get(node.address)
        if pool is None or pool._node is not node:
            if pool is not None:
                pool.close()
            pool = self._pools[node.address] = BlockingPool(node, self._size)
        return pool

    def retain(self, nodes: Sequence[RedisNode]) -> None:
        """
        Close the pools of servers that are gone.

        @param nodes: the servers now.
        """
        keep = set(node.address for node in nodes)
        for address in list(self._pools):
            if address not in keep:
                self._pools.pop(address).close()

    def close(self) -> None:
        """
        Close every pool.
        """
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()
