"""
Tests for L{txscales._listening.ListeningService}, the service every
txscales server listens with, and for twistd servers whose port is taken.
"""

import re
import shutil
import tempfile

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.defer import CancelledError, Deferred, fail, inlineCallbacks, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales._draining import DrainingFactory
from txscales._listening import ListeningService

from tests._twistd import runPeer, twistdCommand


class FakePort:
    """
    A listening port that records being stopped.
    """

    def __init__(self, log, address=None):
        self._log = log
        self._address = address if address is not None else IPv4Address("TCP", "127.0.0.1", 9999)

    def getHost(self):
        return self._address

    def stopListening(self):
        self._log.append("stopListening")
        return succeed(None)


class FakeEndpoint:
    """
    A server endpoint whose C{listen} answers with a given Deferred (by
    default, at once with a L{FakePort}).
    """

    def __init__(self, log, result=None):
        self._log = log
        self._result = result
        self.factories = []

    def listen(self, factory):
        self.factories.append(factory)
        if self._result is not None:
            return self._result
        return succeed(FakePort(self._log))


class FakeDrainingFactory(Factory):
    """
    A draining factory that records C{drainAll} and finishes draining when
    told.
    """

    def __init__(self, log):
        self._log = log
        self.protocols = {"one", "two"}
        self.drained = Deferred()

    def drainAll(self, timeout):
        self._log.append(("drainAll", timeout))
        return self.drained


class ListeningServiceTests(SynchronousTestCase):
    """
    L{ListeningService} listens, says where, and drains on stop.
    """

    def setUp(self):
        self.log = []
        self.messages = []

        def observe(event):
            if event.get("log_namespace") == "txscales._listening":
                self.messages.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def test_listens(self):
        """
        Starting listens with the factory, fires C{listening} with the port
        and logs the C{serving ... on HOST:PORT} line.
        """
        endpoint = FakeEndpoint(self.log)
        factory = Factory()
        service = ListeningService(factory, endpoint, description="the demo")
        service.startService()
        port = self.successResultOf(service.listening)
        self.assertIs(service.port, port)
        self.assertEqual(endpoint.factories, [factory])
        self.assertEqual(self.messages, ["txscales: serving the demo on 127.0.0.1:9999"])

    def test_listensOnUnixSocket(self):
        """
        A service listening on a UNIX socket, whose address has neither host
        nor port, fires C{listening} and logs the address.
        """
        port = FakePort(self.log, UNIXAddress("/run/demo.sock"))
        service = ListeningService(Factory(), FakeEndpoint(self.log, succeed(port)), description="the demo")
        service.startService()
        self.assertIs(self.successResultOf(service.listening), port)
        self.assertEqual(len(self.messages), 1)
        self.assertIn("/run/demo.sock", self.messages[0])

    def test_endpointString(self):
        """
        An endpoint string is parsed with the given reactor.
        """
        reactor = MemoryReactor()
        factory = Factory()
        service = ListeningService(factory, "tcp:9090:interface=127.0.0.1", reactor)
        service.startService()
        self.successResultOf(service.listening)
        self.assertEqual(reactor.tcpServers, [(9090, factory, 50, "127.0.0.1")])

    def test_listensOnce(self):
        """
        twistd calls C{privilegedStartService} then C{startService}: the
        service listens once.
        """
        endpoint = FakeEndpoint(self.log)
        service = ListeningService(Factory(), endpoint)
        service.privilegedStartService()
        service.startService()
        self.assertEqual(len(endpoint.factories), 1)

    def test_listenFailsAtStart(self):
        """
        When listening fails at once, starting raises the reason (twistd
        reports it and exits), C{listening} fails with it, one line says
        what cannot be served where and why, and the reactor keeps running.
        """
        reactor = MemoryReactor()
        reactor.running = True
        error = CannotListenError("127.0.0.1", 9999, OSError("Address already in use"))
        service = ListeningService(Factory(), FakeEndpoint(self.log, fail(error)), reactor, description="the demo")
        raised = self.assertRaises(CannotListenError, service.startService)
        self.assertIs(raised, error)
        self.assertIs(self.failureResultOf(service.listening, CannotListenError).value, error)
        self.assertIsNone(service.port)
        self.assertEqual(
            self.messages,
            ["txscales: cannot serve the demo on %r: %s" % (service.endpoint.endpoint, error)],
        )
        self.assertFalse(reactor.hasStopped)

    def test_listenFailsLater(self):
        """
        When listening fails after starting returned, C{listening} fails
        with the reason and one line says so.
        """
        pending = Deferred()
        service = ListeningService(Factory(), FakeEndpoint(self.log, pending), description="the demo")
        service.startService()
        error = CannotListenError("127.0.0.1", 9999, OSError("Address already in use"))
        pending.errback(error)
        self.assertIs(self.failureResultOf(service.listening, CannotListenError).value, error)
        self.assertEqual(len(self.messages), 1)
        self.assertTrue(self.messages[0].startswith("txscales: cannot serve the demo on "), self.messages)

    def test_stopDrains(self):
        """
        With a drain timeout, stopping stops listening, then drains the
        factory's connections, and fires once they are closed.
        """
        factory = FakeDrainingFactory(self.log)
        service = ListeningService(factory, FakeEndpoint(self.log), drainTimeout=3.0)
        service.startService()
        del self.messages[:]
        stopped = service.stopService()
        self.assertEqual(self.log, ["stopListening", ("drainAll", 3.0)])
        self.assertNoResult(stopped)
        factory.drained.callback(None)
        self.successResultOf(stopped)
        self.assertFalse(service.running)
        self.assertEqual(self.messages, ["txscales: draining 2 session(s)", "txscales: all sessions closed"])

    def test_stopWithoutDrain(self):
        """
        Without a drain timeout, stopping only stops listening.
        """
        factory = FakeDrainingFactory(self.log)
        service = ListeningService(factory, FakeEndpoint(self.log))
        service.startService()
        self.successResultOf(service.stopService())
        self.assertEqual(self.log, ["stopListening"])

    def test_stopUnstarted(self):
        """
        Stopping a service never started fires at once: nothing listens and
        no connection is open.
        """
        service = ListeningService(DrainingFactory(Clock()), FakeEndpoint(self.log), drainTimeout=3.0)
        self.successResultOf(service.stopService())
        self.assertEqual(self.log, [])

    def test_stopWhileListening(self):
        """
        Stopping before the endpoint listens cancels the attempt; C{listening}
        fails with L{CancelledError} and no error is logged.
        """
        pending = Deferred()
        service = ListeningService(Factory(), FakeEndpoint(self.log, pending))
        service.startService()
        self.successResultOf(service.stopService())
        self.failureResultOf(service.listening, CancelledError)
        self.assertEqual(self.messages, [])


class PortInUseTests(TestCase):
    """
    A twistd server whose port is taken says so in one line and exits with
    a non-zero status.
    """

    timeout = 90

    def holdPort(self):
        """
        Listen on a free port of 127.0.0.1 until the test ends.

        @return: its endpoint string.
        """
        from twisted.internet import reactor

        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return "tcp:%d:interface=127.0.0.1" % (port.getHost().port,)

    def runTwistd(self, *args):
        """
        Run C{twistd --pidfile= -n ARGS...} to its end (killed after 30 s).

        @return: a Deferred firing with its L{tests._twistd.ProcessResult}.
        """
        cwd = tempfile.mkdtemp(prefix="txscales-twistd-")
        self.addCleanup(shutil.rmtree, cwd, True)
        argv = twistdCommand() + ["--pidfile=", "-n"] + list(args)
        return runPeer(argv, addCleanup=self.addCleanup, cwd=cwd, timeout=30)

    def assertCannotServe(self, result, what, listen):
        """
        Assert that C{result} is a twistd that exited with status 1 after
        logging that it cannot serve C{what} on C{listen} because the
        address is in use, and that it served nothing.
        """
        self.assertEqual((result.exitCode, result.signal), (1, None), result.describe())
        port = listen.split(":")[1]
        line = re.compile(
            r"txscales: cannot serve %s on %s: Couldn't listen on 127\.0\.0\.1:%s: .*Address already in use"
            % (re.escape(what), re.escape(listen), port)
        )
        self.assertEqual(len(line.findall(result.output)), 1, result.describe())
        self.assertNotIn("txscales: serving", result.output)
        self.assertNotIn("Unhandled error", result.output)

    @inlineCallbacks
    def test_demoServer(self):
        """
        C{demo-server --listen} on a port in use exits with status 1 and
        one line saying which port is taken.
        """
        listen = self.holdPort()
        result = yield self.runTwistd("txscales", "demo-server", "--listen", listen)
        self.assertCannotServe(result, "txscales.demo.gen.TestService (thriftmux)", listen)

    @inlineCallbacks
    def test_metrics(self):
        """
        C{demo-server --metrics} on a port in use exits with status 1 and
        one line saying that the metrics cannot be served there.
        """
        listen = self.holdPort()
        result = yield self.runTwistd(
            "txscales", "demo-server", "--listen", "tcp:0:interface=127.0.0.1", "--metrics", listen
        )
        self.assertCannotServe(result, "metrics", listen)
