"""
Tests for Kafka's partitioners: murmur2 as the Java client computes it, the
sticky and round-robin choices, and their plugins.
"""

import collections
import os
import random
import shutil
import sys
import tempfile

from kafka.partitioner.default import murmur2 as theirMurmur2
from twisted.internet.task import Clock
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txscales._plugins import partitionerFactory
from txscales.errors import UnknownPluginError
from txscales.interfaces import IPartitioner, IPartitionerFactory
from txscales.kafka import Kafka
from txscales.kafka._partitioners import (
    Murmur2Partitioner,
    RoundRobinPartitioner,
    StickyPartitioner,
    murmur2,
    murmur2Partition,
    toPositive,
)

# Apache Kafka's UtilsTest.testMurmur2: key -> Utils.murmur2 (a Java int).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


class Murmur2Tests(SynchronousTestCase):
    """
    L{murmur2} is the Java client's C{Utils.murmur2}.
    """

    def test_javaVectors(self):
        """
        The Java client's published vectors hash to its values.
        """
        self.assertEqual({key: murmur2(key) for key in JAVA_VECTORS}, JAVA_VECTORS)

    def test_kafkaPython(self):
        """
        Random keys of every length remainder hash as kafka-python's murmur2
        (which returns the unsigned value), and land on its partition.
        """
        source = random.Random(12)
        for _ in range(3000):
            key = bytes(source.randrange(256) for _ in range(source.randrange(70)))
            self.assertEqual(murmur2(key) & 0xFFFFFFFF, theirMurmur2(key), key)
            for count in (1, 3, 12, 100):
                self.assertEqual(murmur2Partition(key, count), (theirMurmur2(key) & 0x7FFFFFFF) % count)

    def test_empty(self):
        """
        The empty key hashes as Java hashes it: through the final mix only.
        """
        self.assertEqual(murmur2(b"") & 0xFFFFFFFF, theirMurmur2(b""))

    def test_toPositive(self):
        """
        L{toPositive} clears the sign bit, as C{Utils.toPositive}.
        """
        self.assertEqual(toPositive(-1), 0x7FFFFFFF)
        self.assertEqual(toPositive(-(1 << 31)), 0)
        self.assertEqual(toPositive(5), 5)
        self.assertEqual(murmur2Partition(b"21", 7), toPositive(-973932308) % 7)


class RoundRobinTests(SynchronousTestCase):
    """
    L{RoundRobinPartitioner} cycles through a topic's partitions.
    """

    def test_cycles(self):
        """
        Each topic starts where its random source says, then takes the next
        partition each time.
        """
        partitioner = RoundRobinPartitioner(random.Random(1))
        start = random.Random(1).randrange(4)
        picks = [partitioner.partition("t", None, [0, 1, 2, 3]) for _ in range(6)]
        self.assertEqual(picks, [(start + i) % 4 for i in range(6)])

    def test_availableSubset(self):
        """
        The cycle runs over the partitions given, available ones only.
        """
        partitioner = RoundRobinPartitioner(random.Random(1))
        picks = {partitioner.partition("t", b"k", [2, 5]) for _ in range(4)}
        self.assertEqual(picks, {2, 5})


class StickyTests(SynchronousTestCase):
    """
    L{StickyPartitioner} keeps records without a key on one partition until
    its batch is full.
    """

    def test_sticks(self):
        """
        Records go to one partition until L{StickyPartitioner.onNewBatch},
        then to another one.
        """
        partitioner = StickyPartitioner(random.Random(3))
        partitions = [0, 1, 2, 3]
        first = {partitioner.partition("t", None, partitions) for _ in range(10)}
        self.assertEqual(len(first), 1)
        (current,) = first
        partitioner.onNewBatch("t", current, partitions)
        second = {partitioner.partition("t", None, partitions) for _ in range(10)}
        self.assertEqual(len(second), 1)
        self.assertNotEqual(second, first)

    def test_staleNewBatch(self):
        """
        A full batch of a partition the topic no longer sticks to changes
        nothing.
        """
        partitioner = StickyPartitioner(random.Random(3))
        current = partitioner.partition("t", None, [0, 1, 2])
        partitioner.onNewBatch("t", (current + 1) % 3, [0, 1, 2])
        self.assertEqual(partitioner.partition("t", None, [0, 1, 2]), current)

    def test_partitionGone(self):
        """
        When its partition is no longer available the topic sticks to
        another one.
        """
        partitioner = StickyPartitioner(random.Random(3))
        current = partitioner.partition("t", None, [0, 1, 2])
        others = [p for p in (0, 1, 2) if p != current]
        self.assertIn(partitioner.partition("t", None, others), others)

    def test_singlePartition(self):
        """
        A topic of one partition stays on it.
        """
        partitioner = StickyPartitioner(random.Random(3))
        self.assertEqual(partitioner.partition("t", None, [4]), 4)
        partitioner.onNewBatch("t", 4, [4])
        self.assertEqual(partitioner.partition("t", None, [4]), 4)


class Murmur2PartitionerTests(SynchronousTestCase):
    """
    L{Murmur2Partitioner}, Kafka's default: murmur2 for keyed records,
    sticky for the others.
    """

    def test_keyedAsJava(self):
        """
        A keyed record goes to the partition of its key's murmur2 hash,
        whatever came before.
        """
        partitioner = Murmur2Partitioner(random.Random(1))
        partitions = list(range(12))
        for key, hashed in JAVA_VECTORS.items():
            self.assertEqual(partitioner.partition("t", key, partitions), toPositive(hashed) % 12)
            partitioner.onNewBatch("t", toPositive(hashed) % 12, partitions)
            self.assertEqual(partitioner.partition("t", key, partitions), toPositive(hashed) % 12)

    def test_keylessSticky(self):
        """
        Records without a key stick to one partition until its batch is
        full.
        """
        partitioner = Murmur2Partitioner(random.Random(3))
        partitions = [0, 1, 2, 3]
        first = {partitioner.partition("t", None, partitions) for _ in range(10)}
        self.assertEqual(len(first), 1)
        partitioner.onNewBatch("t", first.pop(), partitions)
        self.assertEqual(len({partitioner.partition("t", None, partitions) for _ in range(10)}), 1)


NAMES = {"murmur2": Murmur2Partitioner, "sticky": StickyPartitioner, "roundrobin": RoundRobinPartitioner}


class PluginTests(SynchronousTestCase):
    """
    The partitioners are L{IPartitionerFactory} plugins found by name.
    """

    def test_byName(self):
        """
        Each name builds a new partitioner of its class, providing
        L{IPartitioner}.
        """
        for name, cls in NAMES.items():
            factory = partitionerFactory(name)
            self.assertTrue(verifyObject(IPartitionerFactory, factory))
            self.assertEqual(factory.name, name)
            self.assertTrue(factory.description)
            one = factory.build(random.Random(1))
            self.assertIsNot(one, factory.build(random.Random(1)))
            self.assertIs(type(one), cls)
            self.assertTrue(verifyObject(IPartitioner, one))

    def test_namesListed(self):
        """
        The three partitioners are among the plugins, once each.
        """
        names = [plugin.name for plugin in getPlugins(IPartitionerFactory)]
        for name in NAMES:
            self.assertEqual(names.count(name), 1, names)

    def test_unknownName(self):
        """
        An unknown name fails when the producer is built, with
        L{UnknownPluginError} naming the known ones.
        """
        error = self.assertRaises(UnknownPluginError, Kafka.newProducer, "tcp://127.0.0.1:9",
                                  partitioner="hashed", reactor=Clock())
        for name in ["hashed"] + list(NAMES):
            self.assertIn(name, str(error))

    def test_thirdParty(self):
        """
        A plugin file dropped on the plugin path adds a partitioner that a
        producer uses by name.
        """
        import twisted.plugins

        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        pluginDir = os.path.join(directory, "twisted", "plugins")
        os.makedirs(pluginDir)
        with open(os.path.join(pluginDir, "txscales_test_partitioner.py"), "w") as f:
            f.write(
                "from zope.interface import implementer\n"
                "from twisted.plugin import IPlugin\n"
                "from txscales.interfaces import IPartitioner, IPartitionerFactory\n"
                "@implementer(IPartitioner)\n"
                "class Last:\n"
                "    def partition(self, topic, key, partitions):\n"
                "        return partitions[-1]\n"
                "    def onNewBatch(self, topic, previous, partitions):\n"
                "        pass\n"
                "@implementer(IPlugin, IPartitionerFactory)\n"
                "class LastFactory:\n"
                "    name = 'test-last'\n"
                "    description = 'test'\n"
                "    def build(self, random):\n"
                "        return Last()\n"
                "last = LastFactory()\n"
            )
        twisted.plugins.__path__.append(pluginDir)
        self.addCleanup(twisted.plugins.__path__.remove, pluginDir)
        self.addCleanup(sys.modules.pop, "twisted.plugins.txscales_test_partitioner", None)
        producer = Kafka.newProducer("tcp://127.0.0.1:9", partitioner="test-last", reactor=Clock())
        self.assertEqual(producer._partitioner.partition("t", b"k", [0, 1, 2]), 2)

    def test_roundRobinSpread(self):
        """
        The roundrobin plugin spreads records evenly, keyed or not: 3000
        records over 3 partitions, 1000 each, keys ignored.
        """
        partitioner = partitionerFactory("roundrobin").build(random.Random(5))
        counts = collections.Counter(partitioner.partition("t", b"same" if i % 2 else None, [0, 1, 2])
                                     for i in range(3000))
        self.assertEqual(counts, {0: 1000, 1: 1000, 2: 1000})

    def test_stickyIgnoresKeys(self):
        """
        The sticky plugin keeps keyed records on one partition too, until
        its batch is full.
        """
        partitioner = partitionerFactory("sticky").build(random.Random(5))
        picks = {partitioner.partition("t", b"key%d" % (i,), [0, 1, 2]) for i in range(50)}
        self.assertEqual(len(picks), 1)
