"""
One Redis server of a client: its pipelined connection, made with a
handshake and made again with backoff when it is lost.

While the first connection (or a reconnection right after a long-lived
connection ended) is being made, commands wait for it, bounded by
C{maxPending}.  Once a connection attempt failed, the server is down:
commands fail at once with L{ServerDownError} until an attempt succeeds,
attempts following an exponential jittered backoff.
"""

from random import Random
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred, FirstError, fail, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from txscales._backoff import exponentialJittered
from txscales.errors import ClientClosedError, RequestTimeoutError, TxScalesError
from txscales.redis._connection import RedisConnection
from txscales.redis._health import NodeHealth
from txscales.redis._errors import RedisHandshakeError, ServerDownError, TooManyPendingCommandsError
from txscales.redis._resp import CommandArgument

Command = Sequence[CommandArgument]
Address = Tuple[str, int]

HEALTHY_AFTER = 5.0
"""
Seconds a connection must have lived for its loss to be followed by an
immediate reconnection rather than the backoff.
"""


def handshakeCommands(protocol: int, username: Optional[str], password: Optional[str], db: int,
                      clientName: Optional[str]) -> List[List[CommandArgument]]:
    """
    The commands a new connection starts with.

    @return: C{HELLO 3 [AUTH user pass] [SETNAME name]} for RESP3, else
        C{AUTH} and C{CLIENT SETNAME} as needed; then C{SELECT} for a
        database other than 0.
    """
    commands: List[List[CommandArgument]] = []
    if protocol == 3:
        hello: List[CommandArgument] = ["HELLO", 3]
        if password is not None:
            hello += ["AUTH", username if username is not None else "default", password]
        if clientName is not None:
            hello += ["SETNAME", clientName]
        commands.append(hello)
    else:
        if password is not None:
            commands.append(["AUTH", password] if username is None else ["AUTH", username, password])
        if clientName is not None:
            commands.append(["CLIENT", "SETNAME", clientName])
    if db:
        commands.append(["SELECT", db])
    return commands


class _NodeConnection(RedisConnection):
    """
    A L{RedisConnection} that tells its node when it ends.
    """

    onLost: Optional[Callable[["_NodeConnection"], None]] = None

    def connectionLost(self, reason: Failure = Failure(ClientClosedError())) -> None:
        RedisConnection.connectionLost(self, reason)
        if self.onLost is not None:
            self.onLost(self)


class _Waiting:
    """
    Commands waiting for a connection: their Deferreds and timer.
    """

    __slots__ = ("commands", "deferreds", "timer", "timeout", "since")

    def __init__(self, commands: Sequence[Command], timeout: Optional[float], since: float) -> None:
        self.commands = commands
        self.timeout = timeout
        self.since = since
        self.deferreds: List["Deferred[Any]"] = [Deferred() for _ in commands]
        self.timer: Optional[IDelayedCall] = None


class RedisNode:
    """
    One server: execute commands on its connection, (re)connecting as
    needed.

    @ivar address: the server's C{(host, port)}.
    @ivar connection: the current connection once its handshake is done,
        else None.
    @ivar down: why the last connection attempt failed while the server is
        down, else None.
    """

    def __init__(self, address: Address, reactor: Any, random: Random, handshake: Sequence[Command],
                 timeout: Optional[float], connectTimeout: float, maxPending: int, encoding: Optional[str],
                 backoff: Tuple[float, float] = (0.05, 5.0),
                 connect: Optional[Callable[[Address, RedisConnection], "Deferred[Any]"]] = None,
                 health: Optional[NodeHealth] = None) -> None:
        """
        @param handshake: the commands each connection starts with (see
            L{handshakeCommands}).
        @param timeout: each command's default timeout (None: none).
        @param connectTimeout: seconds connecting and the handshake may
            take, each.
        @param maxPending: the bound on the commands a connection waits
            for, and on those waiting for a connection.
        @param encoding: decode replies with this codec (None: bytes).
        @param backoff: C{(start, maximum)} delays between attempts.
        @param connect: C{connect(address, protocol)} connects C{protocol}
            and returns a Deferred firing once it is connected (default:
            TCP with C{connectTimeout}).
        @param health: the server's failure accrual, or None.
        """
        self.address = address
        self._reactor = reactor
        self._random = random
        self._handshake = list(handshake)
        self._timeout = timeout
        self._connectTimeout = connectTimeout
        self._maxPending = maxPending
        self._encoding = encoding
        self._backoff = backoff
        self._connect = connect if connect is not None else self._connectTCP
        self.connection: Optional[_NodeConnection] = None
        self.down: Optional[BaseException] = None
        self._connecting = False
        self._starting: List[RedisConnection] = []
        self._connectedAt = 0.0
        self._delays: Optional[Iterator[float]] = None
        self._retry: Optional[IDelayedCall] = None
        self._waiting: List[_Waiting] = []
        self._waitingCount = 0
        self._closed = False
        self.health = health

    def _connectTCP(self, address: Address, protocol: RedisConnection) -> "Deferred[Any]":
        endpoint = TCP4ClientEndpoint(self._reactor, address[0], address[1], timeout=self._connectTimeout)
        return connectProtocol(endpoint, protocol)

    # Connections

    def newConnection(self, made: Optional[List[RedisConnection]] = None,
                      factory: Optional[Callable[..., "_NodeConnection"]] = None) -> "Deferred[RedisConnection]":
        """
        Make a connection of its own to the server, handshake done (for a
        transaction, which must not share the pipelined connection).

        @param made: where to put the connection as soon as it is made,
            to close it before its handshake is done.
        @param factory: makes the connection, called as
            C{factory(clock, timeout, maxPending, encoding=encoding)}
            (default: a L{RedisConnection} that tells C{onLost} when it
            ends).
        @return: a Deferred firing with the L{RedisConnection}, or failing
            with the connection error or L{RedisHandshakeError}.
        """
        factory = factory if factory is not None else _NodeConnection
        connection = factory(self._reactor, self._timeout, self._maxPending, encoding=self._encoding)
        if made is not None:
            made[:] = [connection]
        d = self._connect(self.address, connection)
        d.addCallback(lambda _: self._shake(connection))
        return d

    def _shake(self, connection: RedisConnection) -> "Deferred[RedisConnection]":
        if not self._handshake:
            return succeed(connection)
        replies = connection.executeMany(self._handshake, timeout=self._connectTimeout)

        def failed(failure: Failure) -> Failure:
            connection.close()
            reason: Any = failure.value
            if isinstance(reason, FirstError):
                reason = reason.subFailure.value
            return Failure(RedisHandshakeError(reason))

        done = gatherResults(replies, consumeErrors=True)
        return done.addCallbacks(lambda _: connection, failed)

    def start(self) -> None:
        """
        Start connecting, unless a connection is up or being made.
        """
        if self._closed or self.connection is not None or self._connecting:
            return
        self._connecting = True
        self._retry = None
        d = self.newConnection(self._starting)
        d.addCallbacks(self._connected, self._failed)

    def _connected(self, connection: "_NodeConnection") -> None:
        self._connecting = False
        self._starting[:] = []
        if self._closed:
            connection.close()
            return
        self.connection = connection
        if self.down is not None and self.health is not None:
            self.health.connected()
        self.down = None
        self._delays = None
        self._connectedAt = self._reactor.seconds()
        connection.onLost = self._lost
        waiting, self._waiting, self._waitingCount = self._waiting, [], 0
        for entry in waiting:
            if entry.timer is not None:
                entry.timer.cancel()
            remaining = entry.timeout
            if remaining is not None:
                remaining = max(remaining - (self._reactor.seconds() - entry.since), 0.0)
            sent = connection.executeMany(entry.commands, timeout=remaining)
            for outer, inner in zip(entry.deferreds, sent):
                inner.chainDeferred(outer)

    def _failed(self, failure: Failure) -> None:
        self._connecting = False
        self._starting[:] = []
        if self._closed:
            return
        self.down = failure.value
        if self.health is not None:
            self.health.connectFailed()
        error = failure.value
        if not isinstance(error, RedisHandshakeError):
            error = ServerDownError(self.address, error)
        # Before the waiters hear of it: they may close the node.
        self._retryLater()
        waiting, self._waiting, self._waitingCount = self._waiting, [], 0
        for entry in waiting:
            if entry.timer is not None:
                entry.timer.cancel()
            for d in entry.deferreds:
                d.errback(Failure(error))

    def _lost(self, connection: "_NodeConnection") -> None:
        if connection is not self.connection:
            return
        self.connection = None
        if self._closed:
            return
        if self._reactor.seconds() - self._connectedAt >= HEALTHY_AFTER:
            self.start()
        else:
            self._retryLater()

    def _retryLater(self) -> None:
        if self._delays is None:
            self._delays = self.backoffDelays()
        if self.down is None:
            self.down = ClientClosedError("the connection was lost")
        self._retry = self._reactor.callLater(next(self._delays), self.start)

    # Settings the client's other connections share

    @property
    def reactor(self) -> Any:
        """
        The reactor (and clock) of the node's connections.
        """
        return self._reactor

    @property
    def timeout(self) -> Optional[float]:
        """
        The client's C{timeout} option: a command's default timeout.
        """
        return self._timeout

    @property
    def encoding(self) -> Optional[str]:
        """
        The codec of replies' strings (None: bytes).
        """
        return self._encoding

    @property
    def maxPending(self) -> int:
        """
        The client's C{maxPending} option.
        """
        return self._maxPending

    def backoffDelays(self) -> Iterator[float]:
        """
        @return: the delays between reconnection attempts, as the node's
            own (the client's C{backoff}, jittered).
        """
        return exponentialJittered(self._backoff[0], self._backoff[1], self._random)

    # Commands

    def execute(self, *args: CommandArgument) -> "Deferred[Any]":
        """
        Send one command, with the default timeout.

        @return: as L{executeMany}'s one Deferred.
        """
        connection = self.connection
        if connection is not None:
            # Made with this node's timeout, its default.
            health = self.health
            if health is None:
                return connection.executeOne(args)
            dead = health.admit(1)
            if dead is not None:
                return fail(dead)
            return health.watched(connection.executeOne(args))
        return self.executeMany([args])[0]

    def executeMany(self, commands: Sequence[Command], timeout: Optional[float] = -1.0) -> List["Deferred[Any]"]:
        """
        Send commands (pipelined, in one write) and wait for their replies.

        @param timeout: as L{RedisConnection.executeMany}'s; while waiting
            for a connection too.
        @return: a Deferred per command: as L{RedisConnection.executeMany}'s,
            or failing with L{ServerDownError} while the server is down
            (L{txscales.redis._errors.ServerDeadError} while failure accrual
            has it dead).
        """
        if timeout == -1.0:
            timeout = self._timeout
        health = self.health
        if health is not None:
            dead = health.admit(len(commands))
            if dead is not None:
                return [fail(dead) for _ in commands]
        if self.connection is not None:
            sent = self.connection.executeMany(commands, timeout)
            if health is not None:
                health.watch(sent)
            return sent
        error: Optional[TxScalesError] = None
        if self._closed:
            error = ClientClosedError("the Redis client is closed")
        elif self.down is not None:
            error = ServerDownError(self.address, self.down)
        elif self._waitingCount + len(commands) > self._maxPending:
            error = TooManyPendingCommandsError(
                "%d commands already wait for a connection to %s:%d (maxPending %d)"
                % (self._waitingCount, self.address[0], self.address[1], self._maxPending))
        if error is not None:
            return [fail(error) for _ in commands]
        entry = _Waiting(commands, timeout, self._reactor.seconds())
        if timeout is not None:
            entry.timer = self._reactor.callLater(timeout, self._waitedTooLong, entry)
        self._waiting.append(entry)
        self._waitingCount += len(commands)
        self.start()
        if health is not None:
            health.watch(entry.deferreds)
        return entry.deferreds

    def _waitedTooLong(self, entry: _Waiting) -> None:
        entry.timer = None
        self._waiting.remove(entry)
        self._waitingCount -= len(entry.commands)
        for d in entry.deferreds:
            d.errback(Failure(RequestTimeoutError(entry.timeout or 0.0, written=False)))

    def describe(self) -> Dict[str, Any]:
        """
        @return: the server for the admin page, as the client stack's
            endpoints describe themselves: C{host}, C{port}, C{status}
            (C{open} once connected, C{closed} while down, else C{busy}:
            connecting), C{pending} commands (waiting for the connection or
            for their replies), whether it is C{down} and why, and its
            failure C{accrual} (None when off).
        """
        connection = self.connection
        status = "open" if connection is not None else "closed" if self.down is not None else "busy"
        pending = self._waitingCount + (connection.pendingCount if connection is not None else 0)
        return {
            "host": self.address[0],
            "port": self.address[1],
            "status": status,
            "pending": pending,
            "down": self.down is not None,
            "downReason": str(self.down) if self.down is not None else None,
            "accrual": self.health.accrual.describe() if self.health is not None else None,
        }

    def close(self) -> None:
        """
        Close the connection and stop reconnecting: commands waiting fail
        with L{ClientClosedError}.
        """
        self._closed = True
        if self.health is not None:
            self.health.stop()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        waiting, self._waiting, self._waitingCount = self._waiting, [], 0
        for entry in waiting:
            if entry.timer is not None:
                entry.timer.cancel()
            for d in entry.deferreds:
                d.errback(Failure(ClientClosedError("the Redis client was closed")))
        for connection in [self.connection] + self._starting:
            if connection is not None:
                connection.close()
        self.connection = None

