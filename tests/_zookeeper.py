"""
Run a real ZooKeeper server (Debian's C{zookeeper} package, installed by
C{scripts/setup-zookeeper}) for tests, on a free port of 127.0.0.1.

Readiness is a kazoo client's session reaching CONNECTED (kazoo retries the
connection by itself), not a sleep.
"""

import os
import shutil
import tempfile

from twisted.internet.defer import Deferred, inlineCallbacks

from txscales.discovery._zookeeper import KazooBridge

from tests._twistd import Subprocess, freePort, requirePeer, spawn

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
ZOOKEEPER_CONF = "/etc/zookeeper/conf"


def requireZooKeeper():
    """
    Fail (under CI) or skip (elsewhere) when ZooKeeper is not installed.
    """
    requirePeer(
        os.path.exists(ZOOKEEPER_JAR) and shutil.which("java"),
        "ZooKeeper is not installed: run scripts/setup-zookeeper (Debian's zookeeper package and Java)",
    )


class ZooKeeperServer:
    """
    A standalone ZooKeeper process whose data survives restarts.

    @ivar port: its client port.
    @ivar hosts: C{127.0.0.1:port}, for kazoo and zk:// URIs.
    """

    def __init__(self, reactor, addCleanup):
        requireZooKeeper()
        self._reactor = reactor
        self._addCleanup = addCleanup
        self._dir = tempfile.mkdtemp(prefix="txscales-zk-")
        addCleanup(shutil.rmtree, self._dir, True)
        self.port = freePort()
        self.hosts = "127.0.0.1:%d" % (self.port,)
        os.mkdir(os.path.join(self._dir, "data"))
        self._config = os.path.join(self._dir, "zoo.cfg")
        with open(self._config, "w") as f:
            f.write(
                "tickTime=500\n"
                "minSessionTimeout=1000\n"
                "dataDir=%s\n"
                "clientPort=%d\n"
                "clientPortAddress=127.0.0.1\n"
                "maxClientCnxns=0\n"
                "admin.enableServer=false\n" % (os.path.join(self._dir, "data"), self.port)
            )
        self.process = None

    def uri(self, path):
        """
        @return: C{zk://127.0.0.1:port/path}.
        """
        return "zk://%s%s" % (self.hosts, path)

    @inlineCallbacks
    def start(self):
        """
        Start the server.

        @return: a Deferred firing once a client session connects.
        """
        argv = [
            shutil.which("java"),
            "-Xmx256m",
            "-cp",
            "%s:%s" % (ZOOKEEPER_CONF, ZOOKEEPER_JAR),
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            self._config,
        ]
        self.process = spawn(Subprocess(argv, name="zookeeper"), self._reactor, cwd=self._dir, addCleanup=self._addCleanup)
        probe = yield self.connect()
        yield probe.stop()

    def connect(self):
        """
        @return: a Deferred firing with a connected L{KazooBridge} (stop it).
        """
        bridge = KazooBridge(self._reactor, self.hosts, sessionTimeout=4.0)
        connected = Deferred()

        def state(s):
            if s == "CONNECTED" and not connected.called:
                connected.callback(bridge)

        bridge.onState(state)
        bridge.start()
        return connected

    def stop(self):
        """
        Stop the server (SIGTERM).

        @return: a Deferred firing once it exited.
        """
        return self.process.terminate()
