"""
The txscales producer's CPU per record without a broker:

    python benchmarks/kafka/micro.py [--count N] [--size BYTES] [--profile]

sends C{N} records of C{BYTES} bytes (no key, one partition) through a
L{KafkaProducer} whose cluster is a stand-in that answers every Produce
request at once, on a manual clock, and prints the microseconds of CPU
per record of three phases: C{send} (the C{send()} calls, records encoded
into their batches), C{drain} (batches built and Produce requests
encoded) and C{complete} (responses decoded, every record's Deferred
fired).  C{--profile} prints cProfile's top functions instead.
"""

import argparse
import cProfile
import heapq
import os
import pstats
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from twisted.internet.base import DelayedCall  # noqa: E402
from twisted.internet.defer import Deferred, succeed  # noqa: E402

from txscales.kafka._producer import KafkaProducer  # noqa: E402

_VERSION = 7


class _Clock:
    """
    A manual clock whose delayed calls are kept in a heap, as the reactor
    keeps them (L{twisted.internet.task.Clock} sorts them at every call,
    which would dominate here).
    """

    def __init__(self):
        self.now = 0.0
        self.calls = []

    def seconds(self):
        return self.now

    def callLater(self, delay, f, *args, **kwargs):
        call = DelayedCall(self.now + delay, f, args, kwargs, self._cancelled, lambda c: None, self.seconds)
        heapq.heappush(self.calls, (call.time, id(call), call))
        return call

    def _cancelled(self, call):
        pass

    def advance(self, amount):
        self.now += amount
        while self.calls and self.calls[0][0] <= self.now:
            call = heapq.heappop(self.calls)[2]
            if not (call.cancelled or call.called):
                call.called = 1
                call.func(*call.args, **call.kw)


class _Partition:
    partition = 0
    leader = 0
    errorCode = 0


class _Topic:
    name = "bench"
    errorCode = 0
    partitions = [_Partition()]


class _Connection:
    """
    Answers each Produce request when L{answer} is called.
    """

    def __init__(self):
        self.waiting = []
        self.offset = 0

    def version(self, apiKey):
        return _VERSION

    def request(self, apiKey, version, body):
        d = Deferred()
        # The record count of the one batch (one topic, one partition): the
        # last field of its header, after the request's 31 bytes before it.
        count = struct.unpack_from(">i", body, 31 + 57)[0]
        self.waiting.append((d, count))
        return d

    def answer(self):
        waiting, self.waiting = self.waiting, []
        for d, count in waiting:
            frame = (struct.pack(">ii", 1, 1) + struct.pack(">h", 5) + b"bench" + struct.pack(">i", 1)
                     + struct.pack(">ihqqq", 0, 0, self.offset, -1, 0) + struct.pack(">i", 0))
            self.offset += count
            d.callback(frame)


class _Cluster:
    def __init__(self):
        self.topics = {"bench": _Topic()}
        self.brokers = {0: ("127.0.0.1", 9092)}
        self.connection = _Connection()

    def topic(self, name):
        return succeed(self.topics[name])

    def cached(self, name, now):
        return self.topics[name]

    def leaderOf(self, topic, partition):
        return 0

    def connectionToNode(self, node):
        return succeed(self.connection)

    def invalidate(self):
        pass

    def refresh(self):
        return succeed(None)

    def close(self):
        pass


def run(count, size):
    clock = _Clock()
    cluster = _Cluster()
    producer = KafkaProducer(cluster, clock, idempotence=False)
    value = os.urandom(size)
    acked = [0]

    def ok(_):
        acked[0] += 1

    times = {}
    cpu = time.process_time()
    for _ in range(count):
        producer.send("bench", value).addCallback(ok)
    times["send"] = time.process_time() - cpu
    cpu = time.process_time()
    producer.flush()
    times["drain"] = time.process_time() - cpu
    cpu = time.process_time()
    while cluster.connection.waiting:
        cluster.connection.answer()
        clock.advance(0)
    times["complete"] = time.process_time() - cpu
    assert acked[0] == count, acked[0]
    return {phase: seconds / count * 1e6 for phase, seconds in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--count", type=int, default=100000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(run, args.count, args.size)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return 0
    run(1000, args.size)
    result = run(args.count, args.size)
    print(" ".join("%s %.2f" % item for item in result.items()), "total %.2f us/record" % (sum(result.values()),))
    return 0


if __name__ == "__main__":
    sys.exit(main())
