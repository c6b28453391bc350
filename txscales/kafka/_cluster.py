"""
What a producer knows of its Kafka cluster: the brokers, a connection to
each that it talks to, and the partitions of the topics it writes to, with
their leaders.

Metadata is fetched from any broker (the bootstrap ones first, then those
the cluster named), one refresh at a time, and again when it is older
than C{metadataMaxAge} or a caller says it is stale (a broker answered
NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE,
or a connection was lost).
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.endpoints import connectProtocol
from twisted.python.failure import Failure

from txscales._connection import tcpEndpoint
from txscales.errors import BadDestinationError, ConnectError, TxScalesError
from txscales.kafka._connection import KafkaConnection
from txscales.kafka._errors import UnknownTopicOrPartitionError, errorForCode
from txscales.kafka._messages import METADATA, MetadataResponse, TopicMetadata, decodeMetadataResponse, encodeMetadataRequest

Address = Tuple[str, int]


def parseBootstrap(dest: str) -> List[Address]:
    """
    @param dest: C{tcp://host:port,host:port} (or without its scheme).
    @return: the (host, port) pairs.
    @raise BadDestinationError: for anything else.
    """
    rest = dest[len("tcp://"):] if dest.startswith("tcp://") else dest
    if "://" in rest or not rest:
        raise BadDestinationError("a Kafka destination is tcp://host:port[,host:port...], not %r" % (dest,))
    addresses = []
    for part in rest.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadDestinationError("%r in %r is not host:port" % (part, dest))
        addresses.append((host.strip("[]"), int(port)))
    return addresses


class Cluster:
    """
    The brokers of a cluster, their connections, and the topics' metadata.

    @ivar topics: topic -> its metadata, for the topics asked so far.
    @ivar brokers: node id -> (host, port).
    """

    def __init__(self, reactor: Any, bootstrap: Sequence[Address], clientId: Optional[str],
                 requestTimeout: float, connectTimeout: float, metadataMaxAge: float,
                 maxFrameSize: int,
                 connect: Optional[Callable[[Address, KafkaConnection], "Deferred[Any]"]] = None) -> None:
        self._reactor = reactor
        self._bootstrap = list(bootstrap)
        self._clientId = clientId
        self._requestTimeout = requestTimeout
        self._connectTimeout = connectTimeout
        self._metadataMaxAge = metadataMaxAge
        self._maxFrameSize = maxFrameSize
        self._connect = connect or self._tcpConnect
        self.brokers: Dict[int, Address] = {}
        self.topics: Dict[str, TopicMetadata] = {}
        self._wanted: Dict[str, None] = {}
        self._fetchedAt: Optional[float] = None
        self._refreshing: Optional["Deferred[None]"] = None
        self._refreshWaiters: List["Deferred[None]"] = []
        self._connections: Dict[Address, "Deferred[KafkaConnection]"] = {}
        self._attempts: Dict[Address, "Deferred[Any]"] = {}
        self._closed = False

    def describeBrokers(self, inFlight: Dict[int, int]) -> List[Dict[str, Any]]:
        """
        @param inFlight: Produce requests in flight by node id.
        @return: the brokers the metadata named, for the admin page, as the
            client stack's endpoints describe themselves: C{node}, C{host},
            C{port}, C{status} (C{open} when connected, C{busy} while
            connecting, else C{closed}) and C{pending} requests.
        """
        brokers = []
        for node, address in sorted(self.brokers.items()):
            connection = self._connections.get(address)
            if connection is None:
                status = "closed"
            else:
                status = "open" if connection.called else "busy"
            brokers.append({"node": node, "host": address[0], "port": address[1], "status": status,
                            "pending": inFlight.get(node, 0)})
        return brokers

    def describeDiscovery(self) -> Dict[str, Any]:
        """
        @return: where the brokers come from, for the admin page: the
            C{static} bootstrap list as C{members}.
        """
        return {"kind": "static", "members": [{"host": host, "port": port} for host, port in self._bootstrap]}

    def _tcpConnect(self, address: Address, protocol: KafkaConnection) -> "Deferred[Any]":
        endpoint = tcpEndpoint(self._reactor, address[0], address[1], self._connectTimeout)
        return connectProtocol(endpoint, protocol)

    def connectionTo(self, address: Address) -> "Deferred[KafkaConnection]":
        """
        @return: a Deferred firing with the ready connection to the broker
            at C{address} (made when there is none), or failing with
            L{ConnectError}.
        """
        existing = self._connections.get(address)
        if existing is not None:
            if existing.called:
                # A connection that is up: share it.
                connection = cast(KafkaConnection, existing.result)
                return succeed(connection)
            return _chain(existing)
        protocol = KafkaConnection(self._reactor, self._clientId, self._maxFrameSize,
                                   requestTimeout=self._requestTimeout)
        ready: "Deferred[KafkaConnection]" = Deferred()
        self._connections[address] = ready
        lost = protocol.connectionLost

        def connectionLost(reason: Failure = Failure(ConnectError())) -> None:
            if self._connections.get(address) is ready:
                del self._connections[address]
            self.invalidate()
            lost(reason)

        protocol.connectionLost = connectionLost  # type: ignore[method-assign]

        def failed(failure: Failure) -> Failure:
            self._attempts.pop(address, None)
            if self._connections.get(address) is ready:
                del self._connections[address]
            if not isinstance(failure.value, TxScalesError):
                return Failure(ConnectError("cannot connect to %s:%d: %s" % (address[0], address[1], failure.value)))
            return failure

        d = self._connect(address, protocol)
        self._attempts[address] = d

        def connected(_: Any) -> "Deferred[KafkaConnection]":
            self._attempts.pop(address, None)
            return protocol.ready

        d.addCallback(connected)
        d.addErrback(failed)

        def done(result: Any) -> None:
            if isinstance(result, Failure):
                ready.errback(result)
            else:
                ready.callback(result)

        d.addBoth(done)
        return _chain(ready)

    def connectionToNode(self, nodeId: int) -> "Deferred[KafkaConnection]":
        """
        @return: a Deferred firing with the ready connection to the broker
            C{nodeId}, or failing with L{ConnectError}.
        """
        address = self.brokers.get(nodeId)
        if address is None:
            return _failedWith(ConnectError("the cluster names no broker %d" % (nodeId,)))
        return self.connectionTo(address)

    def setBootstrap(self, addresses: Sequence[Address]) -> None:
        """
        Replace the bootstrap brokers (the members of a discovered
        destination changed): later refreshes ask them.
        """
        self._bootstrap = list(addresses)

    def invalidate(self) -> None:
        """
        Mark the metadata stale: the next L{topic} refreshes it.
        """
        self._fetchedAt = None

    def topic(self, name: str) -> "Deferred[TopicMetadata]":
        """
        @return: a Deferred firing with the topic's metadata (fresh, or
            refreshed first), or failing with
            L{UnknownTopicOrPartitionError} when the cluster says it does not
            exist, the error of its metadata, or the refresh's error.
        """
        self._wanted[name] = None
        known = self.topics.get(name)
        if known is not None and known.errorCode == 0 and known.partitions and self._fresh():
            return succeed(known)

        def answer(_: None) -> TopicMetadata:
            metadata = self.topics.get(name)
            if metadata is None:
                raise UnknownTopicOrPartitionError("the cluster did not describe topic %r" % (name,))
            if metadata.errorCode:
                raise errorForCode(metadata.errorCode, "topic %r" % (name,))
            if not metadata.partitions:
                raise errorForCode(5, "topic %r has no partitions yet" % (name,))
            return metadata

        return self.refresh().addCallback(answer)

    def cached(self, name: str, now: float) -> "Optional[TopicMetadata]":
        """
        @param now: the reactor's time.
        @return: the topic's metadata when it is known, fresh and without
            error (what L{topic} would give at once), else None.
        """
        known = self.topics.get(name)
        if (known is not None and known.errorCode == 0 and known.partitions and self._fetchedAt is not None
                and now - self._fetchedAt < self._metadataMaxAge):
            return known
        return None

    def _fresh(self) -> bool:
        return self._fetchedAt is not None and self._reactor.seconds() - self._fetchedAt < self._metadataMaxAge

    def refresh(self) -> "Deferred[None]":
        """
        Fetch the metadata of the topics asked so far (one refresh at a
        time: a call during one waits for it).

        @return: a Deferred firing once it is done, or failing with the
            last broker's error when none answered.
        """
        waiter: "Deferred[None]" = Deferred()
        self._refreshWaiters.append(waiter)
        if self._refreshing is None:
            self._refreshing = self._refresh()
            self._refreshing.addBoth(self._refreshed)
        return waiter

    def _refreshed(self, result: Any) -> None:
        self._refreshing = None
        waiters, self._refreshWaiters = self._refreshWaiters, []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)

    @inlineCallbacks
    def _refresh(self) -> Any:
        candidates = list(dict.fromkeys(list(self.brokers.values()) + self._bootstrap))
        last: Any = ConnectError("no broker to ask for metadata")
        for address in candidates:
            if self._closed:
                break
            try:
                connection = yield self.connectionTo(address)
                version = connection.version(METADATA)
                frame = yield connection.request(METADATA, version, encodeMetadataRequest(
                    version, list(self._wanted), allowAutoTopicCreation=False))
                response = decodeMetadataResponse(frame, version)
            except TxScalesError as e:
                last = e
                continue
            self._update(response)
            return None
        raise last

    def _update(self, response: MetadataResponse) -> None:
        self.brokers = {b.nodeId: (b.host, b.port) for b in response.brokers}
        for topic in response.topics:
            if topic.name is not None:
                topic.partitions.sort(key=lambda p: p.partition)
                self.topics[topic.name] = topic
        self._fetchedAt = self._reactor.seconds()

    def leaderOf(self, topic: str, partition: int) -> Optional[int]:
        """
        @return: the node id of the partition's leader, or None when the
            metadata knows none.
        """
        metadata = self.topics.get(topic)
        if metadata is None:
            return None
        for p in metadata.partitions:
            if p.partition == partition:
                return p.leader if p.leader >= 0 and p.errorCode == 0 else None
        return None

    def close(self) -> "Deferred[None]":
        """
        Close every connection.

        @return: a Deferred firing once closed.
        """
        self._closed = True
        for attempt in list(self._attempts.values()):
            attempt.cancel()
        connections, self._connections = self._connections, {}
        for d in connections.values():
            if d.called and isinstance(d.result, KafkaConnection):
                d.result.close()
            else:
                d.addCallback(lambda c: c.close()).addErrback(lambda f: None)
        return succeed(None)


def _chain(d: "Deferred[Any]") -> "Deferred[Any]":
    """
    @return: a new Deferred with C{d}'s result, leaving C{d}'s alone (but
        for a failure, handed on to the new one).
    """
    out: "Deferred[Any]" = Deferred()

    def copy(result: Any) -> Any:
        if isinstance(result, Failure):
            out.errback(result)
            return None
        out.callback(result)
        return result

    d.addBoth(copy)
    return out


def _failedWith(error: Exception) -> "Deferred[Any]":
    d: "Deferred[Any]" = Deferred()
    d.errback(Failure(error))
    return d
