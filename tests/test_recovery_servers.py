"""
Recovery against real C{twistd txscales demo-server} processes: a server
killed with SIGKILL and restarted on its port gets requests again soon, and
a frozen one (SIGSTOP) gets few calls that time out.
"""

import random
import signal

from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txscales.errors import RequestTimeoutError
from txscales.demo.gen import TestService
from txscales.stack._accrual import ALIVE, DEAD
from txscales.thriftmux import ThriftMux

from tests._twistd import startDemoServer, startTwistd
from tests.test_stack_servers import Load


def within(d, seconds, what):
    """
    @return: C{d}, failing with an C{AssertionError} naming C{what} unless
        it fires within C{seconds}.
    """

    def late(failure):
        from twisted.internet.defer import TimeoutError

        failure.trap(TimeoutError)
        raise AssertionError("%s did not happen within %g s" % (what, seconds))

    return d.addTimeout(seconds, reactor).addErrback(late)


class RecoveryTests(TestCase):
    """
    One client, three servers, p2c: a server that fails comes back.
    """

    timeout = 120

    @inlineCallbacks
    def setUp(self):
        self.servers = []
        for _ in range(3):
            server = yield startDemoServer(addCleanup=self.addCleanup)
            self.servers.append(server)

    def connect(self, **options):
        """
        Make the client of the three servers, and its load.
        """
        dest = "tcp://" + ",".join("%s:%d" % (s.host, s.port) for s in self.servers)
        self.client = ThriftMux.newClient(
            TestService.Iface, dest, timeout=0.5, random=random.Random(4), registry=CollectorRegistry(), **options
        )
        self.addCleanup(self.client.close)
        self.nodes = self.client.stack.nodes
        return Load(self, self.client, workers=20, maxFailures=10000)

    @inlineCallbacks
    def test_restartedGetsRequests(self):
        """
        A server killed with calls in flight is marked dead (at the first
        failure here, so that no call finds it refusing connections before
        its probe does); restarted on its port, it gets requests again
        within 10 s.
        """
        load = self.connect(failureAccrual={"consecutiveFailures": 1})
        yield load.when(lambda: load.ok >= 200 and all(n.requests for n in self.nodes))
        victim, node = self.servers[1], self.nodes[1]
        yield victim.kill()
        yield within(
            load.when(lambda: node.failFast.down and node.accrual.removals >= 1), 30, "a probe finding it down"
        )
        yield startTwistd(
            ["txscales", "demo-server", "--listen", "tcp:%d:interface=127.0.0.1" % (victim.port,)],
            addCleanup=self.addCleanup,
        )
        requestsBefore = node.requests
        yield within(load.when(lambda: node.requests > requestsBefore + 20), 10, "20 requests to the restarted server")
        yield load.stop()
        self.assertEqual(node.accrual.state, ALIVE)

    @inlineCallbacks
    def test_frozenGetsFewTimeouts(self):
        """
        A frozen server is marked dead after a few timeouts and its session
        is busy at once: it gets few of the calls made meanwhile.
        """
        load = self.connect()
        yield load.when(lambda: load.ok >= 200 and all(n.requests for n in self.nodes))
        victim, node = self.servers[1], self.nodes[1]
        victim.signal("STOP")
        self.addCleanup(lambda: victim.signal(signal.SIGCONT) and None)
        okAtStop = load.ok
        yield within(load.when(lambda: node.accrual.state == DEAD), 10, "the frozen server marked dead")
        yield load.when(lambda: load.ok >= okAtStop + 3000)
        yield load.stop()
        timedOut = [e for e in load.failures if isinstance(e, RequestTimeoutError)]
        self.assertLessEqual(len(load.failures), 40, (len(timedOut), load.failures[:5]))
