"""
Pub/sub: a client's subscriptions, on a connection of their own per server.

A connection that subscribed only hears messages (in RESP2 it cannot even
run other commands), so each server a client subscribes on gets one
dedicated connection, never the pipelined one, shared by every
subscription of the client there: a channel (or pattern) is subscribed
once however many subscriptions name it, and unsubscribed when the last
of them ends.  The connection is closed when nothing is subscribed on it.

A channel is subscribed on the server its name maps to on the client's
ketama ring, the server C{publish} sends it to; a pattern, which may match
channels of any server, on every server.

When the connection is lost the client connects again (at once after a
connection that lived long, else after the client's backoff) and
subscribes again to everything still subscribed.  Messages published
meanwhile are lost: Redis does not keep them.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from txscales._ratelimit import RateLimitedLog
from txscales.errors import ClientClosedError, RequestTimeoutError
from txscales.redis._node import Address, RedisNode
from txscales.redis._subscriber import CHANNEL, PATTERN, ServerSubscriber

_log = Logger(namespace="txscales.redis.pubsub")


class Subscription:
    """
    Channels, or patterns, a client subscribed to, and the function their
    messages go to.  Made by L{txscales.redis.RedisClient.subscribe} and
    L{txscales.redis.RedisClient.psubscribe}.

    @ivar channels: the channels (as given; empty for patterns).
    @ivar patterns: the patterns (as given; empty for channels).
    @ivar kind: C{"channel"} or C{"pattern"}.
    @ivar keys: the channels or patterns as bytes, each once.
    @ivar onMessage: the function messages go to.
    @ivar reason: why the subscription ended, when the server refused it
        (or refused it again after a reconnection), else None.
    """

    def __init__(self, manager: "PubSub", kind: str, names: Sequence[Any], keys: List[bytes],
                 onMessage: Callable[..., Any]) -> None:
        self._manager = manager
        self.kind = kind
        self.channels = tuple(names) if kind == CHANNEL else ()
        self.patterns = tuple(names) if kind == PATTERN else ()
        self.keys = keys
        self.onMessage = onMessage
        self.reason: Optional[BaseException] = None
        self._placed: Dict[ServerSubscriber, List[bytes]] = {}
        self._awaiting: Set[Tuple[ServerSubscriber, bytes]] = set()
        self._ready: Optional["Deferred[Subscription]"] = Deferred(self._cancelled)
        self._timer: Optional[IDelayedCall] = None
        self._ended = False
        self._closedWaiters: List["Deferred[None]"] = []

    @property
    def active(self) -> bool:
        """
        Whether the subscription was confirmed and has not ended (it stays
        active while its connection is being made again).
        """
        return self._ready is None and not self._ended

    def unsubscribe(self) -> "Deferred[None]":
        """
        End the subscription: its function is not called any more.

        @return: a Deferred firing once the servers confirmed the
            channels (or patterns) no other subscription of the client
            names (at once for the others, or when not connected).
        """
        return self._manager.end(self, None)

    def whenClosed(self) -> "Deferred[None]":
        """
        @return: a Deferred firing with None once the subscription ended by
            L{unsubscribe} or the client's close, or failing with
            L{reason} when the server refused it.
        """
        d: "Deferred[None]" = Deferred()
        if self._ended:
            if self.reason is not None:
                d.errback(Failure(self.reason))
            else:
                d.callback(None)
        else:
            self._closedWaiters.append(d)
        return d

    def _cancelled(self, d: "Deferred[Subscription]") -> None:
        self._ready = None
        self._manager.end(self, None)

    def _confirmed(self, subscriber: ServerSubscriber, name: bytes) -> None:
        self._awaiting.discard((subscriber, name))
        self._checkReady()

    def _checkReady(self) -> None:
        if self._ready is not None and not self._awaiting and not self._ended:
            ready, self._ready = self._ready, None
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            self._timer = None
            ready.callback(self)

    def __repr__(self) -> str:
        return "<Subscription %s %r%s>" % (self.kind, list(self.channels or self.patterns),
                                          "" if self.active else " (not active)")


class PubSub:
    """
    A client's subscriptions, on the L{ServerSubscriber} of each server.

    @ivar log: where errors of message functions go, rate-limited.
    """

    def __init__(self) -> None:
        self._encoding: Optional[str] = None
        self._subscribers: Dict[Address, ServerSubscriber] = {}
        self._subscriptions: Dict[Subscription, None] = {}
        self._nodes: List[RedisNode] = []
        self._nodeFor: Callable[[bytes], RedisNode] = lambda key: self._nodes[0]
        self.log: Optional[RateLimitedLog] = None
        self._closed = False

    def setNodes(self, nodes: Sequence[RedisNode], nodeFor: Callable[[bytes], RedisNode]) -> None:
        """
        Follow a change of the client's servers: the channels whose server
        changed move, patterns are subscribed on new servers.

        @param nodes: the servers now.
        @param nodeFor: the server of a channel name.
        """
        self._nodes = list(nodes)
        self._nodeFor = nodeFor
        if self.log is None and nodes:
            # The nodes share the client's options.
            self.log = RateLimitedLog(nodes[0].reactor, _log)
            self._encoding = nodes[0].encoding
        addresses = {node.address: node for node in nodes}
        for address, subscriber in list(self._subscribers.items()):
            if addresses.get(address) is not subscriber.node:
                del self._subscribers[address]
                subscriber.close()
        for subscription in list(self._subscriptions):
            self._place(subscription)

    def _subscriberFor(self, node: RedisNode) -> ServerSubscriber:
        subscriber = self._subscribers.get(node.address)
        if subscriber is None:
            subscriber = self._subscribers[node.address] = ServerSubscriber(node, self)
        return subscriber

    def subscribe(self, kind: str, names: Sequence[Any], onMessage: Callable[..., Any],
                  whenReady: Callable[[Callable[[], "Deferred[Any]"]], "Deferred[Any]"]) -> "Deferred[Subscription]":
        """
        Subscribe to channels or patterns.

        @param kind: L{CHANNEL} or L{PATTERN}.
        @param whenReady: calls its argument once the client knows its
            servers (see C{RedisClient._whenReady}).
        @return: a Deferred firing with the L{Subscription} once each server
            confirmed it; failing with L{ServerDownError},
            L{RedisHandshakeError}, L{RequestTimeoutError} (the client's
            C{timeout}), the server's refusal or L{ClientClosedError}.
        @raise TypeError: without a name, for a name that is not bytes or
            str, or an C{onMessage} that is not callable.
        """
        keys = []
        for name in names:
            key = _nameBytes(name)
            if key not in keys:
                keys.append(key)
        if not keys:
            raise TypeError("subscribing needs at least one %s" % (kind,))
        if not callable(onMessage):
            raise TypeError("onMessage must be callable, not %r" % (onMessage,))
        return whenReady(lambda: self._subscribe(Subscription(self, kind, names, keys, onMessage)))

    def _subscribe(self, subscription: Subscription) -> "Deferred[Subscription]":
        ready = subscription._ready
        assert ready is not None
        if self._closed:
            self.end(subscription, ClientClosedError("the Redis client is closed"))
            return ready
        self._subscriptions[subscription] = None
        timeout = self._nodes[0].timeout if self._nodes else None
        if timeout is not None:
            subscription._timer = self._nodes[0].reactor.callLater(
                timeout, self.end, subscription, RequestTimeoutError(timeout, written=True))
        self._place(subscription)
        for subscriber in subscription._placed:
            if subscriber.down is not None:
                # As commands do while their server is down.
                self.end(subscription, subscriber.down)
                break
        subscription._checkReady()
        return ready

    def _place(self, subscription: Subscription) -> "Deferred[None]":
        """
        Subscribe C{subscription} on the servers it belongs to now, and
        unsubscribe it from others.

        @return: a Deferred firing once the unsubscriptions are confirmed.
        """
        desired: Dict[ServerSubscriber, List[bytes]] = {}
        if not subscription._ended and self._nodes:
            if subscription.kind == PATTERN:
                for node in self._nodes:
                    desired[self._subscriberFor(node)] = list(subscription.keys)
            else:
                for key in subscription.keys:
                    desired.setdefault(self._subscriberFor(self._nodeFor(key)), []).append(key)
        old, subscription._placed = subscription._placed, desired
        removed = []
        for subscriber, names in old.items():
            keep = desired.get(subscriber, ())
            gone = [name for name in names if name not in keep]
            if gone:
                subscription._awaiting -= set((subscriber, name) for name in gone)
                removed.append(subscriber.remove(subscription.kind, gone, subscription))
        wait = subscription._ready is not None
        for subscriber, names in desired.items():
            had = old.get(subscriber, ())
            new = [name for name in names if name not in had]
            if new:
                for name in subscriber.add(subscription.kind, new, subscription, wait):
                    subscription._awaiting.add((subscriber, name))
        return gatherResults(removed).addCallback(lambda _: None)

    def end(self, subscription: Subscription, error: Optional[BaseException]) -> "Deferred[None]":
        """
        End a subscription: unsubscribe it, fail its Deferred (when not
        confirmed yet, with C{error}) or tell its L{Subscription.whenClosed}.

        @return: a Deferred firing once the servers confirmed.
        """
        if subscription._ended:
            return succeed(None)
        subscription._ended = True
        if isinstance(error, ClientClosedError) and subscription._ready is None:
            # Closing the client ends its subscriptions without an error.
            error = None
        subscription.reason = error if subscription._ready is None else None
        self._subscriptions.pop(subscription, None)
        if subscription._timer is not None and subscription._timer.active():
            subscription._timer.cancel()
        subscription._timer = None
        done = self._place(subscription)
        ready, subscription._ready = subscription._ready, None
        if ready is not None:
            ready.errback(Failure(error if error is not None else ClientClosedError("the subscription ended")))
        else:
            if error is not None:
                self.warn("a Redis subscription ended: {error}", error=error)
            waiters, subscription._closedWaiters = subscription._closedWaiters, []
            for d in waiters:
                if error is not None:
                    d.errback(Failure(error))
                else:
                    d.callback(None)
        return done

    def deliver(self, subscriptions: List[Subscription], parts: List[Any]) -> None:
        """
        Call the functions of C{subscriptions} with a message.

        @param parts: C{[channel, message]}, or C{[pattern, channel,
            message]}, as bytes.
        """
        if self._encoding is not None:
            try:
                parts = [part.decode(self._encoding) for part in parts]
            except (UnicodeDecodeError, AttributeError):
                self.warn("a Redis message on {channel!r} does not decode; dropped", channel=parts[-2])
                return
        for subscription in list(subscriptions):
            if subscription._ended:
                continue
            try:
                subscription.onMessage(*parts)
            except Exception:
                if self.log is not None:
                    self.log.failure("a Redis subscription's onMessage raised", Failure())

    def warn(self, format: str, **kwargs: Any) -> None:
        """
        Log a warning, rate-limited.
        """
        if self.log is not None:
            self.log.warn(format, **kwargs)

    def close(self) -> None:
        """
        End every subscription and close the connections.
        """
        self._closed = True
        subscribers, self._subscribers = self._subscribers, {}
        for subscriber in subscribers.values():
            subscriber.close()
        for subscription in list(self._subscriptions):
            self.end(subscription, ClientClosedError("the Redis client was closed"))


def _nameBytes(name: Any) -> bytes:
    if isinstance(name, bytes):
        return name
    if isinstance(name, str):
        return name.encode("utf-8")
    raise TypeError("a channel or pattern is bytes or str, not %r" % (name,))
