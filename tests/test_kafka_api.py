"""
Tests for the Kafka producer's public surface against a real broker
(Tansu), read back with kafka-python: the partitioner option, a ZooKeeper
serverset as the destination, and the blocking API.
"""

import collections
import json
import os
import shutil
import sys
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests._kafka import TansuBroker, consumeAll, createTopic
from tests._zookeeper import ZooKeeperServer, freePort
from txscales.discovery import formatMember
from txscales.kafka import Kafka, RecordMetadata
from txscales.kafka._partitioners import murmur2Partition

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 1700000000000


class PartitionerOptionTests(TestCase):
    """
    The C{partitioner} option chooses where records go.
    """

    timeout = 120

    @inlineCallbacks
    def setUp(self):
        self.broker = TansuBroker(reactor, self.addCleanup)
        yield self.broker.start()

    @inlineCallbacks
    def countsOf(self, topic, **options):
        """
        Send 30 records of one key to C{topic} (3 partitions).

        @return: a Deferred firing with how many each partition read back.
        """
        yield createTopic(reactor, self.broker.bootstrap, topic, partitions=3)
        producer = Kafka.newProducer(self.broker.dest, reactor=reactor, **options)
        self.addCleanup(producer.close)
        yield gatherResults([producer.send(topic, b"v%d" % (i,), key=b"same") for i in range(30)])
        records = yield consumeAll(reactor, self.broker.bootstrap, topic)
        return collections.Counter(r.partition for r in records)

    @inlineCallbacks
    def test_roundRobin(self):
        """
        With C{partitioner="roundrobin"} records of one key spread evenly.
        """
        counts = yield self.countsOf("rr", partitioner="roundrobin")
        self.assertEqual(counts, {0: 10, 1: 10, 2: 10})

    @inlineCallbacks
    def test_default(self):
        """
        By default records of one key all go to its murmur2 partition.
        """
        counts = yield self.countsOf("default")
        self.assertEqual(counts, {murmur2Partition(b"same", 3): 30})


class ZooKeeperDestTests(TestCase):
    """
    A C{zk://} destination: the serverset's members are the bootstrap
    brokers.
    """

    timeout = 120

    @inlineCallbacks
    def setUp(self):
        self.broker = TansuBroker(reactor, self.addCleanup)
        self.zk = ZooKeeperServer(reactor, self.addCleanup)
        yield gatherResults([self.broker.start(), self.zk.start()])
        self.writer = yield self.zk.connect()
        self.addCleanup(lambda: self.writer.stop())
        yield self.writer.call("ensure_path", "/kafka")

    @inlineCallbacks
    def test_sendsToMembers(self):
        """
        A record sent while the serverset names only a dead broker is
        written once the live broker replaces it, and reads back.
        """
        yield createTopic(reactor, self.broker.bootstrap, "zk")
        dead = yield self.writer.call("create", "/kafka/member_", formatMember("127.0.0.1", freePort()),
                                      sequence=True)
        producer = Kafka.newProducer(self.zk.uri("/kafka"), reactor=reactor, deliveryTimeout=30, retryBackoff=0.05)
        self.addCleanup(producer.close)
        sent = producer.send("zk", b"found", key=b"k", timestamp=T0)
        yield self.writer.call("create", "/kafka/member_", formatMember("127.0.0.1", self.broker.port),
                               sequence=True)
        yield self.writer.call("delete", dead)
        metadata = yield sent
        self.assertEqual(metadata, RecordMetadata("zk", 0, 0, T0))
        records = yield consumeAll(reactor, self.broker.bootstrap, "zk")
        self.assertEqual([(r.key, r.value, r.timestamp) for r in records], [(b"k", b"found", T0)])


class PluginSchemeTests(TestCase):
    """
    A discovery scheme from a plugin file names the bootstrap brokers.
    """

    timeout = 120

    @inlineCallbacks
    def test_pluginScheme(self):
        """
        A producer whose C{dest} is a dropped-in plugin's scheme sends to
        the broker it names.
        """
        import twisted.plugins

        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        pluginDir = os.path.join(directory, "twisted", "plugins")
        os.makedirs(pluginDir)
        with open(os.path.join(pluginDir, "txscales_test_kafkascheme.py"), "w") as f:
            f.write(
                "from zope.interface import implementer\n"
                "from twisted.plugin import IPlugin\n"
                "from txscales.interfaces import IDiscoveryScheme\n"
                "@implementer(IPlugin, IDiscoveryScheme)\n"
                "class Brokers:\n"
                "    scheme = 'testbrokers'\n"
                "    description = 'test'\n"
                "    def resolve(self, uri, reactor, **options):\n"
                "        from txscales.discovery._resolve import StaticDestination\n"
                "        return StaticDestination([('127.0.0.1', int(uri.rpartition('/')[2]))])\n"
                "brokers = Brokers()\n"
            )
        twisted.plugins.__path__.append(pluginDir)
        self.addCleanup(twisted.plugins.__path__.remove, pluginDir)
        self.addCleanup(sys.modules.pop, "twisted.plugins.txscales_test_kafkascheme", None)
        broker = TansuBroker(reactor, self.addCleanup)
        yield broker.start()
        yield createTopic(reactor, broker.bootstrap, "plugin")
        producer = Kafka.newProducer("testbrokers://x/%d" % (broker.port,), reactor=reactor)
        self.addCleanup(producer.close)
        metadata = yield producer.send("plugin", b"by plugin", timestamp=T0)
        self.assertEqual(metadata, RecordMetadata("plugin", 0, 0, T0))
        records = yield consumeAll(reactor, broker.bootstrap, "plugin")
        self.assertEqual([r.value for r in records], [b"by plugin"])


class BlockingTests(TestCase):
    """
    A producer used through L{txscales.blocking.BlockingClient} from a plain
    script.
    """

    timeout = 120

    @inlineCallbacks
    def test_blockingProducer(self):
        """
        send() returns the L{RecordMetadata} or raises the typed error,
        flush() and close() block until done, a send after close raises
        L{ClientClosedError}; the record reads back.
        """
        broker = TansuBroker(reactor, self.addCleanup)
        yield broker.start()
        yield createTopic(reactor, broker.bootstrap, "blocking")
        out, err, code = yield getProcessOutputAndValue(
            sys.executable, [os.path.join(HERE, "peers", "blocking_producer.py"), broker.dest, "blocking"],
            env=dict(os.environ), path=os.path.dirname(HERE))
        self.assertEqual(code, 0, err.decode("utf-8", "replace") + broker.log)
        result = json.loads(out.decode("utf-8").strip().splitlines()[-1])
        self.assertEqual(result, {
            "sent": ["blocking", 0, 0, T0],
            "unknownTopic": "UnknownTopicOrPartitionError",
            "flushed": None,
            "afterClose": "ClientClosedError",
        })
        records = yield consumeAll(reactor, broker.bootstrap, "blocking")
        self.assertEqual([(r.key, r.value) for r in records], [(b"k", b"blocking")])
