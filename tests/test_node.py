"""
Tests for an endpoint's node in the client stack: why a request to an
endpoint that cannot be connected to fails.
"""

import random
import socket

from twisted.internet.defer import fail, inlineCallbacks, succeed
from twisted.internet.error import ConnectionRefusedError, TimeoutError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales.demo.gen import TestService
from txscales.errors import ConnectError, HandshakeTimeoutError
from txscales.http import Http
from txscales.interfaces import OPEN
from txscales.stack._accrual import FailFast
from txscales.stack._node import EndpointNode
from txscales.testing import MemoryNetwork
from txscales.thriftmux import ThriftMux


class FakeEndpoint:
    """
    An endpoint at C{10.0.0.9:9090} whose connection attempts fail or
    succeed as the test says, and whose requests are answered C{"ok"}.

    @ivar attempts: what the next connection attempts give, in order.
    """

    status = OPEN

    def __init__(self):
        self.attempts = []

    def __repr__(self):
        return "10.0.0.9:9090"

    def getProtocol(self):
        return self.attempts.pop(0)

    def __call__(self, request):
        return succeed("ok")

    def close(self):
        return succeed(None)


def connectError(cause):
    """
    @return: a L{ConnectError} worded as the endpoints word theirs.
    """
    return ConnectError("cannot connect to 10.0.0.9:9090: %s" % (cause,))


class DownNodeTests(SynchronousTestCase):
    """
    A request sent to a node marked down fails at once with a
    L{ConnectError} that says why its last connection attempt failed.
    """

    def setUp(self):
        self.clock = Clock()
        self.endpoint = FakeEndpoint()
        failFast = FailFast(self.clock, random.Random(0), self.endpoint.getProtocol)
        self.node = EndpointNode(self.endpoint, None, failFast, 0.5)

    def tearDown(self):
        self.successResultOf(self.node.close())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def sendError(self):
        """
        @return: the message of the L{ConnectError} a request fails with.
        """
        return str(self.failureResultOf(self.node.send(object()), ConnectError).value)

    def test_refused(self):
        """
        After a refused connection the error says it was refused, and that
        the node reconnects in the background.
        """
        self.node.failed(Failure(connectError(ConnectionRefusedError("111: Connection refused"))))
        self.assertEqual(
            self.sendError(),
            "cannot connect to 10.0.0.9:9090: Connection was refused by other side: 111: Connection refused"
            " (reconnecting in the background)",
        )

    def test_lastAttemptWins(self):
        """
        A background attempt that fails for another reason replaces the
        reason; once an attempt succeeds requests reach the endpoint again.
        """
        self.endpoint.attempts = [fail(connectError(TimeoutError())), succeed(None)]
        self.node.failed(Failure(connectError(ConnectionRefusedError())))
        self.clock.advance(1.0)
        self.assertEqual(self.node.failFast.attempts, 1)
        self.assertIn("User timeout caused connection failure", self.sendError())
        self.assertNotIn("refused", self.sendError())
        self.clock.advance(2.0)
        self.assertFalse(self.node.failFast.down)
        self.assertEqual(self.successResultOf(self.node.send(object())), "ok")

    def test_reasonWithoutEndpoint(self):
        """
        A reason that does not name the endpoint is prefixed with it.
        """
        self.node.failed(Failure(ConnectError("connection closed before the Mux session was ready")))
        self.assertEqual(
            self.sendError(),
            "10.0.0.9:9090: connection closed before the Mux session was ready (reconnecting in the background)",
        )

    def test_keepsErrorClass(self):
        """
        Marked down by a subclass of L{ConnectError}, the node fails requests with that class.
        """
        self.node.failed(Failure(HandshakeTimeoutError(0.2)))
        error = self.failureResultOf(self.node.send(object()), HandshakeTimeoutError).value
        self.assertFalse(error.mayHaveReachedServer)
        self.assertIn("0.2", str(error))
        self.assertIn("(reconnecting in the background)", str(error))

    def test_ownErrorKeepsReason(self):
        """
        The node's own fail-fast error, reported back to it as a request's
        failure, does not replace the reason.
        """
        self.node.failed(Failure(connectError(ConnectionRefusedError())))
        first = self.failureResultOf(self.node.send(object()), ConnectError)
        self.node.failed(first)
        self.assertEqual(self.sendError(), str(first.value))

    def test_noReason(self):
        """
        Marked down with no reason, the error says the node is down.
        """
        self.node.failFast.markDown()
        self.assertEqual(self.sendError(), "10.0.0.9:9090 is down (reconnecting in the background)")


class StackRefusedTests(SynchronousTestCase):
    """
    A call whose only server refuses connections fails saying so, however
    many times it was requeued.
    """

    def test_refusedThroughTheStack(self):
        """
        On an in-memory network where nothing listens, the call's
        L{ConnectError} says the connection was refused.
        """
        network = MemoryNetwork()
        client = network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9999", stats=False)
        error = self.failureResultOf(client.query("x"), ConnectError).value
        self.assertGreater(client.stack.dispatcher.requeues, 0)
        self.assertEqual(
            str(error), "cannot connect to 127.0.0.1:9999: Connection was refused by other side: nothing listens on"
            " 127.0.0.1:9999 (reconnecting in the background)"
        )
        self.successResultOf(client.close())
        self.assertEqual(network.clock.getDelayedCalls(), [])


class ClosedPortTests(TestCase):
    """
    Clients calling a real closed port on 127.0.0.1 are told the connection
    was refused.
    """

    def setUp(self):
        # A bound socket that does not listen: connections to its port are
        # refused, and no other process can take the port meanwhile.
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(self.socket.close)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]

    @inlineCallbacks
    def assertRefused(self, client, call):
        """
        C{call()} fails with a L{ConnectError} saying the connection to the
        closed port was refused; C{client} is closed afterwards.
        """
        try:
            error = yield self.assertFailure(call(), ConnectError)
        finally:
            yield client.close()
        message = str(error)
        self.assertIn("127.0.0.1:%d" % (self.port,), message)
        self.assertIn("Connection refused", message)
        self.assertIn("(reconnecting in the background)", message)

    def test_thriftMux(self):
        """
        A ThriftMux call to a closed port says the connection was refused.
        """
        client = ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (self.port,), timeout=5.0, stats=False)
        return self.assertRefused(client, lambda: client.query("x"))

    def test_http(self):
        """
        An HTTP request to a closed port says the connection was refused.
        """
        client = Http.newClient("tcp://127.0.0.1:%d" % (self.port,), timeout=5.0, stats=False)
        return self.assertRefused(client, lambda: client.get("/"))
