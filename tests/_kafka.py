"""
Run a real Kafka-protocol broker for tests: Tansu 0.6 (installed by
C{scripts/setup-kafka-broker} into C{.peers/tansu}), memory storage, on a
free port of 127.0.0.1; and read back what was written with kafka-python,
an independent client (a C{test} extra).

A broker that keeps its records across a kill -9 stores them in a local S3
server instead (moto, installed by C{scripts/setup-s3-server} into
C{.peers/s3}); the S3 server outlives the broker's runs:

    s3 = S3Server(reactor, self.addCleanup)
    yield s3.start()                           # with its bucket made
    broker = TansuBroker(reactor, self.addCleanup, storage=s3)

    broker = TansuBroker(reactor, self.addCleanup)
    yield broker.start()                       # once it logged "ready"
    yield createTopic(reactor, broker.bootstrap, "t", partitions=3)
    records = yield consumeAll(reactor, broker.bootstrap, "t")
    yield broker.kill()                        # SIGKILL: every record is lost
                                               # (unless storage= an S3Server)
    yield broker.start()                       # the same port again

Readiness is Tansu's C{ready in} log line, not a sleep or a poll. The
kafka-python helpers block, so they run in the reactor's thread pool, each
bounded by its own timeout; their errors carry the broker's log, and so
does L{TansuBroker.log} for a test's own failure messages.

Tansu's ListOffsets answers a wrong "latest" offset (the last batch's base
offset plus one), so L{consumeAll} reads up to the high watermark of its
Fetch responses, which is right.
"""

import collections
import os
import re
import time

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThreadPool

from tests._servers import ServerProcess
from tests._twistd import requirePeer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANSU = os.path.join(REPO, ".peers", "tansu", "bin", "tansu")
MOTO = os.path.join(REPO, ".peers", "s3", "bin", "moto_server")
READY = re.compile(r"^ready in ")
MOTO_READY = re.compile(r"Running on http://")

ConsumedRecord = collections.namedtuple(
    "ConsumedRecord", "topic partition offset timestamp timestampType key value headers"
)
ConsumedRecord.__doc__ = """
A record read back by L{consumeAll}: C{headers} is a tuple of C{(str,
bytes)} pairs, C{timestampType} 0 for the producer's time, 1 for the
broker's.
"""


class KafkaHelperError(Exception):
    """
    A kafka-python helper failed or ran out of time; the message carries
    what it saw and the broker's log.
    """


def requireKafkaBroker():
    """
    Fail (under CI) or skip (elsewhere) when Tansu or kafka-python is
    missing.
    """
    requirePeer(
        os.access(TANSU, os.X_OK),
        "Tansu is not installed: run scripts/setup-kafka-broker (it installs %s)" % (TANSU,),
    )
    try:
        import kafka  # noqa: F401
    except ImportError:
        requirePeer(False, "kafka-python is not installed: pip install -e '.[test]'")


class S3Server(ServerProcess):
    """
    A local S3 server (moto) with one bucket, for L{TansuBroker}'s
    persistent storage: its objects live as long as its process.

    @ivar endpoint: its URL, C{http://127.0.0.1:port}.
    @ivar bucket: the bucket's name.
    """

    name = "moto_server"
    readyLine = MOTO_READY

    def __init__(self, reactor, addCleanup, bucket="tansu", startTimeout=30.0):
        """
        @param reactor: the reactor that runs the process.
        @param addCleanup: a test's C{addCleanup}: the process is killed and
            reaped at cleanup.
        @param bucket: the bucket to make.
        @param startTimeout: seconds the start may take.
        """
        requirePeer(
            os.access(MOTO, os.X_OK),
            "moto_server is not installed: run scripts/setup-s3-server (it installs %s)" % (MOTO,),
        )
        self.bucket = bucket
        ServerProcess.__init__(self, reactor, addCleanup, startTimeout=startTimeout)

    def setPort(self, port):
        ServerProcess.setPort(self, port)
        self.endpoint = "http://127.0.0.1:%d" % (port,)

    def argv(self):
        return [MOTO, "-H", "127.0.0.1", "-p", str(self.port)]

    def environment(self):
        return {"NO_COLOR": "1"}

    @property
    def storageEnvironment(self):
        """
        The environment variables that point Tansu's C{s3://} storage here.
        """
        return {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true"}

    @inlineCallbacks
    def start(self):
        """
        Start the server and make the bucket.

        @return: a Deferred firing with this object, or failing with
            L{ProcessExitedEarly} or L{KafkaHelperError}.
        """
        yield ServerProcess.start(self)
        yield _inThread(self._reactor, self._makeBucket)
        return self

    def _makeBucket(self):
        import urllib.request

        request = urllib.request.Request("%s/%s" % (self.endpoint, self.bucket), method="PUT")
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except Exception as e:
            raise KafkaHelperError("making bucket %r on %s failed: %r\n%s"
                                   % (self.bucket, self.endpoint, e, self.process.output))


class TansuBroker(ServerProcess):
    """
    A Tansu broker process with memory storage (a restart starts empty), or
    with an L{S3Server}'s (a restart keeps what was written).

    @ivar bootstrap: C{127.0.0.1:port}, for kafka-python.
    @ivar dest: C{tcp://127.0.0.1:port}, for txscales.
    @ivar advertisedPort: the port of 127.0.0.1 the broker tells clients
        to connect to (a proxy's, in front of it), or None for its own;
        set it before L{start}.
    """

    name = "tansu"
    readyLine = READY
    addressInUse = "AddrInUse"

    def __init__(self, reactor, addCleanup, port=None, startTimeout=15.0, storage=None):
        """
        The arguments are L{ServerProcess}'s, and:

        @param storage: a started L{S3Server} whose bucket keeps the
            records, or None for memory.
        """
        requireKafkaBroker()
        self._storage = storage
        self.advertisedPort = None
        ServerProcess.__init__(self, reactor, addCleanup, port, startTimeout)

    def setPort(self, port):
        ServerProcess.setPort(self, port)
        self.bootstrap = "127.0.0.1:%d" % (port,)
        self.dest = "tcp://" + self.bootstrap

    def argv(self):
        listen = "tcp://" + self.bootstrap
        advertised = listen if self.advertisedPort is None else "tcp://127.0.0.1:%d" % (self.advertisedPort,)
        return [TANSU, "broker", "--listener-url", listen, "--advertised-listener-url", advertised,
                "--storage-engine", "memory://tansu/" if self._storage is None else "s3://%s/" % (self._storage.bucket,)]

    def environment(self):
        env = {"NO_COLOR": "1"}
        if self._storage is not None:
            env.update(self._storage.storageEnvironment)
        return env


def _inThread(reactor, f, *args, **kwargs):
    return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args, **kwargs)


def _describe(broker):
    return "" if broker is None else "\n" + broker.log


def createTopic(reactor, bootstrap, topic, partitions=1, timeout=10.0, broker=None):
    """
    Create C{topic} with kafka-python's admin client.

    @param bootstrap: C{host:port} of the broker.
    @param partitions: how many partitions.
    @param timeout: seconds before it fails.
    @param broker: the L{TansuBroker}, whose log goes into an error.
    @return: a Deferred firing with None, or failing with
        L{KafkaHelperError}.
    """
    return _inThread(reactor, createTopicBlocking, bootstrap, topic, partitions, timeout, broker)


def createTopicBlocking(bootstrap, topic, partitions=1, timeout=10.0, broker=None):
    """
    L{createTopic}, blocking (for benchmarks and threads).
    """
    from kafka.admin import KafkaAdminClient, NewTopic

    ms = int(timeout * 1000)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ms)
    except Exception as e:
        raise KafkaHelperError("cannot connect to %s: %r%s" % (bootstrap, e, _describe(broker)))
    try:
        answer = admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=ms)
    except Exception as e:
        raise KafkaHelperError("creating topic %r failed: %r%s" % (topic, e, _describe(broker)))
    finally:
        admin.close()
    errors = [t for t in answer["topics"] if t["error_code"] != 0]
    if errors:
        raise KafkaHelperError("creating topic %r failed: %r%s" % (topic, errors, _describe(broker)))


def consumeAll(reactor, bootstrap, topic, timeout=30.0, broker=None):
    """
    Read every record of every partition of C{topic} with kafka-python
    (C{group_id=None}: no group, partitions assigned directly), from the
    beginning up to each partition's high watermark in the first Fetch
    response that gives it: at least everything acknowledged before the
    call.

    @param bootstrap: C{host:port} of the broker.
    @param timeout: seconds before it fails.
    @param broker: the L{TansuBroker}, whose log goes into an error.
    @return: a Deferred firing with a list of L{ConsumedRecord}, sorted by
        partition and offset, or failing with L{KafkaHelperError}.
    """
    return _inThread(reactor, consumeAllBlocking, bootstrap, topic, timeout, broker)


def consumeAllBlocking(bootstrap, topic, timeout=30.0, broker=None):
    """
    L{consumeAll}, blocking (for benchmarks and threads).
    """
    from kafka import KafkaConsumer, TopicPartition

    deadline = time.monotonic() + timeout
    ms = int(timeout * 1000)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        request_timeout_ms=ms + 1000,
    )
    records = []
    try:
        ids = None
        while ids is None and time.monotonic() < deadline:
            ids = consumer.partitions_for_topic(topic)
            if ids is None:
                consumer.poll(timeout_ms=100)
        if not ids:
            raise KafkaHelperError("topic %r not found on %s%s" % (topic, bootstrap, _describe(broker)))
        tps = [TopicPartition(topic, p) for p in sorted(ids)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        highwater = {}

        def pending():
            for tp in tps:
                if tp not in highwater:
                    hw = consumer.highwater(tp)
                    if hw is None:
                        return True
                    highwater[tp] = hw
                if consumer.position(tp) < highwater[tp]:
                    return True
            return False

        while pending():
            left = deadline - time.monotonic()
            if left <= 0:
                raise KafkaHelperError(
                    "consuming %r timed out after %g s with %d records; positions %r, high watermarks %r%s"
                    % (topic, timeout, len(records), {tp.partition: consumer.position(tp) for tp in tps},
                       {tp.partition: hw for tp, hw in highwater.items()}, _describe(broker))
                )
            for tp, batch in consumer.poll(timeout_ms=int(min(left, 0.2) * 1000)).items():
                records.extend(batch)
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.partition, r.offset))
    return [
        ConsumedRecord(r.topic, r.partition, r.offset, r.timestamp, r.timestamp_type, r.key, r.value,
                       tuple((k, v) for k, v in (r.headers or ())))
        for r in records
    ]
