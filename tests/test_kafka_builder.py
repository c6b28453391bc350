"""
Tests for the Kafka producer's public surface without a broker:
L{Kafka.newBuilder}, the checks of L{Kafka.newProducer}'s options, and a
cluster whose bootstrap brokers come from a discovery destination.
"""

import inspect
import random

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txscales.errors import BadDestinationError, BadOptionError, ConnectError, DiscoveryError, UnknownPluginError
from txscales.interfaces import IDestination
from txscales.kafka import Kafka, KafkaProducer, KafkaProducerBuilder, UnsupportedCodecError
from txscales.kafka._bootstrap import DiscoveredCluster
from txscales.kafka._partitioners import Murmur2Partitioner, RoundRobinPartitioner

# A good value of each option, other than its default.
SAMPLES = {
    "acks": 1,
    "lingerMs": 7,
    "batchSize": 100,
    "maxRequestSize": 2000,
    "bufferMemory": 5000,
    "maxBlock": 3,
    "compression": "gzip",
    "requestTimeout": 4,
    "deliveryTimeout": 50,
    "retryBackoff": 0.5,
    "maxInFlight": 2,
    "idempotence": False,
    "partitioner": "roundrobin",
    "clientId": "me",
    "connectTimeout": 2,
    "discoveryTimeout": 3,
    "metadataMaxAge": 60,
    "maxFrameSize": 4096,
    "stats": False,
    "registry": CollectorRegistry(),
    "label": "mine",
    "reactor": Clock(),
    "random": random.Random(1),
}

# Values each option refuses with BadOptionError.
BAD = {
    "acks": [2, "one", True, None],
    "lingerMs": [-1, "5", float("nan")],
    "batchSize": [-1, 1.5],
    "maxRequestSize": [0],
    "bufferMemory": [0, 10.0],
    "maxBlock": [-1, float("inf")],
    "compression": [5],
    "requestTimeout": [0],
    "deliveryTimeout": [-5],
    "retryBackoff": [-0.1],
    "maxInFlight": [0],
    "idempotence": ["yes", 1],
    "partitioner": [3],
    "clientId": [b"bytes"],
    "connectTimeout": [0],
    "discoveryTimeout": [0],
    "metadataMaxAge": [-1],
    "maxFrameSize": [0],
    "stats": ["yes", 1, None],
    "registry": ["global"],
    "label": [b"bytes"],
}

DEST = "tcp://127.0.0.1:9"


class BuilderTests(SynchronousTestCase):
    """
    L{Kafka.newBuilder} reaches every option of L{Kafka.newProducer}.
    """

    def test_everyOption(self):
        """
        Each option of L{Kafka.newProducer} has a setter of its name, which
        hands its value on at C{build()}.
        """
        names = [n for n in inspect.signature(Kafka.newProducer).parameters if n != "dest"]
        seen = []
        self.patch(Kafka, "newProducer", staticmethod(lambda dest, **options: seen.append((dest, options))))
        self.assertEqual(sorted(names), sorted(SAMPLES))
        builder = Kafka.newBuilder().dest(DEST)
        for name in names:
            self.assertIs(getattr(builder, name)(SAMPLES[name]), builder)
        builder.build()
        self.assertEqual(seen, [(DEST, SAMPLES)])

    def test_builds(self):
        """
        C{build()} makes a producer with the options set; the others keep
        their defaults.
        """
        clock = Clock()
        producer = Kafka.newBuilder().dest(DEST).acks(1).lingerMs(20).partitioner("roundrobin").reactor(clock).build()
        self.assertIsInstance(producer, KafkaProducer)
        self.assertEqual((producer.acks, producer._linger, producer._batchSize), (1, 0.02, 16384))
        self.assertIsInstance(producer._partitioner, RoundRobinPartitioner)
        self.assertIsInstance(Kafka.newBuilder().dest(DEST).reactor(clock).build()._partitioner, Murmur2Partitioner)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_noDest(self):
        """
        C{build()} without a destination raises L{BadDestinationError}.
        """
        self.assertIsInstance(Kafka.newBuilder(), KafkaProducerBuilder)
        self.assertRaises(BadDestinationError, Kafka.newBuilder().acks(1).build)
        self.assertRaises(BadDestinationError, Kafka.newBuilder().dest, None)


class OptionTests(SynchronousTestCase):
    """
    Bad option values are typed errors when the producer is made, before
    anything starts.
    """

    def test_badValues(self):
        """
        Each bad value raises L{BadOptionError} naming its option, from
        L{Kafka.newProducer} and from the builder's setter.
        """
        for name, values in BAD.items():
            for value in values:
                clock = Clock()
                error = self.assertRaises(BadOptionError, Kafka.newProducer, DEST, reactor=clock, **{name: value})
                self.assertIn(name, str(error))
                self.assertIsInstance(error, ValueError)
                self.assertFalse(error.mayHaveReachedServer)
                self.assertRaises(BadOptionError, getattr(Kafka.newBuilder(), name), value)
                self.assertEqual(clock.getDelayedCalls(), [])

    def test_goodEdges(self):
        """
        The smallest good values, and acks -1 for "all", are taken.
        """
        Kafka.newProducer(DEST, reactor=Clock(), acks=-1, lingerMs=0, batchSize=0, maxBlock=0, retryBackoff=0,
                          metadataMaxAge=0, idempotence=True, clientId=None)

    def test_idempotenceNeedsAcksAll(self):
        """
        Idempotence with acks other than "all" raises L{BadOptionError}.
        """
        for acks in (0, 1):
            error = self.assertRaises(BadOptionError, Kafka.newProducer, DEST, reactor=Clock(), acks=acks,
                                      idempotence=True)
            self.assertIn("acks", str(error))

    def test_unknownCodec(self):
        """
        A codec Kafka does not define raises L{UnsupportedCodecError}, from
        the setter too.
        """
        self.assertRaises(UnsupportedCodecError, Kafka.newProducer, DEST, reactor=Clock(), compression="brotli")
        self.assertRaises(UnsupportedCodecError, Kafka.newBuilder().compression, "brotli")

    def test_badDestinations(self):
        """
        A malformed destination raises L{BadDestinationError}; a scheme no
        plugin handles, L{UnknownPluginError}.
        """
        for dest in ("tcp://nohost", "zk://127.0.0.1:2181", "", b"tcp://127.0.0.1:9"):
            self.assertRaises(BadDestinationError, Kafka.newProducer, dest, reactor=Clock())
        error = self.assertRaises(UnknownPluginError, Kafka.newProducer, "kafka9://b:1", reactor=Clock())
        self.assertIn("zk", str(error))


@implementer(IDestination)
class _Destination:
    """
    A destination whose members a test sets.
    """

    def __init__(self):
        self.addresses = None
        self.ready = Deferred()
        self.watchers = []
        self.closed = False

    def set(self, addresses):
        self.addresses = addresses
        if not self.ready.called:
            self.ready.callback(addresses)
        for watcher in list(self.watchers):
            watcher(addresses)

    def watch(self, callback):
        self.watchers.append(callback)
        if self.addresses is not None:
            callback(self.addresses)
        return lambda: self.watchers.remove(callback)

    def close(self):
        self.closed = True
        return succeed(None)


class DiscoveredClusterTests(SynchronousTestCase):
    """
    L{DiscoveredCluster} asks the members of its destination for metadata.
    """

    def setUp(self):
        self.destination = _Destination()
        self.tried = []

        def connect(address, protocol):
            self.tried.append(address)
            return fail(ConnectError("refused"))

        self.cluster = DiscoveredCluster(self.destination, Clock(), "t", 5.0, 5.0, 300.0, 1 << 20, connect=connect)

    def test_followsMembers(self):
        """
        A refresh waits for the first members, then asks them; once the
        members change, the new ones.
        """
        first = self.cluster.refresh()
        self.assertNoResult(first)
        self.assertEqual(self.tried, [])
        self.destination.set([("b1", 1)])
        self.failureResultOf(first, ConnectError)
        self.assertEqual(self.tried, [("b1", 1)])
        self.destination.set([("b2", 2), ("b3", 3)])
        self.failureResultOf(self.cluster.refresh(), ConnectError)
        self.assertEqual(self.tried, [("b1", 1), ("b2", 2), ("b3", 3)])

    def test_discoveryFailed(self):
        """
        When discovery cannot start, refreshes fail with its error until
        members come.
        """
        first = self.cluster.refresh()
        self.destination.ready.errback(DiscoveryError("no ZooKeeper"))
        self.failureResultOf(first, DiscoveryError)
        self.failureResultOf(self.cluster.refresh(), DiscoveryError)
        self.destination.set([("b1", 1)])
        self.failureResultOf(self.cluster.refresh(), ConnectError)
        self.assertEqual(self.tried, [("b1", 1)])

    def test_close(self):
        """
        Closing the cluster stops watching and closes the destination;
        closing it again does nothing more.
        """
        self.successResultOf(self.cluster.close())
        self.assertTrue(self.destination.closed)
        self.assertEqual(self.destination.watchers, [])
        self.successResultOf(self.cluster.close())
