"""
One Kafka producer's throughput, measured in a process of its own:

    python benchmarks/kafka/producers.py NAME BOOTSTRAP TOPIC COUNT SIZE

sends C{COUNT} records of C{SIZE} random-looking bytes (no key) to
C{TOPIC}, waits until every one is acknowledged, and prints one JSON line:
C{{"producer", "count", "size", "acked", "seconds", "recordsPerSecond",
"cpuMicrosecondsPerRecord"}} (the producer process's CPU, all threads).
A warm-up of L{WARMUP} records (connection, metadata, first batches)
through the same producer comes first and is not timed.

Every producer gets the same settings (L{SETTINGS}): acks="all", a 5 ms
linger, no compression, no idempotence (aiokafka needs it off against
Tansu), the library's defaults for everything else.  txscales runs twice:
with its default, idempotence on (so that it sends up to C{maxInFlight}
batches of a partition at once, in order), and with idempotence off (one
batch of a partition in flight at a time), as the others.
confluent-kafka also runs twice: with librdkafka's default batches (up to
1 MB) and with 16 KiB ones, the others' size, which shows how many records/s
the broker takes in batches of that size.

L{PRODUCERS} is the table of producers: a name, the virtualenv whose
Python runs it (C{"bench"}: the benchmark's own venv with the third-party
clients, C{"txscales"}: the project's C{.venv}), and a function
C{(bootstrap, topic, warmup, records) -> (acked, seconds, cpuSeconds)}: it
makes its producer, sends the C{warmup} values and then the C{records}
values, each time until all are settled, and returns how many of
C{records} were acknowledged, how long they took and the CPU they used
(L{timed} measures); it may add a fourth item, a dictionary of the
memory C{MEMORY_RECORDS} records hold once sent and not yet acknowledged
(L{bufferedMemory}), which the result then carries as C{"memory"}. A
producer is added by writing its function and adding a row.
"""

import functools
import gc
import json
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _timing import checkWarmup, timed, timedAsync  # noqa: E402

WARMUP = 1000
MEMORY_RECORDS = 100000

SETTINGS = {"acks": "all", "lingerMs": 5, "compression": "none", "idempotence": False}


def values(count, size):
    """
    @return: C{count} values of C{size} random bytes each (64 different
        ones), which no codec could shrink much.
    """
    block = os.urandom(size + 64)
    return [block[i % 64 : i % 64 + size] for i in range(count)]


def kafkaPython(bootstrap, topic, warmup, records):
    """
    kafka-python's C{KafkaProducer}: send every record, then flush.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=SETTINGS["lingerMs"],
        compression_type=None,
        enable_idempotence=False,
    )

    def send(batch):
        futures = [producer.send(topic, value=v) for v in batch]
        producer.flush()
        return sum(1 for f in futures if f.succeeded())

    try:
        return timed(send, warmup, records)
    finally:
        producer.close()


def aiokafka(bootstrap, topic, warmup, records):
    """
    aiokafka's C{AIOKafkaProducer} on asyncio: send every record (each
    C{send} waits while its batch queue is full), then flush.
    """
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def run():
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=SETTINGS["lingerMs"],
            compression_type=None,
            enable_idempotence=False,
        )
        await producer.start()

        async def send(batch):
            futures = [await producer.send(topic, value=v) for v in batch]
            await producer.flush()
            return sum(1 for f in futures if f.done() and f.exception() is None)

        try:
            return await timedAsync(send, warmup, records)
        finally:
            await producer.stop()

    return asyncio.run(run())


def confluentKafka(bootstrap, topic, warmup, records, **config):
    """
    confluent-kafka's C{Producer} (librdkafka): produce every record,
    serving delivery reports while its queue is full, then flush.

    @param config: librdkafka settings over the common ones.
    """
    from confluent_kafka import Producer

    producer = Producer(
        dict(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "linger.ms": SETTINGS["lingerMs"],
                "compression.type": "none",
                "enable.idempotence": False,
            },
            **config
        )
    )
    acked = [0]

    def delivered(error, message):
        if error is None:
            acked[0] += 1

    def send(batch):
        acked[0] = 0
        for v in batch:
            while True:
                try:
                    producer.produce(topic, value=v, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        producer.flush()
        return acked[0]

    return timed(send, warmup, records)


def txscalesProducer(bootstrap, topic, warmup, records, idempotence=None):
    """
    txscales' producer on Twisted's reactor: send every record, keeping
    its Deferred, then flush and count the Deferreds that succeeded (as
    the other producers keep and check their futures; a C{DeferredList}
    would add several objects and a callback per record). Then
    L{bufferedMemory} of L{MEMORY_RECORDS} records, when they fit the
    default C{bufferMemory}, measured after the warm-up and before the
    timed part (which would leave its memory to be reused).
    """
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred
    from twisted.python.failure import Failure

    from txscales.kafka import Kafka

    producer = Kafka.newProducer(
        "tcp://" + bootstrap,
        reactor=reactor,
        acks="all",
        lingerMs=SETTINGS["lingerMs"],
        compression="none",
        idempotence=idempotence,
    )

    async def send(batch):
        sent = [producer.send(topic, v) for v in batch]
        await producer.flush()
        acked = 0
        for d in sent:
            if d.called and not isinstance(d.result, Failure):
                acked += 1
            else:
                d.addErrback(lambda f: None)
        return acked

    async def buffered(size):
        # Each pass sends all its records within one turn of the reactor:
        # the broker cannot have answered any.
        pending = values(MEMORY_RECORDS, size)
        memory = bufferedMemory(lambda: [producer.send(topic, v) for v in pending])
        await producer.flush()
        return memory

    async def run():
        try:
            memory = None
            size = len(records[0])
            if MEMORY_RECORDS * (size + 64) <= 32 * 1024 * 1024:
                checkWarmup(await send(warmup), warmup)
                memory = await buffered(size)
            acked, seconds, cpuSeconds = await timedAsync(send, warmup, records)
            return acked, seconds, cpuSeconds, memory
        finally:
            await producer.close()

    outcome = []

    def main():
        d = ensureDeferred(run())
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(main)
    reactor.run()
    if not isinstance(outcome[0], tuple):
        outcome[0].raiseException()
    return outcome[0]


def bufferedMemory(sendAll):
    """
    Measure what records hold between C{send()} and their acknowledgement.

    @param sendAll: sends records made beforehand all at once, before any
        can be acknowledged, and returns what must be kept alive (their
        futures); it is called twice.
    @return: C{{"records", "rssBytesPerRecord", "tracedBytesPerRecord"}}:
        the growth of the process's resident set size over the first call,
        and of the memory Python allocated (tracemalloc) over the second:
        what the producer and the futures hold, the values excluded.
    """
    gc.collect()
    rss = residentBytes()
    kept = sendAll()
    grown = residentBytes() - rss
    count = len(kept)
    del kept
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = sendAll()
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {"records": count, "rssBytesPerRecord": grown / count, "tracedBytesPerRecord": traced / count}


def residentBytes():
    """
    @return: this process's resident set size in bytes (Linux), else 0.
    """
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0




# name: (venv, function); see the module's docstring.
PRODUCERS = {
    "kafka-python": ("bench", kafkaPython),
    "aiokafka": ("bench", aiokafka),
    "confluent-kafka": ("bench", confluentKafka),
    # librdkafka's batches are up to 1 MB; with the others' 16 KiB, what the
    # broker takes in batches of that size from a client that costs almost
    # no CPU.
    "confluent-kafka-16k": ("bench", functools.partial(confluentKafka, **{"batch.size": 16384})),
    "txscales": ("txscales", txscalesProducer),
    "txscales-no-idempotence": ("txscales", functools.partial(txscalesProducer, idempotence=False)),
}


def measure(name, bootstrap, topic, count, size):
    """
    Warm up, then time C{count} records of C{size} bytes through producer
    C{name}.

    @return: the result dictionary this module prints.
    """
    run = PRODUCERS[name][1]
    outcome = run(bootstrap, topic, values(WARMUP, size), values(count, size))
    acked, seconds, cpuSeconds = outcome[:3]
    result = {
        "producer": name,
        "count": count,
        "size": size,
        "acked": acked,
        "seconds": seconds,
        "recordsPerSecond": acked / seconds,
        "cpuMicrosecondsPerRecord": cpuSeconds / max(acked, 1) * 1e6,
    }
    if len(outcome) > 3 and outcome[3] is not None:
        result["memory"] = outcome[3]
    return result


def main(argv):
    name, bootstrap, topic, count, size = argv
    result = measure(name, bootstrap, topic, int(count), int(size))
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0 if result["acked"] == result["count"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
