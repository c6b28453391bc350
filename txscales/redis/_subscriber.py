"""
The pub/sub connection to one server of a client (see
L{txscales.redis._pubsub}): what is subscribed there, the server's
confirmations, and the connection made again after it is lost.
"""

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from txscales.redis._errors import RedisHandshakeError, ServerDownError
from txscales.redis._node import HEALTHY_AFTER, RedisNode, _NodeConnection
from txscales.redis._resp import encodeCommand

if TYPE_CHECKING:
    from txscales.redis._pubsub import PubSub, Subscription

CHANNEL = "channel"
PATTERN = "pattern"

_COMMANDS = {CHANNEL: ("SUBSCRIBE", "UNSUBSCRIBE"), PATTERN: ("PSUBSCRIBE", "PUNSUBSCRIBE")}
_CONFIRMATIONS = {
    b"subscribe": (CHANNEL, True),
    b"unsubscribe": (CHANNEL, False),
    b"psubscribe": (PATTERN, True),
    b"punsubscribe": (PATTERN, False),
}


class _PubSubConnection(_NodeConnection):
    """
    A connection that, once its handshake is done and C{onReply} set, gives
    every reply (RESP2 arrays, RESP3 pushes, error replies) to C{onReply}:
    in subscribe mode replies do not answer commands one for one.  Its
    replies stay bytes, decoded by the subscriber.
    """

    onReply: Optional[Callable[[Any], None]] = None

    def __init__(self, clock: Any, timeout: Optional[float], maxPending: int, encoding: Optional[str] = None) -> None:
        _NodeConnection.__init__(self, clock, timeout, maxPending)

    def _deliver(self, replies: List[Any]) -> bool:
        if self.onReply is None:
            return _NodeConnection._deliver(self, replies)
        for reply in replies:
            self.onReply(reply)
        return True

    def send(self, command: Sequence[Any]) -> None:
        """
        Write a command whose replies go to C{onReply}.
        """
        if self._transport is not None and self._closed is None:
            self._transport.write(encodeCommand(command))


class _Entry:
    """
    A channel or pattern of a server: the subscriptions that name it,
    whether the server confirmed it on the current connection, and the
    subscriptions waiting for that.
    """

    __slots__ = ("subscriptions", "confirmed", "waiting")

    def __init__(self) -> None:
        self.subscriptions: List["Subscription"] = []
        self.confirmed = False
        self.waiting: List["Subscription"] = []


class _Sent:
    """
    A (P)(UN)SUBSCRIBE written, with the names whose confirmation is still
    to come, in order.
    """

    __slots__ = ("kind", "subscribe", "names", "done")

    def __init__(self, kind: str, subscribe: bool, names: List[bytes]) -> None:
        self.kind = kind
        self.subscribe = subscribe
        self.names = deque(names)
        self.done: "Deferred[None]" = Deferred()


class ServerSubscriber:
    """
    The pub/sub connection to one server, and what is subscribed on it.
    """

    def __init__(self, node: RedisNode, manager: "PubSub") -> None:
        self.node = node
        self._manager = manager
        self._tables: Dict[str, Dict[bytes, _Entry]] = {CHANNEL: {}, PATTERN: {}}
        self._sent: Deque[_Sent] = deque()
        self.connection: Optional[_PubSubConnection] = None
        self._made: List[Any] = []
        self._connecting = False
        self._connectedAt = 0.0
        self._delays: Optional[Any] = None
        self._retry: Optional[IDelayedCall] = None
        self._closed = False
        self.down: Optional[BaseException] = None

    def _wanted(self) -> bool:
        return bool(self._tables[CHANNEL] or self._tables[PATTERN])

    # What is subscribed

    def add(self, kind: str, names: Sequence[bytes], subscription: "Subscription", wait: bool) -> List[bytes]:
        """
        Subscribe C{subscription} to C{names} here.

        @param wait: whether C{subscription} waits for the server's
            confirmation of the names it adds.
        @return: the names whose confirmation C{subscription} waits for.
        """
        table = self._tables[kind]
        new, awaited = [], []
        for name in names:
            entry = table.get(name)
            if entry is None:
                entry = table[name] = _Entry()
                new.append(name)
            entry.subscriptions.append(subscription)
            if wait and not entry.confirmed:
                entry.waiting.append(subscription)
                awaited.append(name)
        if new and self.connection is not None:
            self._send(kind, True, new)
        self._start()
        return awaited

    def remove(self, kind: str, names: Sequence[bytes], subscription: "Subscription") -> "Deferred[None]":
        """
        Unsubscribe C{subscription} from C{names} here.

        @return: a Deferred firing once the server confirmed the names no
            other subscription names (at once when there are none, or
            without a connection).
        """
        table = self._tables[kind]
        gone = []
        for name in names:
            entry = table.get(name)
            if entry is None or subscription not in entry.subscriptions:
                continue
            entry.subscriptions.remove(subscription)
            if subscription in entry.waiting:
                entry.waiting.remove(subscription)
            if not entry.subscriptions:
                del table[name]
                gone.append(name)
        done: "Deferred[None]" = succeed(None)
        if gone and self.connection is not None:
            done = self._send(kind, False, gone)
        self._idle()
        return done

    def _send(self, kind: str, subscribe: bool, names: List[bytes]) -> "Deferred[None]":
        sent = _Sent(kind, subscribe, names)
        self._sent.append(sent)
        assert self.connection is not None
        self.connection.send([_COMMANDS[kind][0 if subscribe else 1]] + names)
        return sent.done

    def _idle(self) -> None:
        """
        Close the connection once nothing is subscribed nor unconfirmed.
        """
        if self._wanted() or self._sent:
            return
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        # The next subscription tries at once.
        self.down = None
        self._delays = None
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close()

    # Replies

    def _received(self, connection: _PubSubConnection, reply: Any) -> None:
        if connection is not self.connection:
            return
        if isinstance(reply, Exception):
            self._refused(reply)
            return
        if not isinstance(reply, list) or not reply:
            return
        kind = reply[0]
        if kind == b"message" and len(reply) == 3:
            self._dispatch(CHANNEL, reply[1], reply[1:])
        elif kind == b"pmessage" and len(reply) == 4:
            self._dispatch(PATTERN, reply[1], reply[1:])
        elif kind in _CONFIRMATIONS and len(reply) == 3 and isinstance(reply[1], bytes):
            self._confirmed(*_CONFIRMATIONS[kind], reply[1])

    def _dispatch(self, kind: str, name: bytes, parts: List[Any]) -> None:
        entry = self._tables[kind].get(name)
        if entry is None:
            return
        self._manager.deliver(entry.subscriptions, parts)

    def _confirmed(self, kind: str, subscribe: bool, name: bytes) -> None:
        head = self._sent[0] if self._sent else None
        if head is None or head.kind != kind or head.subscribe != subscribe or head.names[0] != name:
            # Not what was asked: start again from a new connection.
            self._manager.warn("unexpected pub/sub confirmation from {address}: {kind} {name!r}",
                                   address=self.node.address, kind=kind, name=name)
            if self.connection is not None:
                self.connection.close()
            return
        head.names.popleft()
        if not head.names:
            self._sent.popleft()
            head.done.callback(None)
        if subscribe:
            entry = self._tables[kind].get(name)
            if entry is not None and not entry.confirmed:
                entry.confirmed = True
                waiting, entry.waiting = entry.waiting, []
                for subscription in waiting:
                    subscription._confirmed(self, name)
        self._idle()

    def _refused(self, error: Exception) -> None:
        """
        The server refused the command written first (a channel the ACL
        user may not use): the subscriptions naming its channels end.
        """
        if not self._sent:
            return
        head = self._sent.popleft()
        head.done.callback(None)
        if head.subscribe:
            table = self._tables[head.kind]
            ended: List[Subscription] = []
            for name in head.names:
                entry = table.get(name)
                if entry is not None and not entry.confirmed:
                    ended.extend(s for s in entry.subscriptions if s not in ended)
            for subscription in ended:
                self._manager.end(subscription, error)
        self._idle()

    # The connection

    def _start(self) -> None:
        if self._closed or self.connection is not None or self._connecting or self._retry is not None:
            return
        if not self._wanted():
            return
        self._connecting = True
        d = self.node.newConnection(self._made, factory=_PubSubConnection)
        d.addCallbacks(self._connected, self._failed)

    def _connected(self, connection: _PubSubConnection) -> None:
        self._connecting = False
        self._made[:] = []
        if self._closed or not self._wanted():
            connection.close()
            return
        self.connection = connection
        self.down = None
        self._connectedAt = self.node.reactor.seconds()
        connection.onLost = self._lost
        connection.onReply = lambda reply: self._received(connection, reply)
        for kind, table in self._tables.items():
            if table:
                self._send(kind, True, list(table))

    def _failed(self, failure: Failure) -> None:
        self._connecting = False
        self._made[:] = []
        if self._closed:
            return
        error = failure.value
        if not isinstance(error, RedisHandshakeError):
            error = ServerDownError(self.node.address, error)
        self.down = error
        self._retryLater()
        # Subscriptions not confirmed yet fail, as commands do while the
        # server is down; those confirmed before wait for the server.
        waiting: List[Subscription] = []
        for table in self._tables.values():
            for entry in table.values():
                waiting.extend(s for s in entry.waiting if s not in waiting)
        for subscription in waiting:
            self._manager.end(subscription, error)

    def _lost(self, connection: Any) -> None:
        if connection is not self.connection:
            return
        self.connection = None
        sent, self._sent = self._sent, deque()
        for item in sent:
            item.done.callback(None)
        for table in self._tables.values():
            for entry in table.values():
                entry.confirmed = False
        if self._closed or not self._wanted():
            return
        if self.node.reactor.seconds() - self._connectedAt >= HEALTHY_AFTER:
            self._delays = None
            self._start()
        else:
            self._retryLater()

    def _retryLater(self) -> None:
        if not self._wanted():
            return
        if self._delays is None:
            self._delays = self.node.backoffDelays()
        self._retry = self.node.reactor.callLater(next(self._delays), self._retryNow)

    def _retryNow(self) -> None:
        self._retry = None
        self._start()

    def close(self) -> None:
        """
        Close the connection and stop reconnecting.
        """
        self._closed = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        sent, self._sent = self._sent, deque()
        for item in sent:
            item.done.callback(None)
        for connection in [self.connection] + self._made:
            if connection is not None:
                connection.close()
        self.connection = None
        self._made[:] = []


