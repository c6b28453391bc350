"""
The C{twistd txscales redis-bench} command: run one Redis command many times
through the client, C{--concurrency} in flight at once, show progress once a
second, and end with a throughput and latency summary::

    twistd -n txscales redis-bench --dest tcp://127.0.0.1:6379 \\
        --command get --count 100000 --concurrency 100 --size 32

L{txscales.tap} wires it in as a subcommand.
"""

from typing import Any, Callable, Optional, TextIO, Tuple

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python import usage

from txscales._loadrun import ADMIN_PARAMETER, DESTINATIONS, METRICS_PARAMETER, LoadOptions, LoadRun, LoadService
from txscales.discovery import parseStatic, parseZooKeeperUri
from txscales.errors import BadDestinationError
from txscales.redis import Redis, RedisClient
from txscales.redis._connection import DEFAULT_MAX_PENDING

COMMANDS = ("get", "set", "incr", "ping")
"""The commands C{--command} takes."""

KEY_PREFIX = b"txscales-bench:"
"""The benchmark's keys are this and a number."""

class RedisBenchOptions(LoadOptions):
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
        METRICS_PARAMETER,
        ADMIN_PARAMETER,
    ]
    least = {"count": 1, "concurrency": 1, "size": 0, "keys": 1, "timeout": 0}

    def postOptions(self) -> None:
        self.checkLeast()
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
        self.readMetrics()


class WrongReplyError(Exception):
    """
    A C{GET} answered another value than the one set: a reply given to the
    wrong command.
    """


class BenchRun(LoadRun):
    """
    Send C{count} commands through C{client}, at most C{concurrency} in
    flight at once, and count the outcomes.

    Command I uses key L{key}C{(I mod keys)}; C{set} writes, and C{get}
    expects, the value L{value}.

    @ivar failures: commands failed, by error class (C{WrongReplyError}
        for a C{GET} answered with another value).
    @ivar latencies: seconds from send to reply, per command answered.
    @ivar elapsed: seconds from the first send to the last outcome.
    @ivar interrupted: whether C{interrupt()} ended the run early.
    """

    def __init__(self, client: RedisClient, command: str, count: int, clock: Any, out: Optional[TextIO],
                 concurrency: int = 100, size: int = 32, keys: int = 1, progressInterval: float = 1.0) -> None:
        """
        @param command: one of L{COMMANDS}.
        @param clock: the C{IReactorTime} timing the run.
        @param out: where progress lines go (None: nowhere).
        @param progressInterval: seconds between progress lines.
        """
        LoadRun.__init__(self, count, concurrency, clock, out, progressInterval)
        self._client = client
        self.command = command
        self._keys = keys
        self.value = (b"txscales" * (size // 8 + 1))[:size]
        self._sendKey = self._sender(command)

    @property
    def ok(self) -> int:
        """
        Commands answered as expected.
        """
        return self.succeeded

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

    def _send(self, index: int) -> None:
        self._sendKey(self.key(index % self._keys)).addCallbacks(self._answered, self._failed, (self._clock.seconds(),))

    def _answered(self, reply: Any, sentAt: float) -> None:
        if self.command == "get" and reply != self.value:
            self._failedAs(WrongReplyError.__name__)
        else:
            self._succeeded(sentAt)

    def _progressCounts(self) -> Tuple[int, ...]:
        return (self.ok + self.failed,)

    def _progressLine(self, seconds: float, before: Tuple[int, ...]) -> str:
        done = self.ok + self.failed
        return "progress: %d/%d commands, %d failed, %.0f commands/s\n" % (
            done, self._count, self.failed, (done - before[0]) / seconds)

    def summary(self) -> str:
        """
        @return: a few lines describing the run: counts, throughput,
            latency percentiles and failures by type.
        """
        p50, p90, p99, p999, top = self.latenciesMs((0.5, 0.9, 0.99, 0.999, 1.0))
        return (
            "commands=%d ok=%d failed=%d%s elapsed=%.3fs\n"
            "throughput: %.0f commands/s\n"
            "latency ms: p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f max=%.3f\n"
            % (
                self._count, self.ok, self.failed, self.interruptedNote(), self.elapsed,
                self.elapsed and (self.ok + self.failed) / self.elapsed,
                p50, p90, p99, p999, top,
            )
        ) + self.errorsLine()


class RedisBenchService(LoadService[BenchRun]):
    """
    Run a L{BenchRun} when started (after setting the keys a C{get} reads),
    print its summary and a C{RESULT:} line, close the client, then stop
    the reactor.  Stopped before the run ended (SIGINT, SIGTERM), it prints
    the summary of the commands settled so far and C{RESULT: INTERRUPTED}.

    Its C{options} are the parsed L{RedisBenchOptions}; its C{registry} is
    the prometheus C{CollectorRegistry} of the client's metrics.
    """

    def _bench(self, client: RedisClient, command: str, count: int, out: Optional[TextIO]) -> BenchRun:
        options = self._options
        self._run = BenchRun(client, command, count, self._reactor, out, options["concurrency"], options["size"],
                             options["keys"])
        return self._run

    def _banner(self) -> str:
        options = self._options
        return (
            "txscales redis-bench: %d %s of %d bytes over %d key(s) at %s, %d in flight, RESP%d\n"
            % (options["count"], options["command"].upper(), options["size"], options["keys"], options["dest"],
               options["concurrency"], options["protocol"]))

    def _connect(self) -> RedisClient:
        options = self._options
        return Redis.newClient(
            options["dest"], protocol=options["protocol"], timeout=options["timeout"] or None,
            maxPending=max(DEFAULT_MAX_PENDING, options["concurrency"]), clientName="txscales-redis-bench",
            registry=self._registry, reactor=self._reactor)

    @inlineCallbacks
    def _measure(self, client: RedisClient) -> Any:
        options = self._options
        if options["command"] == "get":
            setup = yield self._bench(client, "set", options["keys"], None).run()
            if setup.failed:
                raise RuntimeError("setting the keys failed: %s" % (setup.summary().splitlines()[-1],))
        run = self._run
        if not self._stopping:
            run = yield self._bench(client, options["command"], options["count"], self._out).run()
        assert run is not None
        return run
