"""
What the benchmark's client processes share: the closed-loop and open-loop
load generators, the memory probe, and the one JSON line each process
prints for the harness.

Everything here runs on the Twisted reactor of a client process; the call
under test is any C{call() -> Deferred}.
"""

import gc
import json
import math
import os
import sys
import time
from array import array

from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

KIB = 1024


def payload(size, text=True):
    """
    @return: the argument of a call with a C{size}-byte payload: a str of
        ASCII letters for Thrift's C{string}, bytes for the raw echo.
    """
    value = ("abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]
    return value if text else value.encode("ascii")


def emit(obj):
    """
    Print the result line the harness reads (the last line of stdout).
    """
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def freezeHeap():
    """
    Collect, then move every object the process holds after its start-up
    into the collector's permanent generation (C{gc.freeze()}): the
    collections of the measurement then only scan the objects made since,
    instead of a full collection of the imported modules' objects pausing
    the process for tens of milliseconds now and then.
    """
    gc.collect()
    gc.freeze()


def histogram(latencies, perDecade=10):
    """
    @param latencies: seconds.
    @return: C{[[upper bound in us, count], ...]}: the latencies in buckets
        whose bounds grow by a factor 10 every C{perDecade} buckets, from
        10 us up; empty buckets left out.
    """
    counts = {}
    for v in latencies:
        us = max(v * 1e6, 10.0)
        i = int(math.ceil(math.log10(us) * perDecade - 1e-9))
        counts[i] = counts.get(i, 0) + 1
    return [[round(10 ** (i / perDecade), 1), counts[i]] for i in sorted(counts)]


def rssBytes():
    """
    @return: this process's resident set size, in bytes (Linux).
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def percentile(sortedValues, fraction):
    """
    @return: the value below which C{fraction} of C{sortedValues} lie
        (nearest rank), or None for no values.
    """
    if not sortedValues:
        return None
    index = min(len(sortedValues) - 1, max(0, int(fraction * len(sortedValues) + 0.5) - 1))
    return sortedValues[index]


class Outcome:
    """
    Counts of answers that were right, wrong, or failures (by type).
    """

    def __init__(self):
        self.wrong = 0
        self.failures = {}
        self.samples = []

    def check(self, result, expected):
        if isinstance(result, Failure):
            name = result.type.__name__
            self.failures[name] = self.failures.get(name, 0) + 1
            if len(self.samples) < 3:
                self.samples.append(result.getErrorMessage()[:200])
            return False
        if result != expected:
            self.wrong += 1
            return False
        return True

    def asDict(self):
        return {"wrong": self.wrong, "failures": self.failures, "failureSamples": self.samples}


class ClosedLoop:
    """
    Keep C{concurrency} calls outstanding: each answer starts the next call.
    After C{warmup} seconds, count answers in C{windows} consecutive windows
    of C{window} seconds each; then stop calling and wait for the calls in
    flight.

    @ivar rates: calls per second in each window.
    @ivar cpuPerCall: this process's CPU seconds per answer in each window.
    """

    def __init__(self, reactor, call, expected, concurrency, warmup=1.0, window=1.0, windows=3):
        self._reactor = reactor
        self._call = call
        self._expected = expected
        self._concurrency = concurrency
        self._warmup = warmup
        self._window = window
        self._windows = windows
        self._stopping = False
        self._outstanding = 0
        self._answered = 0
        self._mark = None
        self._done = None
        self.outcome = Outcome()
        self.rates = []
        self.cpuPerCall = []

    def run(self):
        """
        @return: a Deferred firing with this object once every call ended.
        """
        from twisted.internet.defer import Deferred

        self._done = Deferred()
        for _ in range(self._concurrency):
            self._issue()
        self._reactor.callLater(self._warmup, self._startWindow)
        return self._done

    def _issue(self):
        self._outstanding += 1
        try:
            d = self._call()
        except Exception:
            d = None
            self._finished(Failure())
            return
        d.addBoth(self._finished)

    def _finished(self, result):
        self._outstanding -= 1
        if self.outcome.check(result, self._expected):
            self._answered += 1
        if not self._stopping:
            self._issue()
        elif self._outstanding == 0 and self._done is not None:
            done, self._done = self._done, None
            self._reactor.callLater(0, done.callback, self)

    def _startWindow(self):
        self._mark = (time.perf_counter(), time.process_time(), self._answered)
        self._reactor.callLater(self._window, self._endWindow)

    def _endWindow(self):
        now, cpu, answered = time.perf_counter(), time.process_time(), self._answered
        start, cpuStart, before = self._mark
        self.rates.append((answered - before) / (now - start))
        if answered > before:
            self.cpuPerCall.append((cpu - cpuStart) / (answered - before))
        if len(self.rates) < self._windows:
            self._mark = (now, cpu, answered)
            self._reactor.callLater(self._window, self._endWindow)
            return
        self._stopping = True
        if self._outstanding == 0 and self._done is not None:
            done, self._done = self._done, None
            done.callback(self)

    def asDict(self):
        rates = sorted(self.rates)
        return dict(
            self.outcome.asDict(),
            rates=[round(r, 1) for r in self.rates],
            best=round(rates[-1], 1) if rates else None,
            median=round(rates[len(rates) // 2], 1) if rates else None,
            concurrency=self._concurrency,
            answered=self._answered,
            clientCpuUs=round(min(self.cpuPerCall) * 1e6, 2) if self.cpuPerCall else None,
        )


class OpenLoop:
    """
    Offer calls at a fixed C{rate} per second whatever the answers do (an
    open-loop schedule, paced by a 1 ms tick that sends every call due by
    then), and record each call's latency from when it was made to when its
    answer arrived.  Latencies of the C{warmup} seconds are dropped.

    @ivar latencies: seconds, of the measured calls.
    """

    TICK = 0.001

    def __init__(self, reactor, call, expected, rate, warmup=1.0, duration=3.0, maxOutstanding=20000):
        self._reactor = reactor
        self._call = call
        self._expected = expected
        self._rate = rate
        self._warmup = warmup
        self._duration = duration
        self._maxOutstanding = maxOutstanding
        self._sent = 0
        self._skipped = 0
        self._outstanding = 0
        self._maxSeen = 0
        self._measuring = False
        self._stopping = False
        self._measured = 0
        self._done = None
        self._loop = LoopingCall(self._tick)
        self.latencies = array("d")
        self.outcome = Outcome()

    def run(self):
        from twisted.internet.defer import Deferred

        self._done = Deferred()
        self._t0 = time.perf_counter()
        self._loop.clock = self._reactor
        self._loop.start(self.TICK, now=True)
        self._reactor.callLater(self._warmup, self._startMeasuring)
        return self._done

    def _startMeasuring(self):
        self._maxSeen = self._outstanding
        self._measuring = True
        self._measureStart = time.perf_counter()
        self._measureSent = self._sent
        self._reactor.callLater(self._duration, self._stop)

    def _stop(self):
        self._measuring = False
        self._measureEnd = time.perf_counter()
        self._measuredSent = self._sent - self._measureSent
        self._outstandingAtEnd = self._outstanding
        self._stopping = True
        self._loop.stop()
        self._maybeDone()

    def _maybeDone(self):
        if self._stopping and self._outstanding == 0 and self._done is not None:
            done, self._done = self._done, None
            self._reactor.callLater(0, done.callback, self)

    def _tick(self):
        due = int((time.perf_counter() - self._t0) * self._rate) - self._sent - self._skipped
        perf = time.perf_counter
        for _ in range(due):
            if self._outstanding >= self._maxOutstanding:
                self._skipped += 1
                continue
            self._sent += 1
            self._outstanding += 1
            if self._outstanding > self._maxSeen:
                self._maxSeen = self._outstanding
            start = perf()
            d = self._call()
            d.addBoth(self._finished, start, self._measuring)

    def _finished(self, result, start, measured):
        elapsed = time.perf_counter() - start
        self._outstanding -= 1
        if self.outcome.check(result, self._expected) and measured:
            self.latencies.append(elapsed)
        self._maybeDone()

    def asDict(self):
        lat = sorted(self.latencies)
        us = lambda v: None if v is None else round(v * 1e6, 1)
        return dict(
            self.outcome.asDict(),
            offered=self._rate,
            achieved=round(self._measuredSent / (self._measureEnd - self._measureStart), 1),
            samples=len(lat),
            skipped=self._skipped,
            maxOutstanding=self._maxSeen,
            outstandingAtEnd=self._outstandingAtEnd,
            p50=us(percentile(lat, 0.50)),
            p99=us(percentile(lat, 0.99)),
            p999=us(percentile(lat, 0.999)),
            max=us(lat[-1] if lat else None),
            histogram=histogram(lat),
            gcFrozen=gc.get_freeze_count(),
        )


class HeldCalls:
    """
    Measure the memory of C{count} outstanding calls: the RSS after a
    warm-up (idle), then C{count} calls the server holds, then a sentinel
    call on the same connection whose answer proves that every held call has
    left the client's buffers; the RSS then, less the idle RSS, is what the
    outstanding calls cost.
    """

    def __init__(self, reactor, warmupCall, holdCall, sentinelCall, count):
        self._reactor = reactor
        self._warmupCall = warmupCall
        self._holdCall = holdCall
        self._sentinelCall = sentinelCall
        self._count = count
        self.outcome = Outcome()
        self.result = {}
        self._held = []

    def run(self):
        from twisted.internet.defer import inlineCallbacks

        @inlineCallbacks
        def go():
            for _ in range(200):
                yield self._warmupCall()
            gc.collect()
            idle = rssBytes()
            t0 = time.perf_counter()
            for _ in range(self._count):
                d = self._holdCall()
                d.addErrback(lambda f: None)
                self._held.append(d)
            sentinel = yield self._sentinelCall()
            elapsed = time.perf_counter() - t0
            held = rssBytes()
            gc.collect()
            heldAfterGc = rssBytes()
            stillHeld = sum(1 for d in self._held if not d.called)
            self.result = {
                "idleRss": idle,
                "heldRss": held,
                "heldRssAfterGc": heldAfterGc,
                "aboveIdle": held - idle,
                "perCall": (held - idle) / float(self._count),
                "count": self._count,
                "stillHeld": stillHeld,
                "sentinelOk": sentinel is not None,
                "issueSeconds": round(elapsed, 3),
            }
            return self

        return go()

    def asDict(self):
        return dict(self.outcome.asDict(), **self.result)


def describeRuntime():
    """
    @return: versions worth recording with a result.
    """
    import twisted

    out = {"python": sys.version.split()[0], "twisted": twisted.__version__, "pid": os.getpid()}
    try:
        import txscales

        out["txscales"] = txscales.__version__
        out["txscalesPath"] = os.path.dirname(os.path.abspath(txscales.__file__))
    except Exception:
        pass
    return out
