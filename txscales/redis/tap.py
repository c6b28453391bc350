"""
The C{twistd txscales redis-bench} command: run one Redis command many times
through the client, C{--concurrency} in flight at once, show progress once a
second, and end with a throughput and latency summary::

    twistd -n txscales redis-bench --dest tcp://127.0.0.1:6379 \\
        --command get --count 100000 --concurrency 100 --size 32

L{txscales.tap} wires it in as a subcommand.
"""

from array import array
from collections import Counter
from typing import Any, Callable, Optional, Sequence, TextIO

from twisted.application.service import Service
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.python import usage
from twisted.python.failure import Failure

from txscales.discovery import parseStatic, parseZooKeeperUri
from txscales.errors import BadDestinationError
from txscales.redis import Redis, RedisClient
from txscales.redis._connection import DEFAULT_MAX_PENDING

DESTINATIONS = "tcp://host:port[,host:port...] or zk://zkhost:port[,zkhost:port...]/path[#endpoint]"

COMMANDS = ("get", "set", "incr", "ping")
"""The commands C{--command} takes."""

KEY_PREFIX = b"txscales-bench:"
"""The benchmark's keys are this and a number."""

# The least value of each number option.
_LEAST = {"count": 1, "concurrency": 1, "size": 0, "keys": 1, "timeout": 0}


class RedisBenchOptions(usage.Options):
    """
    Options of C{twistd txscales redis-bench}.  They are all checked here,
    so that a wrong one is a usage error and not a failed run.
    """

    synopsis = "--dest URI [--command get|set|incr|ping] [--count N] [--concurrency C] [--size B]"
    optParameters = [
        ["dest", "d", "tcp://127.0.0.1:6379", "Redis servers: %s (several: keys sharded)." % (DESTINATIONS,)],
        ["command", "C", "get", "The command: get, set, incr or ping."],
        ["count", "n", 100000, "Commands to send.", int],
        ["concurrency", "c", 100, "Commands in flight at once.", int],
        ["size", "s", 32, "Bytes of each value (get reads values set first, set writes them).", int],
        ["keys", "k", 1, "Keys to spread the commands over (command I uses key I mod K).", int],
        ["timeout", "t", 5.0, "Seconds a command may take; 0: no limit.", float],
        ["protocol", None, 2, "2 (RESP2) or 3 (RESP3, by HELLO 3).", int],
        [
            "metrics",
            None,
            None,
            "Also serve Prometheus metrics at /metrics on this port of 127.0.0.1 (e.g. 9990), or on this endpoint"
            " string, while the run lasts.",
        ],
    ]

    def __init__(self, localEndpoint: Callable[[str, str], str] = lambda option, value: value) -> None:
        """
        @param localEndpoint: reads C{--metrics} as L{txscales.tap} reads
            its listening options: C{(option, value) -> endpoint string}.
        """
        usage.Options.__init__(self)
        self._localEndpoint = localEndpoint

    def postOptions(self) -> None:
        for name, least in _LEAST.items():
            if self[name] < least:
                raise usage.UsageError("--%s must be %s or more, not %s" % (name, least, self[name]))
        self["command"] = self["command"].lower()
        if self["command"] not in COMMANDS:
            raise usage.UsageError("--command must be one of %s, not %r" % (", ".join(COMMANDS), self["command"]))
        if self["protocol"] not in (2, 3):
            raise usage.UsageError("--protocol must be 2 or 3, not %s" % (self["protocol"],))
        dest = self["dest"]
        try:
            if "://" not in dest or dest.startswith("tcp://"):
                parseStatic(dest if "://" in dest else "tcp://" + dest)
            elif dest.startswith("zk://"):
                parseZooKeeperUri(dest)
        except BadDestinationError as e:
            raise usage.UsageError("--dest: %s (expected %s)" % (e, DESTINATIONS))
        if "://" not in dest:
            self["dest"] = "tcp://" + dest
        if self["metrics"] is not None:
            self["metrics"] = self._localEndpoint("--metrics", self["metrics"])


def percentile(sortedValues: Sequence[float], fraction: float) -> float:
    """
    @return: the value at C{fraction} (0..1) of C{sortedValues}, or 0.0.
    """
    if not len(sortedValues):
        return 0.0
    return float(sortedValues[min(len(sortedValues) - 1, int(round(fraction * (len(sortedValues) - 1))))])


class WrongReplyError(Exception):
    """
    A C{GET} answered another value than the one set: a reply given to the
    wrong command.
    """


class BenchRun:
    """
    Send C{count} commands through C{client}, at most C{concurrency} in
    flight at once, and count the outcomes.

    Command I uses key L{key}C{(I mod keys)}; C{set} writes, and C{get}
    expects, the value L{value}.

    @ivar ok: commands answered as expected.
    @ivar failures: commands failed, by error class (C{WrongReplyError}
        for a C{GET} answered with another value).
    @ivar latencies: seconds from send to reply, per command answered.
    @ivar elapsed: seconds from the first send to the last outcome.
    @ivar interrupted: whether L{interrupt} ended the run early.
    """

    def __init__(self, client: RedisClient, command: str, count: int, clock: Any, out: Optional[TextIO],
                 concurrency: int = 100, size: int = 32, keys: int = 1, progressInterval: float = 1.0) -> None:
        """
        @param command: one of L{COMMANDS}.
        @param clock: the C{IReactorTime} timing the run.
        @param out: where progress lines go (None: nowhere).
        @param progressInterval: seconds between progress lines.
        """
        self._client = client
        self.command = command
        self._count = count
        self._concurrency = concurrency
        self._keys = keys
        self._clock = clock
        self._out = out
        self._interval = progressInterval
        self.value = (b"txscales" * (size // 8 + 1))[:size]
        self._send = self._sender(command)
        self._next = 0
        self._pending = 0
        self._filling = False
        self._start = 0.0
        self._last = (0.0, 0)
        self._done: "Deferred[BenchRun]" = Deferred()
        self._progress = LoopingCall(self._report)
        self._progress.clock = clock
        self.ok = 0
        self.failures: "Counter[str]" = Counter()
        self.latencies = array("d")
        self.elapsed = 0.0
        self.interrupted = False

    @staticmethod
    def key(index: int) -> bytes:
        """
        @return: the key of number C{index}.
        """
        return KEY_PREFIX + b"%d" % (index,)

    def _sender(self, command: str) -> Callable[[bytes], "Deferred[Any]"]:
        client = self._client
        if command == "get":
            return client.get
        if command == "set":
            value = self.value
            return lambda key: client.set(key, value)
        if command == "incr":
            return client.incr
        return lambda key: client.execute("PING")

    @property
    def failed(self) -> int:
        """
        Commands that failed.
        """
        return sum(self.failures.values())

    def run(self) -> "Deferred[BenchRun]":
        """
        @return: a Deferred firing with this run once every command was
            answered or failed.
        """
        self._start = self._clock.seconds()
        self._last = (self._start, 0)
        if self._out is not None:
            self._progress.start(self._interval, now=False)
        self._fill()
        return self._done

    def _fill(self) -> None:
        # A command may settle at once (refused): loop, not recurse.
        if self._filling:
            return
        self._filling = True
        try:
            while self._next < self._count and self._pending < self._concurrency:
                i = self._next
                self._next += 1
                self._pending += 1
                self._send(self.key(i % self._keys)).addCallbacks(
                    self._answered, self._failed, (self._clock.seconds(),))
        finally:
            self._filling = False
        if not self._pending and not self._done.called:
            self._finish()

    def _answered(self, reply: Any, sentAt: float) -> None:
        if self.command == "get" and reply != self.value:
            self.failures[WrongReplyError.__name__] += 1
        else:
            self.latencies.append(self._clock.seconds() - sentAt)
            self.ok += 1
        self._settled()

    def _failed(self, failure: Failure) -> None:
        self.failures[type(failure.value).__name__] += 1
        self._settled()

    def _settled(self) -> None:
        self._pending -= 1
        self._fill()

    def interrupt(self) -> None:
        """
        End the run now, with the commands settled so far: send no more.
        """
        if not self._done.called:
            self.interrupted = True
            self._next = self._count
            self._finish()

    def _finish(self) -> None:
        self.elapsed = self._clock.seconds() - self._start
        if self._progress.running:
            self._progress.stop()
        self._done.callback(self)

    def _report(self) -> None:
        now = self._clock.seconds()
        then, settled = self._last
        done = self.ok + self.failed
        self._last = (now, done)
        assert self._out is not None
        self._out.write("progress: %d/%d commands, %d failed, %.0f commands/s\n" % (
            done, self._count, self.failed, (done - settled) / (now - then)))
        self._out.flush()

    def summary(self) -> str:
        """
        @return: a few lines describing the run: counts, throughput,
            latency percentiles and failures by type.
        """
        latencies = sorted(self.latencies)
        ms: Callable[[float], float] = lambda fraction: percentile(latencies, fraction) * 1000.0
        return (
            "commands=%d ok=%d failed=%d%s elapsed=%.3fs\n"
            "throughput: %.0f commands/s\n"
            "latency ms: p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f max=%.3f\n"
            "errors: %s\n"
            % (
                self._count, self.ok, self.failed,
                " pending=%d (interrupted)" % (self._pending,) if self.interrupted else "", self.elapsed,
                self.elapsed and (self.ok + self.failed) / self.elapsed,
                ms(0.5), ms(0.9), ms(0.99), ms(0.999), ms(1.0),
                ", ".join("%s=%d" % item for item in sorted(self.failures.items())) or "none",
            )
        )


class RedisBenchService(Service):
    """
    Run a L{BenchRun} when started (after setting the keys a C{get} reads),
    print its summary and a C{RESULT:} line, close the client, then stop
    the reactor.  Stopped before the run ended (SIGINT, SIGTERM), it prints
    the summary of the commands settled so far and C{RESULT: INTERRUPTED}.

    @ivar status: the exit status once the run ended: 0 after
        C{RESULT: OK}, 1 after C{RESULT: FAILED} or C{INTERRUPTED}; None
        before.
    """

    status: Optional[int] = None
    _run: Optional[BenchRun] = None
    _stopping = False

    def __init__(self, options: usage.Options, reactor: Any, out: TextIO,
                 setExitStatus: Optional[Callable[[int], None]] = None, registry: Any = None) -> None:
        """
        @param options: the parsed L{RedisBenchOptions}.
        @param out: where to print (a text file).
        @param setExitStatus: called with L{status} before the reactor is
            stopped, or None.
        @param registry: the prometheus C{CollectorRegistry} of the
            client's metrics (default: the global one).
        """
        self._options = options
        self._reactor = reactor
        self._out = out
        self._setExitStatus = setExitStatus
        self._registry = registry

    def startService(self) -> None:
        Service.startService(self)
        self._reactor.callWhenRunning(self._go)

    def stopService(self) -> None:
        Service.stopService(self)
        self._stopping = True
        if self._run is not None:
            self._run.interrupt()

    def _bench(self, client: RedisClient, command: str, count: int, out: Optional[TextIO]) -> BenchRun:
        options = self._options
        self._run = BenchRun(client, command, count, self._reactor, out, options["concurrency"], options["size"],
                             options["keys"])
        return self._run

    @inlineCallbacks
    def _go(self) -> Any:
        options = self._options
        self._out.write(
            "txscales redis-bench: %d %s of %d bytes over %d key(s) at %s, %d in flight, RESP%d\n"
            % (options["count"], options["command"].upper(), options["size"], options["keys"], options["dest"],
               options["concurrency"], options["protocol"]))
        self._out.flush()
        client = None
        failed = True
        try:
            client = Redis.newClient(
                options["dest"], protocol=options["protocol"], timeout=options["timeout"] or None,
                maxPending=max(DEFAULT_MAX_PENDING, options["concurrency"]), clientName="txscales-redis-bench",
                registry=self._registry, reactor=self._reactor)
            if options["command"] == "get":
                setup = yield self._bench(client, "set", options["keys"], None).run()
                if setup.failed:
                    raise RuntimeError("setting the keys failed: %s" % (setup.summary().splitlines()[-1],))
            run = self._run
            if not self._stopping:
                run = yield self._bench(client, options["command"], options["count"], self._out).run()
            assert run is not None
            self._out.write(run.summary())
            failed = run.failed > 0 or run.interrupted
            self._out.write("RESULT: %s\n" % ("INTERRUPTED" if run.interrupted else "FAILED" if failed else "OK",))
        except Exception as e:
            self._out.write("RESULT: FAILED (%s: %s)\n" % (type(e).__name__, e))
        self._out.flush()
        try:
            if client is not None and not self._stopping:
                yield client.close()
        finally:
            self.status = 1 if failed else 0
            if self._setExitStatus is not None:
                self._setExitStatus(self.status)
            if not self._stopping:
                self._reactor.stop()
