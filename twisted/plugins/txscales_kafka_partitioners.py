"""
txscales' Kafka partitioners as plugins; the real code is imported only when
a producer is built.
"""

from importlib import import_module

from twisted.plugin import IPlugin
from zope.interface import implementer

from txscales.interfaces import IPartitionerFactory


@implementer(IPlugin, IPartitionerFactory)
class _Partitioner:
    """
    A partitioner plugin: builds the class named C{target} (imported then).
    """

    def __init__(self, name, target, description):
        self.name = name
        self.description = description
        self._target = target

    def build(self, random):
        module, _, name = self._target.rpartition(".")
        return getattr(import_module(module), name)(random)


murmur2 = _Partitioner(
    "murmur2",
    "txscales.kafka._partitioners.Murmur2Partitioner",
    "Kafka's default: a keyed record by the murmur2 hash of its key (as the Java client), the others sticky.",
)
sticky = _Partitioner(
    "sticky",
    "txscales.kafka._partitioners.StickyPartitioner",
    "Every record on one partition until its batch is full, then another at random (key ignored).",
)
roundRobin = _Partitioner(
    "roundrobin",
    "txscales.kafka._partitioners.RoundRobinPartitioner",
    "Each record on the next partition in turn (key ignored).",
)
