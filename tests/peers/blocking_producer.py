"""
Use a Kafka producer through txscales' blocking API from a plain thread, as
a script would.  Prints one JSON line with what happened.

Usage: blocking_producer.py DEST TOPIC
"""

import json
import sys

from txscales.blocking import BlockingClient
from txscales.errors import ClientClosedError
from txscales.kafka import Kafka, UnknownTopicOrPartitionError


def main(dest, topic):
    producer = BlockingClient(lambda: Kafka.newProducer(dest, deliveryTimeout=10), timeout=20)
    out = {}
    metadata = producer.send(topic, b"blocking", key=b"k", timestamp=1700000000000)
    out["sent"] = [metadata.topic, metadata.partition, metadata.offset, metadata.timestamp]
    try:
        producer.send("no-such-topic", b"x")
    except UnknownTopicOrPartitionError as e:
        out["unknownTopic"] = type(e).__name__
    out["flushed"] = producer.flush()
    producer.close()
    try:
        producer.send(topic, b"late")
    except ClientClosedError as e:
        out["afterClose"] = type(e).__name__
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main(*sys.argv[1:])
