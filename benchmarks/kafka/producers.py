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
Tansu; the others follow for a like-for-like comparison), the library's
defaults for everything else.

L{PRODUCERS} is the table of producers: a name, the virtualenv whose
Python runs it (C{"bench"}: the benchmark's own venv with the third-party
clients, C{"txscales"}: the project's C{.venv}), and a function
C{(bootstrap, topic, warmup, records) -> (acked, seconds, cpuSeconds)}: it
makes its producer, sends the C{warmup} values and then the C{records}
values, each time until all are settled, and returns how many of
C{records} were acknowledged, how long they took and the CPU they used
(L{timed} measures). A producer
is added by writing its function and adding a row.
"""

import json
import os
import sys
import time

WARMUP = 1000

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


def confluentKafka(bootstrap, topic, warmup, records):
    """
    confluent-kafka's C{Producer} (librdkafka): produce every record,
    serving delivery reports while its queue is full, then flush.
    """
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": SETTINGS["lingerMs"],
            "compression.type": "none",
            "enable.idempotence": False,
        }
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


def txscalesProducer(bootstrap, topic, warmup, records):
    """
    txscales' producer on Twisted's reactor: send every record, then
    flush.
    """
    from twisted.internet import reactor
    from twisted.internet.defer import DeferredList, ensureDeferred

    from txscales.kafka import Kafka

    producer = Kafka.newProducer(
        "tcp://" + bootstrap,
        reactor=reactor,
        acks="all",
        lingerMs=SETTINGS["lingerMs"],
        compression="none",
        idempotence=SETTINGS["idempotence"],
    )

    async def send(batch):
        results = DeferredList([producer.send(topic, v) for v in batch], consumeErrors=True)
        await producer.flush()
        return sum(1 for ok, _ in await results if ok)

    async def run():
        try:
            return await timedAsync(send, warmup, records)
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


def timed(send, warmup, records):
    """
    Send C{warmup}, then time sending C{records}.

    @param send: sends a list of values and returns how many were
        acknowledged once all are settled.
    @return: C{(acknowledged records, seconds, CPU seconds)} of the timed
        part; the CPU is the whole process's, every thread included.
    """
    checkWarmup(send(warmup), warmup)
    start, cpu = time.perf_counter(), time.process_time()
    acked = send(records)
    return acked, time.perf_counter() - start, time.process_time() - cpu


async def timedAsync(send, warmup, records):
    """
    L{timed} for a coroutine function C{send}.
    """
    checkWarmup(await send(warmup), warmup)
    start, cpu = time.perf_counter(), time.process_time()
    acked = await send(records)
    return acked, time.perf_counter() - start, time.process_time() - cpu


def checkWarmup(acked, warmup):
    if acked != len(warmup):
        raise SystemExit("%d of %d warm-up records acknowledged" % (acked, len(warmup)))


# name: (venv, function); see the module's docstring.
PRODUCERS = {
    "kafka-python": ("bench", kafkaPython),
    "aiokafka": ("bench", aiokafka),
    "confluent-kafka": ("bench", confluentKafka),
    "txscales": ("txscales", txscalesProducer),
}


def measure(name, bootstrap, topic, count, size):
    """
    Warm up, then time C{count} records of C{size} bytes through producer
    C{name}.

    @return: the result dictionary this module prints.
    """
    run = PRODUCERS[name][1]
    acked, seconds, cpuSeconds = run(bootstrap, topic, values(WARMUP, size), values(count, size))
    return {
        "producer": name,
        "count": count,
        "size": size,
        "acked": acked,
        "seconds": seconds,
        "recordsPerSecond": acked / seconds,
        "cpuMicrosecondsPerRecord": cpuSeconds / max(acked, 1) * 1e6,
    }


def main(argv):
    name, bootstrap, topic, count, size = argv
    result = measure(name, bootstrap, topic, int(count), int(size))
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0 if result["acked"] == result["count"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
