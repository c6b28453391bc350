"""
What the load commands (C{twistd txscales kafka-produce}, C{redis-bench})
share: options checked the same way (L{LoadOptions}), a run that keeps a
bounded number of operations outstanding, shows progress once a second and
sums itself up with latency percentiles (L{LoadRun}), and a service that
runs it, prints a C{RESULT:} line, closes the client and stops the reactor
with an exit status (L{LoadService}).

Each command keeps its own options, messages and output format; this module
knows nothing of Kafka or Redis.
"""

from array import array
from collections import Counter
from typing import Any, Callable, Dict, Generic, List, Optional, Sequence, TextIO, Tuple, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.python import usage
from twisted.python.failure import Failure

_Run = TypeVar("_Run", bound="LoadRun")

DESTINATIONS = "tcp://host:port[,host:port...] or zk://zkhost:port[,zkhost:port...]/path[#endpoint]"
"""The destinations a load command's C{--dest} takes, as its help says."""

METRICS_PARAMETER = [
    "metrics",
    None,
    None,
    "Also serve Prometheus metrics at /metrics on this port of 127.0.0.1 (e.g. 9990), or on this endpoint"
    " string, while the run lasts.",
]
"""The C{--metrics} entry of a load command's C{optParameters}."""

ADMIN_PARAMETER = [
    "admin",
    None,
    None,
    "Also serve the admin pages (/health, /metrics, /admin/clients, /admin/tracing) on this port of 127.0.0.1"
    " (e.g. 9990), or on this endpoint string, while the run lasts.",
]
"""The C{--admin} entry of a load command's C{optParameters}."""


class LoadOptions(usage.Options):
    """
    Options of a load command, with L{METRICS_PARAMETER} and
    L{ADMIN_PARAMETER} among its C{optParameters}: checks its numbers'
    least values and reads C{--metrics} and C{--admin}.

    @cvar least: the least value of each number option, by name.
    """

    least: Dict[str, float] = {}

    def __init__(self, localEndpoint: Callable[[str, str], str] = lambda option, value: value) -> None:
        """
        @param localEndpoint: reads C{--metrics} as L{txscales.tap} reads
            its listening options: C{(option, value) -> endpoint string}.
        """
        usage.Options.__init__(self)
        self._localEndpoint = localEndpoint

    def checkLeast(self) -> None:
        """
        @raise usage.UsageError: when a number option is under its least
            value (in L{least}).
        """
        for name, least in self.least.items():
            if self[name] < least:
                raise usage.UsageError("--%s must be %s or more, not %s" % (name, least, self[name]))

    def readMetrics(self) -> None:
        """
        Read C{--metrics} and C{--admin}, when given (and when the command
        has them), into endpoint strings.
        """
        for name in ("metrics", "admin"):
            if self.get(name) is not None:
                self[name] = self._localEndpoint("--" + name, self[name])


def percentile(sortedValues: Sequence[float], fraction: float) -> float:
    """
    @return: the value at C{fraction} (0..1) of C{sortedValues}, or 0.0.
    """
    if not len(sortedValues):
        return 0.0
    return float(sortedValues[min(len(sortedValues) - 1, int(round(fraction * (len(sortedValues) - 1))))])


class LoadRun:
    """
    Start C{count} operations, at most C{outstanding} of them awaiting
    their outcome at once, and count the outcomes.

    A subclass starts operation I in L{_send}, which must end, once the
    operation settled, in L{_succeeded} or L{_failed}; it writes its
    progress lines in L{_progressLine}.

    @ivar succeeded: operations that succeeded.
    @ivar failures: operations failed, by error class name.
    @ivar latencies: seconds from start to success, per operation that
        succeeded.
    @ivar elapsed: seconds from the first start to the last outcome.
    @ivar interrupted: whether L{interrupt} ended the run early.
    """

    def __init__(self, count: int, outstanding: int, clock: Any, out: Optional[TextIO],
                 progressInterval: float = 1.0) -> None:
        """
        @param count: how many operations to start.
        @param outstanding: how many may await their outcome at once.
        @param clock: the C{IReactorTime} timing the run.
        @param out: where progress lines go (None: nowhere).
        @param progressInterval: seconds between progress lines.
        """
        self._count = count
        self._outstanding = outstanding
        self._clock = clock
        self._out = out
        self._interval = progressInterval
        self._next = 0
        self._pending = 0
        self._filling = False
        self._start = 0.0
        self._last: Tuple[float, Tuple[int, ...]] = (0.0, ())
        self._done: "Deferred[Any]" = Deferred()
        self._progress = LoopingCall(self._report)
        self._progress.clock = clock
        self.succeeded = 0
        self.failures: "Counter[str]" = Counter()
        self.latencies = array("d")
        self.elapsed = 0.0
        self.interrupted = False

    @property
    def failed(self) -> int:
        """
        Operations that failed.
        """
        return sum(self.failures.values())

    def run(self: _Run) -> "Deferred[_Run]":
        """
        @return: a Deferred firing with this run once every operation
            succeeded or failed.
        """
        self._start = self._clock.seconds()
        self._last = (self._start, self._progressCounts())
        if self._out is not None:
            self._progress.start(self._interval, now=False)
        self._fill()
        return self._done

    def _fill(self) -> None:
        # An operation may settle at once (refused): loop, not recurse.
        if self._filling:
            return
        self._filling = True
        try:
            while self._next < self._count and self._pending < self._outstanding:
                i = self._next
                self._next += 1
                self._pending += 1
                self._send(i)
        finally:
            self._filling = False
        if not self._pending and not self._done.called:
            self._finish()

    def _send(self, index: int) -> None:
        """
        Start operation C{index}; once it settled, call L{_succeeded} or
        L{_failed}.
        """
        raise NotImplementedError()

    def _succeeded(self, sentAt: float) -> None:
        """
        Count an operation that succeeded, started at C{sentAt}.
        """
        self.latencies.append(self._clock.seconds() - sentAt)
        self.succeeded += 1
        self._settled()

    def _failed(self, failure: Failure) -> None:
        """
        Count an operation that failed with C{failure}.
        """
        self._failedAs(type(failure.value).__name__)

    def _failedAs(self, name: str) -> None:
        """
        Count an operation that failed, under the error class name C{name}.
        """
        self.failures[name] += 1
        self._settled()

    def _settled(self) -> None:
        self._pending -= 1
        self._fill()

    def interrupt(self) -> None:
        """
        End the run now, with the operations settled so far: start no more.
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
        then, before = self._last
        self._last = (now, self._progressCounts())
        assert self._out is not None
        self._out.write(self._progressLine(now - then, before))
        self._out.flush()

    def _progressCounts(self) -> Tuple[int, ...]:
        """
        @return: the counters whose rates a progress line gives.
        """
        return (self.succeeded,)

    def _progressLine(self, seconds: float, before: Tuple[int, ...]) -> str:
        """
        @param seconds: seconds since the last progress line (or the start).
        @param before: L{_progressCounts} then.
        @return: a progress line, newline included.
        """
        raise NotImplementedError()

    def summary(self) -> str:
        """
        @return: a few lines describing the run, newline included.
        """
        raise NotImplementedError()

    def latenciesMs(self, fractions: Sequence[float]) -> List[float]:
        """
        @return: the latency percentiles at C{fractions} (0..1), in
            milliseconds.
        """
        latencies = sorted(self.latencies)
        return [percentile(latencies, fraction) * 1000.0 for fraction in fractions]

    def interruptedNote(self) -> str:
        """
        @return: C{" pending=N (interrupted)"} after L{interrupt}, else
            C{""}.
        """
        return " pending=%d (interrupted)" % (self._pending,) if self.interrupted else ""

    def errorsLine(self) -> str:
        """
        @return: the C{errors:} line of a summary: failures by type, or
            C{none}.
        """
        return "errors: %s\n" % (", ".join("%s=%d" % item for item in sorted(self.failures.items())) or "none",)


class LoadService(Service, Generic[_Run]):
    """
    Run a L{LoadRun} when started, print its summary and a C{RESULT:} line,
    close the client, then stop the reactor.  Stopped before the run ended
    (SIGINT, SIGTERM), it prints the summary of the operations settled so
    far and C{RESULT: INTERRUPTED}.

    A subclass says what to print first (L{_banner}), makes the client
    (L{_connect}) and runs on it (L{_measure}), keeping the run in
    C{_run} so that stopping interrupts it.

    @ivar status: the exit status once the run ended: 0 after
        C{RESULT: OK}, 1 after C{RESULT: FAILED} or C{INTERRUPTED}; None
        before.
    """

    status: Optional[int] = None
    _run: Optional[_Run] = None
    _stopping = False

    def __init__(self, options: usage.Options, reactor: Any, out: TextIO,
                 setExitStatus: Optional[Callable[[int], None]] = None, registry: Any = None) -> None:
        """
        @param options: the parsed options of the command.
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

    def _banner(self) -> str:
        """
        @return: the first line printed, newline included.
        """
        raise NotImplementedError()

    def _connect(self) -> Any:
        """
        @return: the client, with a C{close()} returning a Deferred.
        """
        raise NotImplementedError()

    def _measure(self, client: Any) -> "Deferred[_Run]":
        """
        @return: a Deferred firing with the run whose summary is printed.
        """
        raise NotImplementedError()

    @inlineCallbacks
    def _go(self) -> Any:
        self._out.write(self._banner())
        self._out.flush()
        client = None
        failed = True
        try:
            client = self._connect()
            run = yield self._measure(client)
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
