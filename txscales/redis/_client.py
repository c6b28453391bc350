"""
L{RedisClient}: commands routed to one server, or sharded by key over
several with a ketama ring; its pipelines and transactions.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred, DeferredList, FirstError, fail, gatherResults, maybeDeferred, succeed
from twisted.python.failure import Failure

from txscales._registry import REGISTRY
from txscales.errors import ClientClosedError
from txscales.interfaces import IDestination
from txscales.redis._blockingcommands import BlockingCommands, blockingCommand
from txscales.redis._blockingpool import DEFAULT_BLOCKING_POOL_SIZE, BlockingPools
from txscales.redis._commands import Commands, Key, Transform
from txscales.redis._connection import RedisConnection
from txscales.redis._errors import (
    CrossShardError,
    KeylessCommandError,
    TooManyPendingCommandsError,
    WatchConflictError,
)
from txscales.redis._hashing import KetamaRing
from txscales.redis._health import liveRing
from txscales.redis._node import Address, RedisNode
from txscales.redis._pubsub import CHANNEL, PATTERN, PubSub, Subscription
from txscales.redis._routing import commandKeys
from txscales.redis._stats import RedisStats

Combine = str


class RedisClient(Commands, BlockingCommands):
    """
    A Redis client: every helper of L{Commands} returns a Deferred of its
    reply.  Made by L{txscales.redis.Redis.newClient}.

    With several servers, a command goes to the server its key maps to on
    a ketama ring (as twemproxy's and Finagle's); a server that is down
    is not replaced: its keys fail fast with L{ServerDownError} until it is
    back, unless C{ejectFailedHosts} takes a server that failure accrual
    marked dead out of the ring until it is revived.

    @ivar label: the client's name in metrics, or None.
    @ivar dest: the destination URI it was made with, or None.
    @cvar sharding: how commands find their server, for the admin page.
    """

    label: Optional[str] = None
    dest: Optional[str] = None
    sharding = "ketama"

    def __init__(self, makeNode: Callable[[Address], RedisNode], addresses: Optional[Sequence[Address]],
                 destination: Optional[IDestination], single: bool, stats: Optional[RedisStats],
                 maxPending: int, maxTransactionRetries: int,
                 blockingPoolSize: int = DEFAULT_BLOCKING_POOL_SIZE, ejectFailedHosts: bool = False) -> None:
        """
        @param makeNode: makes the L{RedisNode} of an address.
        @param addresses: the servers of a static destination.
        @param destination: the discovered servers, followed as they change
            (when C{addresses} is None).
        @param single: whether keyless commands may be sent (one static
            server).
        @param stats: the metrics, or None.
        @param maxPending: bound on the commands waiting for discovery.
        @param maxTransactionRetries: how often a transaction is run again
            after a WATCH conflict.
        @param blockingPoolSize: the most connections of blocking commands
            per server.
        @param ejectFailedHosts: take a server that failure accrual marked
            dead out of the ring (its keys go to the next server on it),
            and put it back when its probe may be sent.
        """
        self._makeNode = makeNode
        self._single = single
        self._stats = stats
        self._maxPending = maxPending
        self._maxTransactionRetries = maxTransactionRetries
        self._nodes: Dict[Address, RedisNode] = {}
        self._ring: Optional[KetamaRing[RedisNode]] = None
        self._addresses: List[Address] = []
        self._ejectFailedHosts = ejectFailedHosts
        self._destination = destination
        self._discoveryWaiters: List["Deferred[None]"] = []
        self._discoveryFailure: Optional[Failure] = None
        self._closed = False
        self._stopWatching: Callable[[], None] = lambda: None
        self._pubsub = PubSub()
        self._pools = BlockingPools(blockingPoolSize)
        if addresses is not None:
            self._setServers(addresses)
        elif destination is not None:
            destination.ready.addErrback(self._notDiscovered)
            self._stopWatching = destination.watch(self._setServers)

    # Servers

    @property
    def nodes(self) -> List[RedisNode]:
        """
        The servers' L{RedisNode}s, in the order of their addresses.
        """
        return [self._nodes[a] for a in sorted(self._nodes)]

    def _setServers(self, addresses: Sequence[Address]) -> None:
        if self._closed:
            return
        addresses = sorted(set((host, int(port)) for host, port in addresses))
        nodes: Dict[Address, RedisNode] = {}
        for address in addresses:
            node = self._nodes.pop(address, None)
            if node is None:
                node = self._makeNode(address)
                if self._ejectFailedHosts and node.health is not None:
                    node.health.onChange = self._healthChanged
            nodes[address] = node
        for node in self._nodes.values():
            node.close()
        self._nodes = nodes
        self._addresses = addresses
        self._ring = liveRing(nodes, addresses, self._ejectFailedHosts)
        self._pools.retain(list(nodes.values()))
        self._pubsub.setNodes([nodes[a] for a in addresses], self.nodeFor)
        self._releaseWaiters()

    def _healthChanged(self) -> None:
        if self._closed:
            return
        self._ring = liveRing(self._nodes, self._addresses, self._ejectFailedHosts)
        self._pubsub.setNodes([self._nodes[a] for a in self._addresses], self.nodeFor)

    def _notDiscovered(self, failure: Failure) -> None:
        self._discoveryFailure = failure
        self._releaseWaiters(failure)

    def _waitForServers(self, call: Callable[[], "Deferred[Any]"], what: str,
                        onWait: Callable[[], object] = lambda: None) -> "Deferred[Any]":
        """
        Run C{call} once the servers are known (L{_releaseWaiters}), at
        most C{maxPending} calls waiting.

        @param what: what they wait for, in the error past C{maxPending}.
        @param onWait: called once a call waits.
        """
        if len(self._discoveryWaiters) >= self._maxPending:
            return fail(TooManyPendingCommandsError(
                "%d commands already wait for %s (maxPending %d)" % (len(self._discoveryWaiters), what,
                                                                     self._maxPending)))
        waiter: "Deferred[None]" = Deferred()
        self._discoveryWaiters.append(waiter)
        onWait()
        return waiter.addCallback(lambda _: self._whenReady(call))

    def _releaseWaiters(self, failure: Optional[Failure] = None) -> None:
        """
        Let the calls waiting for the servers go on, or fail them with
        C{failure}.
        """
        waiters, self._discoveryWaiters = self._discoveryWaiters, []
        for waiter in waiters:
            if failure is None:
                waiter.callback(None)
            else:
                waiter.errback(failure)

    def nodeFor(self, key: Key) -> RedisNode:
        """
        @return: the L{RedisNode} of the server C{key} maps to.
        @raise ClientClosedError: when the client is closed or has no
            server yet.
        """
        if self._ring is None:
            raise ClientClosedError("the Redis client is closed" if self._closed else "the Redis client has no server")
        return self._ring.nodeFor(_keyBytes(key))

    def _nodeForKeys(self, keys: Optional[Sequence[Key]]) -> RedisNode:
        if self._single and len(self._nodes) == 1:
            return next(iter(self._nodes.values()))
        if not keys:
            raise KeylessCommandError("a command without a key cannot be sent by a client sharded over servers")
        node = self.nodeFor(keys[0])
        for key in keys[1:]:
            if self.nodeFor(key) is not node:
                raise CrossShardError("the keys %r are on several servers" % (list(keys),))
        return node

    def _whenReady(self, call: Callable[[], "Deferred[Any]"]) -> "Deferred[Any]":
        if self._closed:
            return fail(ClientClosedError("the Redis client is closed"))
        if self._ring is not None or self._destination is None:
            return call()
        if self._discoveryFailure is not None:
            return fail(self._discoveryFailure)
        return self._waitForServers(call, "discovery")

    # Commands

    def execute(self, *args: Any) -> "Deferred[Any]":
        """
        Send a command.

        @param args: its name and arguments (bytes, str, int or float).
        @return: a Deferred of its reply; failing with the server's
            L{RedisReplyError}, L{RequestTimeoutError}, L{ServerDownError},
            L{ConnectionLostError}, or, on a sharded client,
            L{KeylessCommandError} or L{CrossShardError} (nothing sent).
            A blocking command (C{BLPOP}, C{XREAD ... BLOCK}, ...) runs on
            a pooled connection of its own, as the blocking helpers.
        """
        blocking = blockingCommand(args)
        if blocking is not None:
            return self._callBlocking(list(args), *blocking)
        return self._send(list(args), commandKeys(args) if args else None)

    def _callBlocking(self, args: List[Any], keys: List[Any], seconds: Optional[float],
                      transform: Transform = None) -> "Deferred[Any]":
        def send() -> "Deferred[Any]":
            d = self._pools.poolFor(self._nodeForKeys(keys)).execute(args, seconds)
            if self._stats is not None:
                self._stats.observe(args[0], d)
            return d if transform is None else d.addCallback(transform)

        return self._whenReady(lambda: maybeDeferred(send))

    # Pub/sub

    def subscribe(self, *channels: Key, onMessage: Callable[[Any, Any], Any]) -> "Deferred[Subscription]":
        """
        C{SUBSCRIBE} to C{channels}, on a connection of its own per server
        (a channel on the server C{publish} sends it to).

        After a lost connection the client connects again and subscribes
        again; messages published meanwhile are lost.

        @param onMessage: called with C{(channel, message)} for each
            message (bytes, or str with C{decodeResponses}); an exception
            it raises is logged (rate-limited) and the subscription goes
            on.
        @return: a Deferred firing with the L{Subscription} once the
            servers confirmed it; failing with L{ServerDownError},
            L{RedisHandshakeError}, L{RequestTimeoutError} (after the
            client's C{timeout}), the server's error (a channel the ACL
            user may not use) or L{ClientClosedError}.
        @raise TypeError: without a channel.
        """
        return self._pubsub.subscribe(CHANNEL, channels, onMessage, self._whenReady)

    def psubscribe(self, *patterns: Key, onMessage: Callable[[Any, Any, Any], Any]) -> "Deferred[Subscription]":
        """
        C{PSUBSCRIBE} to channels matching C{patterns}, on every server of
        a sharded client, as L{subscribe} does.

        @param onMessage: called with C{(pattern, channel, message)} for
            each message.
        @return: a Deferred firing with the L{Subscription}, as for
            L{subscribe}.
        @raise TypeError: without a pattern.
        """
        return self._pubsub.subscribe(PATTERN, patterns, onMessage, self._whenReady)

    def _send(self, args: List[Any], keys: Optional[Sequence[Key]], transform: Transform = None) -> "Deferred[Any]":
        if self._ring is None or self._closed:
            return self._whenReady(lambda: maybeDeferred(self._sendNow, args, keys, transform))
        # The hot path: no closure, no maybeDeferred.
        try:
            return self._sendNow(args, keys, transform)
        except Exception:
            return fail()

    def _sendNow(self, args: List[Any], keys: Optional[Sequence[Key]], transform: Transform) -> "Deferred[Any]":
        d = self._nodeForKeys(keys).execute(*args)
        if self._stats is not None and args:
            self._stats.observe(args[0], d)
        return d if transform is None else d.addCallback(transform)

    def _call(self, args: List[Any], transform: Transform = None) -> "Deferred[Any]":
        return self._send(args, args[1:2], transform)

    def _callKeys(self, name: str, keys: Sequence[Key], args: Sequence[Sequence[Any]], combine: Combine,
                  transform: Transform = None) -> "Deferred[Any]":
        return self._whenReady(lambda: self._split(name, keys, args, combine, transform))

    def _split(self, name: str, keys: Sequence[Key], args: Sequence[Sequence[Any]], combine: Combine,
               transform: Transform) -> "Deferred[Any]":
        if not keys:
            return fail(KeylessCommandError("%s needs at least one key" % (name,)))
        groups: Dict[Any, List[int]] = {}
        try:
            for index, key in enumerate(keys):
                groups.setdefault(self._shardOf(key), []).append(index)
        except Exception:
            return fail(Failure())
        parts = []
        for shard, indexes in groups.items():
            command: List[Any] = [name]
            for index in indexes:
                command.extend(args[index])
            d = self._sendTo(shard, command)
            if self._stats is not None:
                self._stats.observe(name, d)
            parts.append(d)

        def join(replies: List[Any]) -> Any:
            if combine == "sum":
                return sum(replies)
            if combine == "all":
                return all(transform(reply) if transform else reply for reply in replies)
            out: List[Any] = [None] * len(keys)
            for indexes, reply in zip(groups.values(), replies):
                for index, value in zip(indexes, reply):
                    out[index] = value
            return out

        return gatherResults(parts, consumeErrors=True).addCallbacks(join, _firstError)

    # Where commands go: the hooks a cluster client replaces.

    def _shardOf(self, key: Key) -> Any:
        """
        @return: what a split command groups C{key} by: its node.
        """
        return self._nodeForKeys([key])

    def _sendTo(self, shard: Any, command: List[Any]) -> "Deferred[Any]":
        """
        Send a command whose keys are all in C{shard} (a L{_shardOf}).
        """
        node: RedisNode = shard
        return node.executeMany([command])[0]

    def _sendMany(self, commands: Sequence[Tuple[List[Any], Optional[Sequence[Key]]]]) -> List["Deferred[Any]"]:
        """
        Send a pipeline's commands, each server's in one write.

        @param commands: C{(args, keys)} of each command.
        @return: a Deferred per command, in order.
        @raise RedisError: when a command cannot be routed (nothing sent).
        """
        groups: Dict[int, Tuple[RedisNode, List[int]]] = {}
        for index, (_, keys) in enumerate(commands):
            node = self._nodeForKeys(keys)
            groups.setdefault(id(node), (node, []))[1].append(index)
        results: List["Deferred[Any]"] = [None] * len(commands)  # type: ignore[list-item]
        for node, indexes in groups.values():
            for index, d in zip(indexes, node.executeMany([commands[i][0] for i in indexes])):
                results[index] = d
        return results

    def _transactionShard(self, keys: Sequence[Key]) -> Any:
        """
        @return: where a transaction over C{keys} runs: their node.
        """
        return self._nodeForKeys(keys)

    def _shardNode(self, shard: Any) -> RedisNode:
        """
        @return: the node of a L{_transactionShard}.
        """
        node: RedisNode = shard
        return node

    def _checkShard(self, keys: Optional[Sequence[Key]], shard: Any) -> None:
        """
        @raise CrossShardError: when C{keys} are not in C{shard}.
        """
        if keys and self._nodeForKeys(keys) is not shard:
            raise CrossShardError("the keys %r are not on the transaction's server" % (list(keys),))

    # Pipelines and transactions

    def pipeline(self) -> "Pipeline":
        """
        @return: a new L{Pipeline} of this client.
        """
        return Pipeline(self)

    def transaction(self, fn: Callable[["Transaction"], Any], watch: Sequence[Key] = (),
                    shardKey: Optional[Key] = None) -> "Deferred[List[Any]]":
        """
        Run C{MULTI}/C{EXEC} on a connection of its own, with C{WATCH} of
        C{watch} first, retrying when a watched key changed.

        C{fn(tx)} may read with C{tx}'s helpers (each a Deferred, sent at
        once after the WATCH), then calls C{tx.multi()} and queues the
        commands of the transaction with the helpers of what it returns.
        C{fn} may return a Deferred; it runs again, from the WATCH, when
        C{EXEC} answers nil (a watched key changed).

        @param watch: the keys to WATCH; on a sharded client they, and
            every key C{fn} uses, must be on one server.
        @param shardKey: on a sharded client without C{watch}, a key whose
            server runs the transaction.
        @return: a Deferred of the replies of the queued commands (an error
            reply of one of them is an exception in the list); failing
            with L{WatchConflictError} after C{maxTransactionRetries}
            conflicts, L{CrossShardError} or L{KeylessCommandError}
            (nothing sent), or C{fn}'s error (the transaction discarded).
        """
        keys = list(watch) or ([shardKey] if shardKey is not None else [])
        return self._whenReady(lambda: maybeDeferred(self._transactionShard, keys).addCallback(
            self._transact, fn, list(watch), 0))

    def _transact(self, shard: Any, fn: Callable[["Transaction"], Any], watch: List[Key],
                  attempt: int) -> "Deferred[List[Any]]":
        def run(connection: RedisConnection) -> "Deferred[Any]":
            tx = Transaction(self, shard, connection)
            d = connection.execute("WATCH", *watch) if watch else succeed(None)
            d.addCallback(lambda _: maybeDeferred(fn, tx))
            d.addCallback(lambda _: tx._exec())
            return d.addBoth(closed, connection)

        def closed(result: Any, connection: RedisConnection) -> Any:
            connection.close()
            return result

        def done(replies: Optional[List[Any]]) -> Any:
            if replies is not None:
                return replies
            if attempt >= self._maxTransactionRetries:
                raise WatchConflictError("a watched key changed on each of %d attempts" % (attempt + 1,))
            return self._transact(shard, fn, watch, attempt + 1)

        return self._shardNode(shard).newConnection().addCallback(run).addCallback(done)

    def describe(self) -> Dict[str, Any]:
        """
        @return: the client for the admin page, in the shape of
            L{txscales.stack.ClientStack.describe}: its C{label},
            C{destination}, C{balancer} (C{ketama} sharding, or C{slots}
            for a cluster), its servers as C{endpoints}
            (L{RedisNode.describe}) and its destination's C{discovery}
            members; Redis has no retry budget.
        """
        describeDestination = getattr(self._destination, "describe", None)
        if describeDestination is not None:
            discovery = describeDestination()
        else:
            discovery = {"kind": "static", "members": [{"host": h, "port": p} for h, p in self._addresses]}
        return {
            "label": self.label,
            "destination": self.dest,
            "protocol": "redis",
            "balancer": {"name": self.sharding},
            "retryBudget": None,
            "resolved": bool(self._nodes),
            "closed": self._closed,
            "endpoints": [node.describe() for node in self.nodes],
            "discovery": discovery,
        }

    def close(self) -> "Deferred[None]":
        """
        Close every connection and stop following the destination:
        commands waiting fail with L{ClientClosedError}.

        @return: a Deferred firing once done.
        """
        if self._closed:
            return succeed(None)
        self._closed = True
        REGISTRY.removeClient(self)
        self._pubsub.close()
        self._pools.close()
        for node in self._nodes.values():
            node.close()
        self._nodes = {}
        self._ring = None
        self._notDiscovered(Failure(ClientClosedError("the Redis client was closed")))
        if self._destination is None:
            return succeed(None)
        self._stopWatching()
        return self._destination.close().addCallback(lambda _: None)


class Pipeline(Commands):
    """
    Commands queued and sent together, their replies given in order: each
    helper (and L{command}) queues its command and returns the pipeline;
    L{execute} sends them.  On a sharded client each server gets its
    commands in one write; a command over several keys (C{mget}, C{mset},
    C{delete}, C{exists}) must have them on one server.  The commands are
    not a transaction: others may run between them.
    """

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._queued: List[Tuple[List[Any], Optional[Sequence[Key]], Transform]] = []

    def __len__(self) -> int:
        return len(self._queued)

    def command(self, *args: Any) -> "Pipeline":
        """
        Queue a command.

        @param args: its name and arguments.
        @return: this pipeline.
        """
        self._queued.append((list(args), commandKeys(args), None))
        return self

    def _call(self, args: List[Any], transform: Transform = None) -> "Pipeline":
        self._queued.append((args, args[1:2], transform))
        return self

    def _callKeys(self, name: str, keys: Sequence[Key], args: Sequence[Sequence[Any]], combine: Combine,
                  transform: Transform = None) -> "Pipeline":
        command: List[Any] = [name]
        for arg in args:
            command.extend(arg)
        self._queued.append((command, list(keys), transform))
        return self

    def execute(self, raiseOnError: bool = True) -> "Deferred[List[Any]]":
        """
        Send the queued commands (the pipeline is empty again).

        @param raiseOnError: fail with the first command's error (by
            order) when any failed; else give each error in the list.
        @return: a Deferred of the replies, in the commands' order.
        """
        queued, self._queued = self._queued, []
        return self._client._whenReady(lambda: maybeDeferred(self._send, queued, raiseOnError))

    def _send(self, queued: List[Tuple[List[Any], Optional[Sequence[Key]], Transform]],
              raiseOnError: bool) -> "Deferred[List[Any]]":
        client = self._client
        results = client._sendMany([(args, keys) for args, keys, _ in queued])
        for index, d in enumerate(results):
            if client._stats is not None:
                client._stats.observe(queued[index][0][0], d)
            transform = queued[index][2]
            results[index] = d if transform is None else d.addCallback(transform)
        return _joinInOrder(results, raiseOnError)


class Transaction(Commands):
    """
    What a transaction's function is given: its helpers send at once on the
    transaction's connection (after the WATCH), until L{multi} gives the
    pipeline of the commands to queue.
    """

    def __init__(self, client: RedisClient, shard: Any, connection: RedisConnection) -> None:
        self._client = client
        self._shard = shard
        self._connection = connection
        self._queue: Optional[_TransactionQueue] = None

    def _check(self, keys: Optional[Sequence[Key]]) -> None:
        self._client._checkShard(keys, self._shard)

    def execute(self, *args: Any) -> "Deferred[Any]":
        """
        Send a command at once on the transaction's connection.

        @return: a Deferred of its reply.
        """
        return maybeDeferred(self._check, commandKeys(args)).addCallback(
            lambda _: self._connection.execute(*args))

    def _call(self, args: List[Any], transform: Transform = None) -> "Deferred[Any]":
        d = self.execute(*args)
        return d if transform is None else d.addCallback(transform)

    def _callKeys(self, name: str, keys: Sequence[Key], args: Sequence[Sequence[Any]], combine: Combine,
                  transform: Transform = None) -> "Deferred[Any]":
        command: List[Any] = [name]
        for arg in args:
            command.extend(arg)
        return maybeDeferred(self._check, keys).addCallback(lambda _: self._call(command, transform))

    def multi(self) -> Pipeline:
        """
        @return: the pipeline whose commands C{MULTI}/C{EXEC} will run once
            the transaction's function returned (or its Deferred fired).
        """
        if self._queue is None:
            self._queue = _TransactionQueue(self)
        return self._queue

    def _exec(self) -> "Deferred[Optional[List[Any]]]":
        queued = self._queue._queued if self._queue is not None else []
        commands = [["MULTI"]] + [args for args, _, _ in queued] + [["EXEC"]]
        replies = self._connection.executeMany(commands)
        for d in replies[:-1]:
            d.addErrback(lambda _: None)

        def executed(reply: Optional[List[Any]]) -> Optional[List[Any]]:
            if reply is None:
                return None
            return [r if t is None or isinstance(r, Exception) else t(r) for r, (_, _, t) in zip(reply, queued)]

        return replies[-1].addCallback(executed)


class _TransactionQueue(Pipeline):
    """
    The commands of a transaction, checked to be on its server as they are
    queued.
    """

    def __init__(self, transaction: Transaction) -> None:
        Pipeline.__init__(self, transaction._client)
        self._transaction = transaction

    def command(self, *args: Any) -> Pipeline:
        self._transaction._check(commandKeys(args))
        return Pipeline.command(self, *args)

    def _call(self, args: List[Any], transform: Transform = None) -> Pipeline:
        self._transaction._check(args[1:2])
        return Pipeline._call(self, args, transform)

    def _callKeys(self, name: str, keys: Sequence[Key], args: Sequence[Sequence[Any]], combine: Combine,
                  transform: Transform = None) -> Pipeline:
        self._transaction._check(keys)
        return Pipeline._callKeys(self, name, keys, args, combine, transform)

    def execute(self, raiseOnError: bool = True) -> "Deferred[List[Any]]":
        raise TypeError("a transaction's commands are sent when its function is done")


def _keyBytes(key: Key) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    return str(key).encode("ascii")


def _joinInOrder(results: List["Deferred[Any]"], raiseOnError: bool) -> "Deferred[List[Any]]":
    def collect(outcomes: List[Tuple[bool, Any]]) -> Any:
        values = []
        for ok, value in outcomes:
            if not ok:
                if raiseOnError:
                    return value
                value = value.value
            values.append(value)
        return values

    return DeferredList(results, consumeErrors=True).addCallback(collect)


def _firstError(failure: Failure) -> Failure:
    return failure.value.subFailure if isinstance(failure.value, FirstError) else failure

