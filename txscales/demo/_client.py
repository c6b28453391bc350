"""
The demo client behind C{twistd txscales demo-client}.
"""

import time
from collections import Counter
from typing import List

from twisted.application.service import Service
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.logger import Logger

from txscales._loadrun import percentile
from txscales._tls import clientTlsKeywords
from txscales.demo.gen import TestService

_log = Logger()


class DemoRun:
    """
    Call C{TestService.query} C{count} times, C{concurrency} at a time, and
    count the outcomes.

    @ivar latencies: seconds per successful call.
    @ivar wrong: answers that were not C{x + x}.
    @ivar failures: failures by error class name.
    """

    def __init__(self, client, count, concurrency, clock=time.perf_counter, out=None) -> None:
        self._client = client
        self._count = count
        self._concurrency = max(1, concurrency)
        self._clock = clock
        self._out = out
        self._next = 0
        self.latencies: List[float] = []
        self.wrong = 0
        self.failures: Counter[str] = Counter()
        self.elapsed = 0.0

    def run(self):
        """
        @return: a Deferred firing with this run when every call finished.
        """
        start = self._clock()
        workers = [self._worker() for _ in range(min(self._concurrency, self._count))]
        d = DeferredList(workers, consumeErrors=True)

        def done(_):
            self.elapsed = self._clock() - start
            return self

        return d.addCallback(done)

    @inlineCallbacks
    def _worker(self):
        step = max(1, self._count // 10)
        while self._next < self._count:
            i = self._next
            self._next += 1
            x = "demo-%d" % (i,)
            t0 = self._clock()
            try:
                answer = yield self._client.query(x)
            except Exception as e:
                self.failures[type(e).__name__] += 1
            else:
                self.latencies.append(self._clock() - t0)
                if answer != x + x:
                    self.wrong += 1
            done = len(self.latencies) + self.wrong + sum(self.failures.values())
            if self._out is not None and done % step == 0:
                self._out.write("progress: %d/%d calls\n" % (done, self._count))

    def summary(self) -> str:
        """
        @return: a few lines describing the run.
        """
        lat = sorted(self.latencies)
        ms = lambda f: percentile(lat, f) * 1000.0
        calls = len(lat) + sum(self.failures.values())
        return (
            "calls=%d ok=%d wrong=%d failed=%d elapsed=%.3fs rate=%.0f calls/s\n"
            "latency ms: p50=%.2f p90=%.2f p99=%.2f max=%.2f\n"
            "failures: %s\n"
            % (
                calls,
                len(lat) - self.wrong,
                self.wrong,
                sum(self.failures.values()),
                self.elapsed,
                calls / self.elapsed if self.elapsed else 0.0,
                ms(0.5),
                ms(0.9),
                ms(0.99),
                ms(1.0),
                dict(self.failures) or "none",
            )
        )


class DemoClientService(Service):
    """
    Run a L{DemoRun} when started, print its summary and a C{RESULT:} line,
    then stop the reactor.

    @ivar status: the run's exit status once it ended: 0 after
        C{RESULT: OK}, 1 after C{RESULT: FAILED}; None before.
    """

    status = None

    def __init__(self, options, reactor, out, setExitStatus=None) -> None:
        """
        @param options: C{dest}, C{count}, C{concurrency} and C{timeout}.
        @param out: where to print (a text file).
        @param setExitStatus: called with L{status} before the reactor is
            stopped, or None.
        """
        self._options = options
        self._reactor = reactor
        self._out = out
        self._setExitStatus = setExitStatus

    def startService(self) -> None:
        Service.startService(self)
        self._reactor.callWhenRunning(self._go)

    @inlineCallbacks
    def _go(self):
        from txscales.thriftmux import ThriftMux

        options = self._options
        self._out.write(
            "txscales demo-client: %d calls to %s, %d outstanding, timeout %gs\n"
            % (options["count"], options["dest"], options["concurrency"], options["timeout"])
        )
        client = None
        failed = True
        try:
            client = ThriftMux.newClient(
                TestService.Iface,
                options["dest"],
                timeout=options["timeout"],
                clientId="txscales-demo-client",
                reactor=self._reactor,
                **clientTlsKeywords(options)
            )
            first = yield client.query("x")
            self._out.write('query("x") = %r\n' % (first,))
            run = yield DemoRun(client, options["count"], options["concurrency"], out=self._out).run()
            self._out.write(run.summary())
            failed = run.wrong or run.failures
            self._out.write("RESULT: %s\n" % ("FAILED" if failed else "OK",))
        except Exception as e:
            self._out.write("RESULT: FAILED (%s: %s)\n" % (type(e).__name__, e))
        self._out.flush()
        try:
            if client is not None:
                yield client.close()
        finally:
            self.status = 1 if failed else 0
            if self._setExitStatus is not None:
                self._setExitStatus(self.status)
            self._reactor.stop()
