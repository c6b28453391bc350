"""
Tests for L{txscales._loadrun}: the run and the service the load commands
share, on a L{task.Clock} with fake operations and a fake client.
"""

import io

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txscales._loadrun import METRICS_PARAMETER, LoadOptions, LoadRun, LoadService, percentile


class OperationsRun(LoadRun):
    """
    A run whose operations are Deferreds the test settles.

    @ivar sent: the Deferred of each operation started.
    """

    def __init__(self, count, outstanding, clock, out, refuse=None):
        LoadRun.__init__(self, count, outstanding, clock, out)
        self.sent = []
        self._refuse = refuse

    def _send(self, index):
        d = fail(self._refuse) if self._refuse is not None else Deferred()
        self.sent.append(d)
        d.addCallbacks(lambda _, sentAt: self._succeeded(sentAt), self._failed, (self._clock.seconds(),))

    def _progressLine(self, seconds, before):
        return "%d in %gs\n" % (self.succeeded - before[0], seconds)

    def summary(self):
        return "ms=%s%s\n" % (self.latenciesMs((0.5, 1.0)), self.interruptedNote()) + self.errorsLine()


class PercentileTests(SynchronousTestCase):
    """
    L{percentile} picks from sorted values.
    """

    def test_percentile(self):
        """
        Percentiles pick from sorted values, rounding to the nearest; empty
        gives 0.
        """
        self.assertEqual(percentile([], 0.5), 0.0)
        self.assertEqual(percentile([1, 2, 3, 4, 5], 0.5), 3)
        self.assertEqual(percentile([1, 2, 3, 4, 5], 0.99), 5)
        self.assertEqual(percentile([1, 2, 3, 4, 5], 1.0), 5)
        self.assertIsInstance(percentile([1, 2], 0.0), float)


class CountOptions(LoadOptions):
    optParameters = [["count", "n", 1, "Operations.", int], METRICS_PARAMETER]
    least = {"count": 1}

    def postOptions(self):
        self.checkLeast()
        self.readMetrics()


class LoadOptionsTests(SynchronousTestCase):
    """
    L{LoadOptions} checks the least values of numbers and reads
    C{--metrics}.
    """

    def test_least(self):
        """
        A number under its least value is a usage error naming it.
        """
        options = CountOptions()
        options.parseOptions(["--count", "1"])
        self.assertEqual(options["count"], 1)
        e = self.assertRaises(usage.UsageError, CountOptions().parseOptions, ["--count", "0"])
        self.assertEqual(str(e), "--count must be 1 or more, not 0")

    def test_metrics(self):
        """
        C{--metrics} goes through the C{localEndpoint} given, when given.
        """
        options = CountOptions(lambda option, value: "%s=%s" % (option, value))
        options.parseOptions(["--metrics", "9990"])
        self.assertEqual(options["metrics"], "--metrics=9990")
        options = CountOptions(lambda option, value: "%s=%s" % (option, value))
        options.parseOptions([])
        self.assertIsNone(options["metrics"])


class LoadRunTests(SynchronousTestCase):
    """
    L{LoadRun} keeps a bounded window of operations, reports progress once
    an interval and gives the pieces of a summary.
    """

    def setUp(self):
        self.clock = Clock()
        self.out = io.StringIO()

    def test_window(self):
        """
        At most C{outstanding} operations await their outcome at once; each
        outcome starts the next; the run fires with itself once all settled,
        with the latencies of the successes and the failures by type.
        """
        run = OperationsRun(5, 2, self.clock, self.out)
        d = run.run()
        self.assertEqual(len(run.sent), 2)
        self.clock.advance(0.25)
        run.sent[0].callback(None)
        self.assertEqual(len(run.sent), 3)
        run.sent[1].errback(ValueError())
        run.sent[2].errback(KeyError())
        self.assertEqual(len(run.sent), 5)
        self.clock.advance(0.5)
        run.sent[3].callback(None)
        self.assertNoResult(d)
        run.sent[4].errback(ValueError())
        self.assertIs(self.successResultOf(d), run)
        self.assertEqual((run.succeeded, run.failed, run.elapsed), (2, 3, 0.75))
        self.assertEqual(list(run.latencies), [0.25, 0.5])
        self.assertEqual(run.summary(), "ms=[250.0, 500.0]\nerrors: KeyError=1, ValueError=2\n")
        self.assertEqual(self.out.getvalue(), "")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_progress(self):
        """
        A progress line comes once an interval, given the seconds and the
        counts since the last one; none comes without C{out}.
        """
        run = OperationsRun(4, 4, self.clock, self.out)
        quiet = OperationsRun(4, 4, self.clock, None)
        d, q = run.run(), quiet.run()
        run.sent[0].callback(None)
        self.clock.advance(1.0)
        run.sent[1].callback(None)
        run.sent[2].callback(None)
        self.clock.advance(1.0)
        self.assertEqual(self.out.getvalue(), "1 in 1s\n2 in 1s\n")
        run.sent[3].callback(None)
        for s in quiet.sent:
            s.callback(None)
        self.successResultOf(d)
        self.successResultOf(q)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refusedAtOnce(self):
        """
        Operations that fail as they start all fail, without recursion
        however many they are, and the run ends.
        """
        run = self.successResultOf(OperationsRun(5000, 1, self.clock, self.out, refuse=ValueError()).run())
        self.assertEqual((run.succeeded, dict(run.failures)), (0, {"ValueError": 5000}))
        self.assertEqual(run.summary(), "ms=[0.0, 0.0]\nerrors: ValueError=5000\n")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_interrupt(self):
        """
        An interrupted run ends at once with what was settled, starts no
        more, and its summary says how many were pending; a second
        interrupt does nothing.
        """
        run = OperationsRun(100, 3, self.clock, self.out)
        d = run.run()
        self.clock.advance(0.5)
        run.sent[0].callback(None)
        run.interrupt()
        self.assertIs(self.successResultOf(d), run)
        self.assertEqual((run.interrupted, run.elapsed), (True, 0.5))
        self.assertEqual(run.summary(), "ms=[500.0, 500.0] pending=3 (interrupted)\nerrors: none\n")
        for s in run.sent[1:]:
            s.callback(None)
        self.assertEqual((len(run.sent), run.succeeded), (4, 4))
        run.interrupt()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class FakeReactor(Clock):
    """
    A clock that runs what is given to C{callWhenRunning} at once and
    counts C{stop} calls.
    """

    stops = 0

    def callWhenRunning(self, f, *args):
        f(*args)

    def stop(self):
        self.stops += 1


class FakeClient:
    closed = 0

    def close(self):
        self.closed += 1
        return succeed(None)


class OperationsService(LoadService):
    """
    A service running an L{OperationsRun} on a L{FakeClient}.
    """

    connectError = None

    def _banner(self):
        return "banner %d\n" % (self._options["count"],)

    def _connect(self):
        if self.connectError is not None:
            raise self.connectError
        self.client = FakeClient()
        return self.client

    def _measure(self, client):
        self._run = OperationsRun(self._options["count"], 2, self._reactor, None)
        return self._run.run()


class LoadServiceTests(SynchronousTestCase):
    """
    L{LoadService} runs when started, prints the summary and a C{RESULT:}
    line, closes the client and stops the reactor with an exit status.
    """

    def setUp(self):
        self.reactor = FakeReactor()
        self.out = io.StringIO()
        self.statuses = []
        self.service = OperationsService({"count": 3}, self.reactor, self.out, self.statuses.append)

    def test_ok(self):
        """
        A run whose operations all succeed prints C{RESULT: OK}, closes the
        client and stops the reactor with status 0.
        """
        self.service.startService()
        for d in self.service._run.sent[:2]:
            d.callback(None)
        self.assertEqual((self.service.status, self.reactor.stops), (None, 0))
        self.service._run.sent[2].callback(None)
        self.assertEqual(self.out.getvalue(), "banner 3\nms=[0.0, 0.0]\nerrors: none\nRESULT: OK\n")
        self.assertEqual((self.statuses, self.service.status), ([0], 0))
        self.assertEqual((self.service.client.closed, self.reactor.stops), (1, 1))

    def test_failed(self):
        """
        A run with a failed operation prints C{RESULT: FAILED} and exits 1.
        """
        self.service.startService()
        self.service._run.sent[0].errback(ValueError())
        for d in self.service._run.sent[1:]:
            d.callback(None)
        self.assertTrue(self.out.getvalue().endswith("errors: ValueError=1\nRESULT: FAILED\n"))
        self.assertEqual((self.statuses, self.service.client.closed, self.reactor.stops), ([1], 1, 1))

    def test_error(self):
        """
        An exception before the run prints C{RESULT: FAILED} with its class
        and message, and exits 1 without a client to close.
        """
        self.service.connectError = ValueError("no such thing")
        self.service.startService()
        self.assertEqual(self.out.getvalue(), "banner 3\nRESULT: FAILED (ValueError: no such thing)\n")
        self.assertEqual((self.statuses, self.reactor.stops), ([1], 1))

    def test_interrupted(self):
        """
        Stopped in the middle of a run, it prints the summary so far and
        C{RESULT: INTERRUPTED}, exits 1, and leaves the client and the
        reactor to the shutdown under way.
        """
        self.service.startService()
        self.service._run.sent[0].callback(None)
        self.service.stopService()
        self.assertEqual(
            self.out.getvalue(),
            "banner 3\nms=[0.0, 0.0] pending=2 (interrupted)\nerrors: none\nRESULT: INTERRUPTED\n")
        self.assertEqual((self.statuses, self.service.client.closed, self.reactor.stops), ([1], 0, 0))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
