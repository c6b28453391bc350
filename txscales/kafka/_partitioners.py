"""
Kafka's partitioners, sans-IO, each an
L{txscales.interfaces.IPartitioner} found by name through the plugins of
C{twisted/plugins/txscales_kafka_partitioners.py}: C{murmur2} (Kafka's
default: keyed records by the murmur2 hash of their key, exactly as the
Java client hashes them, the others sticky), C{sticky} and C{roundrobin}
(the key ignored).  Plain Python, no Twisted.
"""

from typing import Dict, Optional, Protocol, Sequence

from zope.interface import implementer

from txscales.interfaces import IPartitioner

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """
    The 32-bit murmur2 hash of Apache Kafka's C{Utils.murmur2}.

    @param data: the bytes to hash (a record's serialized key).
    @return: the hash, as Java's signed C{int}.
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    for i in range(0, tail, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    left = length & 3
    if left == 3:
        h ^= data[tail + 2] << 16
    if left >= 2:
        h ^= data[tail + 1] << 8
    if left >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def toPositive(number: int) -> int:
    """
    Apache Kafka's C{Utils.toPositive}: clear the sign bit.

    @param number: a Java C{int}.
    @return: C{number & 0x7fffffff}.
    """
    return number & 0x7FFFFFFF


def murmur2Partition(key: bytes, partitionCount: int) -> int:
    """
    The partition the Java client's default partitioner gives a keyed
    record.

    @param key: the record's serialized key.
    @param partitionCount: how many partitions the topic has.
    @return: C{toPositive(murmur2(key)) % partitionCount}.
    """
    return toPositive(murmur2(key)) % partitionCount


class RandomSource(Protocol):
    """
    What a partitioner needs of a random source: a C{random.Random}.
    """

    def randrange(self, stop: int) -> int:
        """
        @return: a random integer in C{[0, stop)}.
        """


@implementer(IPartitioner)
class RoundRobinPartitioner:
    """
    Give each record of a topic, keyed or not, the next partition in turn,
    as the Java client's C{RoundRobinPartitioner}, from a random start.
    """

    def __init__(self, random: RandomSource) -> None:
        """
        @param random: where each topic's first partition comes from.
        """
        self._random = random
        self._next: Dict[str, int] = {}

    def partition(self, topic: str, key: Optional[bytes], partitions: Sequence[int]) -> int:
        """
        @param partitions: the topic's partitions (the available ones, if
            any is).
        @return: the partition for the next record of C{topic}.
        """
        counter = self._next.get(topic)
        if counter is None:
            counter = self._random.randrange(len(partitions))
        self._next[topic] = counter + 1
        return partitions[counter % len(partitions)]

    def onNewBatch(self, topic: str, previous: int, partitions: Sequence[int]) -> None:
        """
        Nothing: the next record goes to the next partition anyway.
        """


@implementer(IPartitioner)
class StickyPartitioner:
    """
    Keep the records of a topic, keyed or not, on one partition until the
    producer closes the batch they fill (L{onNewBatch}); then pick another
    at random, as the Java client's sticky partitioner (KIP-480) does for
    records without a key (its C{UniformStickyPartitioner} for all).
    """

    def __init__(self, random: RandomSource) -> None:
        """
        @param random: where each new sticky partition comes from.
        """
        self._random = random
        self._sticky: Dict[str, int] = {}

    def partition(self, topic: str, key: Optional[bytes], partitions: Sequence[int]) -> int:
        """
        @param partitions: the topic's partitions (the available ones, if
            any is).
        @return: the partition for the next record of C{topic}.
        """
        current = self._sticky.get(topic)
        if current is None or current not in partitions:
            current = self._sticky[topic] = partitions[self._random.randrange(len(partitions))]
        return current

    def onNewBatch(self, topic: str, previous: int, partitions: Sequence[int]) -> None:
        """
        The batch of C{previous} is full: move the topic's records without
        a key to another partition (when there is one).
        """
        if self._sticky.get(topic) != previous:
            return
        if len(partitions) < 2:
            self._sticky.pop(topic, None)
            return
        others = [p for p in partitions if p != previous]
        self._sticky[topic] = others[self._random.randrange(len(others))]


@implementer(IPartitioner)
class Murmur2Partitioner(StickyPartitioner):
    """
    Kafka's default partitioner, as the Java client's: a keyed record goes
    to the partition L{murmur2Partition} gives its key; records without a
    key stick to one partition per topic, as L{StickyPartitioner}'s.
    """

    def partition(self, topic: str, key: Optional[bytes], partitions: Sequence[int]) -> int:
        """
        @param partitions: the topic's partitions, all of them (the hash
            counts them all, as Java's does).
        @return: the partition for a record of C{topic} with C{key}.
        """
        if key is not None:
            return partitions[toPositive(murmur2(key)) % len(partitions)]
        # StickyPartitioner.partition's common case, without its call.
        current = self._sticky.get(topic)
        if current is None or current not in partitions:
            return StickyPartitioner.partition(self, topic, None, partitions)
        return current
