"""
L{ClusterClient}: a L{RedisClient} of a Redis Cluster, routing each command
to the master of its key's slot.

The slot map comes from C{CLUSTER SHARDS} (C{CLUSTER SLOTS} for a server
without it), asked of a master already known or of a seed, in turn until
one answers.  It is asked again (a refresh) when a reply says the map is
stale: C{MOVED}, or a failover's signs (a connection lost or refused, a
timeout, C{CLUSTERDOWN}, C{TRYAGAIN}, C{READONLY}, C{MASTERDOWN}).  At
most one refresh is in flight, another is queued at most, and they start
at least C{refreshInterval} seconds apart.

A command redirected by C{MOVED} goes to the node named (and the slot's
entry of the map with it); by C{ASK}, it goes there once after C{ASKING},
both in one write, the map unchanged; at most C{maxRedirects} times.  A
command that failed without reaching a server (a refused connection,
C{CLUSTERDOWN}, C{TRYAGAIN}, ...) is sent again after a jittered
exponential delay, at most C{maxClusterRetries} times.  A command that may have
reached a server (in flight on a lost connection, timed out) is not.
"""

from random import Random
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from txscales.discovery import parseStatic
from txscales.errors import (
    BadDestinationError,
    BadOptionError,
    ClientClosedError,
    ConnectionLostError,
    RequestTimeoutError,
)
from txscales.redis._client import RedisClient, _keyBytes
from txscales.redis._blockingpool import DEFAULT_BLOCKING_POOL_SIZE
from txscales.redis._commands import Key, Transform
from txscales.redis._errors import (
    AskError,
    ClusterDownError,
    ClusterMapError,
    CrossSlotError,
    KeylessCommandError,
    MasterDownError,
    MovedError,
    ReadOnlyError,
    RedirectError,
    RedisHandshakeError,
    RedisReplyError,
    ServerDownError,
    TooManyRedirectsError,
    TryAgainError,
)
from txscales.redis._node import Address, RedisNode
from txscales.redis._slotmap import SlotMap, SlotMapError, masters, slotMapFromShards, slotMapFromSlots
from txscales.redis._slots import SLOTS, keySlot
from txscales.redis._stats import RedisStats

CLUSTER_SCHEME = "redis-cluster://"
"""
The scheme of a Redis Cluster's destination.
"""

REFRESH_INTERVAL = 0.1
"""
Seconds between the starts of two refreshes of the slot map, at least.
"""

MAX_REDIRECT_NODES = 16
"""
How many nodes outside the last slot map C{MOVED} and C{ASK} may make the
client connect to until the next refresh; a redirect to one more fails its
command with the redirect's error.
"""

_FAILOVER = (ConnectionLostError, RequestTimeoutError, ServerDownError, ClusterDownError, TryAgainError,
             ReadOnlyError, MasterDownError)


def newClusterClient(dest: str, makeNode: Callable[[Address], RedisNode], options: Dict[str, Any]) -> "ClusterClient":
    """
    Make the client of a C{redis-cluster://} destination.

    @param makeNode: makes the L{RedisNode} of an address.
    @param options: L{txscales.redis.Redis.newClient}'s options, checked.
    @raise BadDestinationError: for a malformed C{dest}.
    @raise BadOptionError: for a C{db} other than 0, which a cluster has
        not.
    """
    if options["db"]:
        raise BadOptionError("Redis client option db must be 0 on a Redis Cluster")
    seeds = parseStatic("tcp://" + dest[len(CLUSTER_SCHEME):])
    if not seeds:
        raise BadDestinationError("no node in %r" % (dest,))
    label = options["label"] if options["label"] is not None else dest
    stats = RedisStats(label, options["reactor"], options["registry"]) if options["stats"] else None
    return ClusterClient(makeNode, seeds, options["reactor"], options["random"], stats, options["maxPending"],
                         options["maxTransactionRetries"], options["maxRedirects"], options["maxClusterRetries"],
                         options["backoff"], options["connectTimeout"],
                         blockingPoolSize=options["blockingPoolSize"])


class _Command:
    """
    A command on its way: where it goes, and how often it was redirected
    and sent again.
    """

    __slots__ = ("slot", "args", "redirects", "retries")

    def __init__(self, slot: Optional[int], args: List[Any]) -> None:
        self.slot = slot
        self.args = args
        self.redirects = 0
        self.retries = 0


class ClusterClient(RedisClient):
    """
    A client of a Redis Cluster.  Made by L{txscales.redis.Redis.newClient}
    for a C{redis-cluster://} destination.

    Its commands over several keys need them in one slot (hash tags:
    C{E{lb}user1E{rb}.a}, C{E{lb}user1E{rb}.b}), except C{mget}, C{mset},
    C{delete} and C{exists}, which it splits per slot; else
    L{CrossSlotError}, nothing sent.  A command without a key goes to one
    master.

    @ivar slots: the slot map: the C{(host, port)} of each slot's master, or
        None.
    @ivar refreshes: how many refreshes of the slot map started.
    """

    sharding = "slots"

    def __init__(self, makeNode: Any, seeds: Sequence[Address], reactor: Any, random: Random, stats: Any,
                 maxPending: int, maxTransactionRetries: int, maxRedirects: int, maxRetries: int,
                 backoff: Tuple[float, float], refreshTimeout: float,
                 refreshInterval: float = REFRESH_INTERVAL, blockingPoolSize: int = DEFAULT_BLOCKING_POOL_SIZE
                 ) -> None:
        """
        @param makeNode: makes the L{RedisNode} of an address.
        @param seeds: the nodes asked for the first slot map.
        @param maxRedirects: how many C{MOVED} or C{ASK} a command follows.
        @param maxRetries: how often a command that surely did not reach a
            server is sent again.
        @param backoff: C{(start, maximum)} seconds before sending again.
        @param refreshTimeout: seconds a node may take to give the map.
        @param refreshInterval: seconds between the starts of refreshes.
        @param blockingPoolSize: the most connections of blocking commands
            per master.
        """
        RedisClient.__init__(self, makeNode, None, None, False, stats, maxPending, maxTransactionRetries,
                             blockingPoolSize=blockingPoolSize)
        self.seeds = list(seeds)
        self.slots: SlotMap = [None] * SLOTS
        self.refreshes = 0
        self._reactor = reactor
        self._random = random
        self._maxRedirects = maxRedirects
        self._maxRetries = maxRetries
        self._backoff = backoff
        self._refreshTimeout = refreshTimeout
        self._refreshInterval = refreshInterval
        self._ready = False
        self._masters: Set[Address] = set()
        # The masters of the last slot map, without those MOVED added.
        self._mappedMasters: Set[Address] = set()
        self._anyMaster: Optional[Address] = None
        self._useSlots = False
        self._refreshing = False
        self._refreshAgain = False
        self._refreshTimer: Optional[IDelayedCall] = None
        self._lastRefresh: Optional[float] = None
        self._retrying: Dict[IDelayedCall, "Deferred[Any]"] = {}

    # The slot map

    def requestRefresh(self) -> None:
        """
        Refresh the slot map soon: now, or once the refresh in flight is
        done, or C{refreshInterval} seconds after the last one started.
        """
        if self._closed:
            return
        if self._refreshing:
            self._refreshAgain = True
            return
        if self._refreshTimer is not None:
            return
        delay = 0.0
        if self._lastRefresh is not None:
            delay = self._lastRefresh + self._refreshInterval - self._reactor.seconds()
        if delay > 0:
            self._refreshTimer = self._reactor.callLater(delay, self._refresh)
        else:
            self._refresh()

    def _refresh(self) -> None:
        self._refreshTimer = None
        self._refreshing = True
        self._refreshAgain = False
        self._lastRefresh = self._reactor.seconds()
        self.refreshes += 1
        # Masters with a connection up first, then the others, then the seeds.
        known = sorted(self._masters, key=lambda a: (a not in self._nodes or self._nodes[a].connection is None, a))
        candidates = known + [a for a in self.seeds if a not in self._masters]
        self._fetch(candidates, 0, None).addCallbacks(self._mapped, self._notMapped)

    def _fetch(self, candidates: List[Address], index: int, last: Optional[Failure]) -> "Deferred[SlotMap]":
        if self._closed:
            return fail(ClientClosedError("the Redis client is closed"))
        if index >= len(candidates):
            return fail(ClusterMapError(last.value if last is not None else "no node to ask"))
        node = self._nodeAt(candidates[index])
        return self._askMap(node).addErrback(lambda f: self._fetch(candidates, index + 1, f))

    def _askMap(self, node: RedisNode) -> "Deferred[SlotMap]":
        host = node.address[0]

        def slots() -> "Deferred[SlotMap]":
            d = node.executeMany([["CLUSTER", "SLOTS"]], timeout=self._refreshTimeout)[0]
            return d.addCallback(slotMapFromSlots, host)

        def noShards(failure: Failure) -> Any:
            # Only an ERR reply (unknown subcommand): not NOAUTH, MOVED, ...
            if type(failure.value) is not RedisReplyError:
                return failure
            self._useSlots = True
            return slots()

        def check(slotMap: SlotMap) -> SlotMap:
            if not masters(slotMap):
                raise SlotMapError("the node serves no slot")
            return slotMap

        if self._useSlots:
            d = slots()
        else:
            d = node.executeMany([["CLUSTER", "SHARDS"]], timeout=self._refreshTimeout)[0]
            d.addCallbacks(slotMapFromShards, noShards, callbackArgs=(host,))
        return d.addCallback(check)

    def _mapped(self, slotMap: SlotMap) -> None:
        self._refreshing = False
        if self._closed:
            return
        self.slots = slotMap
        self._setMasters()
        for address in [a for a in self._nodes if a not in self._masters]:
            self._nodes.pop(address).close()
        self._pools.retain(list(self._nodes.values()))
        if self._anyMaster is not None:
            # A cluster sends every PUBLISH to every node: one master's
            # connection receives every channel and pattern, once.
            subscriber = self._nodeAt(self._anyMaster)
            self._pubsub.setNodes([subscriber], lambda name: subscriber)
        self._ready = True
        self._releaseWaiters()
        self._refreshed()

    def _notMapped(self, failure: Failure) -> None:
        self._refreshing = False
        if self._closed:
            return
        error = failure.value if isinstance(failure.value, ClusterMapError) else ClusterMapError(failure.value)
        self._releaseWaiters(Failure(error))
        self._refreshed()

    def _refreshed(self) -> None:
        if self._refreshAgain:
            self.requestRefresh()

    def _setMasters(self) -> None:
        found = masters(self.slots)
        self._masters = set(found)
        self._mappedMasters = set(found)
        self._anyMaster = found[0] if found else None

    def _nodeAt(self, address: Address) -> RedisNode:
        node = self._nodes.get(address)
        if node is None:
            node = self._nodes[address] = self._makeNode(address)
        return node

    def _whenReady(self, call: Any) -> "Deferred[Any]":
        if self._closed:
            return fail(ClientClosedError("the Redis client is closed"))
        if self._ready:
            return call()
        return self._waitForServers(call, "the slot map", self.requestRefresh)

    # Routing

    def slotOf(self, keys: Optional[Sequence[Key]]) -> Optional[int]:
        """
        @param keys: a command's keys.
        @return: their slot, or None without a key.
        @raise CrossSlotError: when they are in several slots.
        """
        if not keys:
            return None
        slot = keySlot(_keyBytes(keys[0]))
        for key in keys[1:]:
            if keySlot(_keyBytes(key)) != slot:
                raise CrossSlotError("CROSSSLOT the keys %r are in several slots" % (list(keys),))
        return slot

    def _addressOf(self, slot: Optional[int]) -> Optional[Address]:
        return self._anyMaster if slot is None else self.slots[slot]

    def _ownerOf(self, slot: Optional[int]) -> RedisNode:
        if self._closed:
            raise ClientClosedError("the Redis client is closed")
        address = self._addressOf(slot)
        if address is None:
            raise ClusterDownError("CLUSTERDOWN Hash slot %s is not served (in the client's map)" % (slot,))
        return self._nodeAt(address)

    def nodeFor(self, key: Key) -> RedisNode:
        """
        @return: the L{RedisNode} of the master of C{key}'s slot.
        @raise ClusterDownError: when no master serves it in the map.
        """
        return self._ownerOf(keySlot(_keyBytes(key)))

    def _nodeForKeys(self, keys: Optional[Sequence[Key]]) -> RedisNode:
        return self._ownerOf(self.slotOf(keys))

    def _send(self, args: List[Any], keys: Optional[Sequence[Key]], transform: Transform = None) -> "Deferred[Any]":
        def send() -> "Deferred[Any]":
            d = self._route(_Command(self.slotOf(keys), args))
            if self._stats is not None and args:
                self._stats.observe(args[0], d)
            return d if transform is None else d.addCallback(transform)

        return self._whenReady(lambda: maybeDeferred(send))

    def _shardOf(self, key: Key) -> Any:
        return keySlot(_keyBytes(key))

    def _sendTo(self, shard: Any, command: List[Any]) -> "Deferred[Any]":
        return self._route(_Command(shard, command))

    def _sendMany(self, commands: Sequence[Tuple[List[Any], Optional[Sequence[Key]]]]) -> List["Deferred[Any]"]:
        routed = [_Command(self.slotOf(keys), args) for args, keys in commands]
        results: List["Deferred[Any]"] = [None] * len(routed)  # type: ignore[list-item]
        groups: Dict[Address, List[int]] = {}
        for index, command in enumerate(routed):
            address = self._addressOf(command.slot)
            if address is None:
                results[index] = self._route(command)
            else:
                groups.setdefault(address, []).append(index)
        for address, indexes in groups.items():
            sent = self._nodeAt(address).executeMany([routed[i].args for i in indexes])
            for index, d in zip(indexes, sent):
                results[index] = self._watch(d, routed[index], address)
        return results

    def _transactionShard(self, keys: Sequence[Key]) -> Any:
        if not keys:
            raise KeylessCommandError("a transaction on a Redis Cluster needs watch keys or a shardKey")
        return self.slotOf(keys)

    def _shardNode(self, shard: Any) -> RedisNode:
        return self._ownerOf(shard)

    def _checkShard(self, keys: Optional[Sequence[Key]], shard: Any) -> None:
        if keys and self.slotOf(keys) != shard:
            raise CrossSlotError("CROSSSLOT the keys %r are not in the transaction's slot" % (list(keys),))

    def _transact(self, shard: Any, fn: Any, watch: List[Key], attempt: int) -> "Deferred[List[Any]]":
        def redirected(failure: Failure) -> Failure:
            if isinstance(failure.value, MovedError):
                self._moved(failure.value, self._addressOf(shard))
            return failure

        return maybeDeferred(RedisClient._transact, self, shard, fn, watch, attempt).addErrback(redirected)

    # Redirects and retries

    def _route(self, command: _Command) -> "Deferred[Any]":
        try:
            node = self._ownerOf(command.slot)
        except Exception:
            return self._failed(Failure(), command, None)
        return self._watch(node.executeMany([command.args])[0], command, node.address)

    def _watch(self, d: "Deferred[Any]", command: _Command, address: Address) -> "Deferred[Any]":
        return d.addErrback(self._failed, command, address)

    def _failed(self, failure: Failure, command: _Command, address: Optional[Address]) -> Any:
        error = failure.value
        if self._closed:
            return failure
        if isinstance(error, RedirectError) and error.port is not None and address is not None:
            if command.redirects >= self._maxRedirects:
                return Failure(TooManyRedirectsError(error, command.redirects))
            command.redirects += 1
            target = (error.host or address[0], error.port)
            if (target not in self._nodes and target not in self._mappedMasters
                    and len(set(self._nodes) - self._mappedMasters) >= MAX_REDIRECT_NODES):
                self.requestRefresh()
                return failure
            if isinstance(error, MovedError):
                self._moved(error, address)
                return self._route(command)
            assert isinstance(error, AskError)
            sent = self._nodeAt(target).executeMany([["ASKING"], command.args])
            sent[0].addErrback(lambda _: None)
            return self._watch(sent[1], command, target)
        if isinstance(error, _FAILOVER):
            self.requestRefresh()
            if (not error.mayHaveReachedServer and not isinstance(error, RedisHandshakeError)
                    and command.retries < self._maxRetries):
                command.retries += 1
                return self._later(command, failure)
        return failure

    def _moved(self, error: MovedError, address: Optional[Address]) -> None:
        """
        Take a C{MOVED}'s news into the map, and refresh it.
        """
        if error.slot is not None and error.port is not None and 0 <= error.slot < SLOTS:
            host = error.host or (address[0] if address is not None else "")
            if host:
                self.slots[error.slot] = (host, error.port)
                self._masters.add((host, error.port))
        self.requestRefresh()

    def _later(self, command: _Command, failure: Failure) -> Any:
        if len(self._retrying) >= self._maxPending:
            return failure
        start, maximum = self._backoff
        upper = min(maximum, start * 2 ** (command.retries - 1))
        delay = start + self._random.random() * (upper - start)
        d: "Deferred[Any]" = Deferred()

        def again() -> None:
            del self._retrying[call]
            self._route(command).chainDeferred(d)

        call = self._reactor.callLater(delay, again)
        self._retrying[call] = d
        return d

    def close(self) -> "Deferred[None]":
        """
        Close every connection: commands waiting for the map or to be sent
        again fail with L{ClientClosedError}.

        @return: a Deferred firing once done.
        """
        done = RedisClient.close(self)
        if self._refreshTimer is not None:
            self._refreshTimer.cancel()
            self._refreshTimer = None
        retrying, self._retrying = self._retrying, {}
        for call, d in retrying.items():
            call.cancel()
            d.errback(Failure(ClientClosedError("the Redis client was closed")))
        return done
