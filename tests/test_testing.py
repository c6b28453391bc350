"""
Tests for L{txscales.testing}, the helpers users test with.
"""

from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase

from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.demo.handler import TestServiceHandler
from txscales.errors import ConnectError, RequestTimeoutError
from txscales.testing import MemoryNetwork


class MemoryNetworkTests(SynchronousTestCase):
    """
    Clients and servers connected in memory behave as over TCP, with time
    under the test's control.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.handler = TestServiceHandler(self.network.clock)
        self.server = self.network.serveThriftMux(TestService.Iface, self.handler, port=9090)
        self.client = self.network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9090", timeout=1.0)

    def tearDown(self):
        self.successResultOf(self.client.close())
        self.assertEqual(self.network.clock.getDelayedCalls(), [])

    def test_synchronousAnswers(self):
        """
        Answers arrive before the call returns; declared exceptions too.
        """
        self.assertEqual(self.successResultOf(self.client.query("x")), "xx")
        self.assertEqual(self.failureResultOf(self.client.raiseError(3), InvalidQueryException).value.errorCode, 3)
        self.assertEqual(self.network.connections, 1)

    def test_fakeTime(self):
        """
        A delayed answer arrives when the clock reaches it; a call past its
        timeout fails and is discarded on the server.
        """
        d = self.client.delayedQuery("a", 500)
        self.assertNoResult(d)
        self.network.clock.advance(0.5)
        self.assertEqual(self.successResultOf(d), "aa")
        slow = self.client.delayedQuery("b", 5000)
        self.network.clock.advance(1.0)
        self.assertTrue(self.failureResultOf(slow, RequestTimeoutError).value.written)
        self.assertEqual(self.successResultOf(self.client.query("c")), "cc")

    def test_drainAndRestart(self):
        """
        Draining the server closes the session; calls fail as not sent while
        nothing listens (fast, once the endpoint is marked down), and go
        through again once a server is back and the reconnection backoff
        has passed.
        """
        self.successResultOf(self.client.query("x"))
        self.network.stopListening(9090)
        self.successResultOf(self.server.drainAll())
        self.assertFalse(self.failureResultOf(self.client.query("y"), ConnectError).value.mayHaveReachedServer)
        self.network.serveThriftMux(TestService.Iface, self.handler, port=9090)
        self.failureResultOf(self.client.query("z"), ConnectError)
        self.network.clock.advance(1.0)
        self.assertEqual(self.successResultOf(self.client.query("z")), "zz")
        self.assertEqual(self.network.connections, 2)

    def test_refused(self):
        """
        A destination nobody listens on fails with ConnectError.
        """
        other = self.network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:1")
        self.failureResultOf(other.query("x"), ConnectError)
        self.successResultOf(other.close())

    def test_factoryRefuses(self):
        """
        A connection whose server factory builds no protocol is refused.
        """

        class Refusing(Factory):
            def buildProtocol(self, addr):
                return None

        self.network.listen(Refusing(), 9091)
        endpoint = self.network.endpoint(None, "127.0.0.1", 9091)
        self.failureResultOf(endpoint.connect(Factory.forProtocol(Protocol)), ConnectionRefusedError)


class PlainThriftMemoryNetworkTests(SynchronousTestCase):
    """
    Plain Thrift clients and servers connect in memory too.
    """

    def test_buffered(self):
        """
        A buffered plain Thrift client gets answers, declared exceptions and
        timeouts from a server on the network.
        """
        network = MemoryNetwork()
        network.serveThrift(TestService.Iface, TestServiceHandler(network.clock), port=9090, transport="buffered")
        client = network.thriftClient(
            TestService.Iface, "tcp://127.0.0.1:9090", transport="buffered", protocol="compact", timeout=1.0
        )
        self.assertEqual(self.successResultOf(client.query("x")), "xx")
        self.assertEqual(self.failureResultOf(client.raiseError(3), InvalidQueryException).value.errorCode, 3)
        d = client.delayedQuery("y", 2000)
        network.clock.advance(1.0)
        self.failureResultOf(d, RequestTimeoutError)
        self.successResultOf(client.close())
        self.assertEqual(network.clock.getDelayedCalls(), [])
