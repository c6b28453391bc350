"""
The interfaces of txscales' pluggable pieces.

Plugins providing them live in C{twisted/plugins/} and are found by name
(see L{txscales._plugins}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from random import Random

    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorTime

    from txscales._tracing import TraceId

OPEN = "open"
"""A node's status: ready for requests."""
BUSY = "busy"
"""A node's status: less wanted than an open node (for example connecting,
draining, or marked busy by failure accrual)."""
CLOSED = "closed"
"""A node's status: closed, or refusing connections (fail-fast); a balancer's
last choice."""

STATUS_RANK = {OPEN: 2, BUSY: 1, CLOSED: 0}
"""Statuses from best to worst: a balancer prefers a higher rank."""


class INode(Interface):
    """
    One endpoint as a balancer sees it.
    """

    status = Attribute("L{OPEN}, L{BUSY} or L{CLOSED}.")
    pending = Attribute("Requests sent to this node and not yet answered.")
    token = Attribute("A random float in [0, 1), fixed for the node's life.")

    def send(request: Any) -> Deferred[Any]:
        """
        Send C{request} to the node's endpoint: what the client stack does
        with the node a balancer picked (a balancer itself never sends).

        @return: a Deferred of the reply.
        """


class IBalancer(Interface):
    """
    Chooses the node for each request, and keeps the load accounting.
    """

    def update(nodes: Sequence[INode]) -> None:
        """
        Replace the set of nodes; in-flight requests on removed nodes finish.

        @param nodes: a list of L{INode}.
        """

    def pick() -> INode:
        """
        Choose a node for one request and count it as pending there.

        @return: an L{INode}.
        @raise txscales.errors.NoEndpointsError: when there are no nodes.
        """

    def release(node: INode, latency: float) -> None:
        """
        The request sent to C{node} by L{pick} finished.

        @param node: the L{INode} that L{pick} chose for it.
        @param latency: how long it took, in seconds.
        """


class IBalancerFactory(Interface):
    """
    A plugin that makes a balancer (found by C{name}).
    """

    name = Attribute("The balancer's name, e.g. C{'p2c'}.")
    description = Attribute("One line about the algorithm.")

    def build(clock: IReactorTime, random: Random, **options: Any) -> IBalancer:
        """
        @param clock: an L{twisted.internet.interfaces.IReactorTime} (its
            C{seconds()} is the time).
        @param random: a C{random.Random}.
        @param options: algorithm parameters.
        @return: a new L{IBalancer}.
        """


class IEndpoint(Interface):
    """
    One server of a destination as the client stack sees it: a session pool
    that sends requests (L{txscales.mux._client.MuxEndpoint} for Mux; a
    watermark-pool-backed endpoint for one-request-per-connection
    protocols).
    """

    host = Attribute("The server's host.")
    port = Attribute("The server's port.")
    status = Attribute("L{OPEN}, L{BUSY} (connecting, draining) or L{CLOSED}.")

    def __call__(request: Any) -> Deferred[Any]:
        """
        Send C{request}.

        @return: a Deferred of the reply; cancelling it abandons the request
            (for Mux: Tdiscarded).  A failure to connect is a
            L{txscales.errors.ConnectError}.
        """

    def getProtocol() -> Deferred[Any]:
        """
        Make sure a connection can be made.

        @return: a Deferred firing when a connection is ready, or failing
            with L{txscales.errors.ConnectError}; fail-fast calls it to
            probe a server marked down.
        """

    def close() -> Deferred[Any]:
        """
        Close the endpoint's connections.

        @return: a Deferred firing when they are closed.
        """


class IDestination(Interface):
    """
    The set of servers a client sends to, as it changes.
    """

    addresses = Attribute("The current list of (host, port), or None before the first resolution.")
    ready = Attribute(
        "A Deferred firing with the first list of addresses, or failing with"
        " L{txscales.errors.DiscoveryError} when discovery cannot start in time."
    )

    def watch(callback: Callable[[List[Tuple[str, int]]], object]) -> Callable[[], None]:
        """
        Call C{callback(addresses)} on every change of the set (and now, if
        it is known).

        @param callback: called with a list of (host, port).
        @return: a callable that stops watching.
        """

    def close() -> Deferred[Any]:
        """
        Stop watching the source.

        @return: a Deferred firing when stopped.
        """


class IDiscoveryScheme(Interface):
    """
    A plugin that resolves destination URIs of one scheme (found by
    C{scheme}).
    """

    scheme = Attribute("The URI scheme, e.g. C{'zk'}.")
    description = Attribute("One line about the scheme.")

    def resolve(uri: str, reactor: Any, **options: Any) -> IDestination:
        """
        @param uri: a destination URI of this scheme.
        @param reactor: the client's reactor.
        @param options: settings from the client (C{connectTimeout}: how
            many seconds reaching the source may take, the client's
            C{discoveryTimeout}); a scheme ignores those it does not use.
        @return: an L{IDestination} for C{uri}.
        @raise txscales.errors.BadDestinationError: for a malformed URI.
        """


class IPartitioner(Interface):
    """
    Chooses the partition of each record a Kafka producer sends without
    one.
    """

    def partition(topic: str, key: Optional[bytes], partitions: Sequence[int]) -> int:
        """
        Choose the partition of a record; called once per record, so it
        must be cheap.

        @param topic: the record's topic.
        @param key: the record's key, or None.
        @param partitions: the topic's partitions, in order (never empty).
        @return: one of C{partitions}.
        """

    def onNewBatch(topic: str, previous: int, partitions: Sequence[int]) -> None:
        """
        The producer closed the batch of partition C{previous} of C{topic}
        (it is full): a sticky partitioner moves on to another partition;
        others ignore it.

        @param partitions: the topic's partitions, in order.
        """


class IPartitionerFactory(Interface):
    """
    A plugin that makes a Kafka partitioner (found by C{name}).
    """

    name = Attribute("The partitioner's name, e.g. C{'murmur2'}.")
    description = Attribute("One line about how it chooses.")

    def build(random: Random) -> IPartitioner:
        """
        @param random: a C{random.Random}, for the choices that are random.
        @return: a new L{IPartitioner}, for one producer.
        """


class ITracer(Interface):
    """
    Records the spans of the calls a process makes and serves (see
    L{txscales.tracing}).  Only sampled calls reach it.
    """

    def startSpan(name: str, kind: str, trace: TraceId, attributes: Dict[str, Any]) -> ISpan:
        """
        Start the span of one call.

        @param name: C{"Service/method"} for Thrift calls, the method and
            path for HTTP requests.
        @param kind: C{"client"} or C{"server"}.
        @param trace: the span's ids, as on the wire: C{trace.spanId} is the
            span's id, C{trace.parentId} its parent's (equal to
            C{trace.spanId} for a root span, which has no parent).
        @param attributes: OpenTelemetry-style attributes (C{rpc.system},
            C{rpc.service}, C{rpc.method}, peer address, ...).
        @return: the started L{ISpan}.
        """


class ISpan(Interface):
    """
    A started span, which the call ends once.
    """

    def setAttribute(key: str, value: Any) -> None:
        """
        Add an attribute learnt after the start (the peer's address, say).
        """

    def fail(exception: BaseException) -> None:
        """
        Mark the call as failed with C{exception}.
        """

    def end() -> None:
        """
        End the span: the call is over.
        """
