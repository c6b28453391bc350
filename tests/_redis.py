"""
Run real Redis servers for tests (Debian's C{redis-server}, installed by
C{scripts/setup-redis}) on free ports of 127.0.0.1, alone or as a Redis
Cluster, and talk to them with a tiny client of the tests' own (hiredis'
C{pack_command} and C{Reader}, not txscales' code):

    server = RedisServer(reactor, self.addCleanup)
    yield server.start()                    # once it answers PING
    reply = yield server.execute("SET", "k", "v")
    yield server.kill()                     # SIGKILL: its data is lost
    yield server.start()                    # the same port again

    cluster = RedisCluster(reactor, self.addCleanup)   # 3 masters, 1 replica each
    yield cluster.start()                   # once every node says cluster_state:ok
    masters = yield cluster.masters()       # [RedisServer, ...]

Readiness is the server's C{Ready to accept connections} log line and then
a PING answered over a connection, not a sleep.  A cluster's gossip has no
event to wait for, so L{RedisCluster.start} asks every node for
C{CLUSTER INFO} until all say C{cluster_state:ok}, every 20 ms, within a
bounded time.  Every process is killed and reaped at the test's cleanup.
"""

import os
import shutil
import tempfile

import hiredis
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater

from tests._servers import ServerProcess
from tests._twistd import freePort, requirePeer, runPeer

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
READY = "Ready to accept connections"


class RedisHelperError(Exception):
    """
    A server or cluster did not start, or a helper's command failed; the
    message carries what the servers wrote.
    """


def requireRedis():
    """
    Fail (under CI) or skip (elsewhere) when redis-server or redis-cli is
    not installed.
    """
    requirePeer(
        os.access(REDIS_SERVER, os.X_OK) and os.access(REDIS_CLI, os.X_OK),
        "Redis is not installed: run scripts/setup-redis (Debian's redis-server and redis-tools)",
    )


class _Client(Protocol):
    """
    The tests' own Redis client: commands pipelined, replies matched in
    order; error replies come back as C{hiredis.ReplyError} values.
    """

    def __init__(self):
        self._reader = hiredis.Reader()
        self._waiting = []
        self._lost = Deferred()

    def dataReceived(self, data):
        self._reader.feed(data)
        while True:
            reply = self._reader.gets()
            if reply is False:
                return
            self._waiting.pop(0).callback(reply)

    def connectionLost(self, reason):
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(reason)
        self._lost.callback(None)

    def execute(self, *args):
        """
        @return: a Deferred firing with the reply.
        """
        d = Deferred()
        self._waiting.append(d)
        self.transport.write(hiredis.pack_command(args))
        return d

    def close(self):
        """
        @return: a Deferred firing once the connection is closed.
        """
        self.transport.loseConnection()
        return self._lost


def connectClient(reactor, port):
    """
    @return: a Deferred firing with a connected client of the tests' own
        (C{execute(*args)} and C{close()}) to 127.0.0.1:C{port}.
    """
    return connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5), _Client())


@inlineCallbacks
def execute(reactor, port, *args):
    """
    Run one command on a connection of its own.

    @return: a Deferred firing with the reply (an error reply as a
        C{hiredis.ReplyError} value).
    """
    client = yield connectClient(reactor, port)
    try:
        reply = yield client.execute(*args)
    finally:
        yield client.close()
    return reply


class RedisServer(ServerProcess):
    """
    A redis-server process on 127.0.0.1, without persistence.

    @ivar address: C{127.0.0.1:port}.
    @ivar dest: C{tcp://127.0.0.1:port}, for txscales.
    @ivar busPort: its cluster bus port, when C{cluster} is true.
    """

    name = "redis-server"
    readyLine = READY

    def __init__(self, reactor, addCleanup, port=None, cluster=False, args=(), startTimeout=10.0):
        """
        The arguments are L{ServerProcess}'s (its folder is removed at
        cleanup too), and:

        @param cluster: run with C{--cluster-enabled yes}.
        @param args: further redis-server options (C{("--requirepass",
            "x")}).
        """
        requireRedis()
        self._cluster = cluster
        self._args = list(args)
        self.busPort = None
        directory = tempfile.mkdtemp(prefix="txscales-redis-")
        addCleanup(shutil.rmtree, directory, True)
        ServerProcess.__init__(self, reactor, addCleanup, port, startTimeout, cwd=directory)

    def setPort(self, port):
        ServerProcess.setPort(self, port)
        self.address = "127.0.0.1:%d" % (port,)
        self.dest = "tcp://" + self.address
        if self._cluster:
            self.busPort = freePort()

    @inlineCallbacks
    def start(self):
        """
        Start the server, or start it again on the same port once it ended.

        @return: a Deferred firing with this object once it answered PING,
            or failing with L{ProcessExitedEarly} (its output in the
            message).
        """
        yield ServerProcess.start(self)
        pong = yield self.execute("PING")
        if pong != b"PONG":
            raise RedisHelperError("PING answered %r\n%s" % (pong, self.log))
        return self

    def argv(self):
        argv = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self._cwd,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]
        if self._cluster:
            argv += [
                "--cluster-enabled", "yes",
                "--cluster-port", str(self.busPort),
                "--cluster-config-file", "nodes-%d.conf" % (self.port,),
                # A failed master is replaced within about 1 s.
                "--cluster-node-timeout", "500",
                # A replica may take over however long ago it last heard
                # of its master (a busy test machine delays the gossip).
                "--cluster-replica-validity-factor", "0",
            ]
        return argv + self._args

    def execute(self, *args):
        """
        Run a command on a connection of its own.

        @return: a Deferred firing with the reply (an error reply as a
            C{hiredis.ReplyError} value).
        """
        return execute(self._reactor, self.port, *args)

    def connect(self):
        """
        @return: a Deferred firing with a client of the tests' own,
            connected to this server (C{execute(*args)}, C{close()}).
        """
        return connectClient(self._reactor, self.port)

    @inlineCallbacks
    def restart(self):
        """
        Kill the server (SIGKILL) and start it again on the same port.

        @return: a Deferred firing with this object once it answers.
        """
        yield self.kill()
        yield self.start()
        return self


def parseClusterNodes(text):
    """
    @param text: a C{CLUSTER NODES} reply, decoded.
    @return: one dict per node: C{id}, C{address} (C{host:port}), C{flags}
        (a set), C{master} (the master's id, or None), C{connected}, and
        C{slots} (a list of C{(first, last)} ranges).
    """
    nodes = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 8:
            continue
        slots = []
        for item in fields[8:]:
            if item.startswith("["):
                continue
            first, _, last = item.partition("-")
            slots.append((int(first), int(last or first)))
        nodes.append(
            {
                "id": fields[0],
                "address": fields[1].split("@")[0],
                "flags": set(fields[2].split(",")),
                "master": None if fields[3] == "-" else fields[3],
                "connected": fields[7] == "connected",
                "slots": slots,
            }
        )
    return nodes


class RedisCluster:
    """
    A Redis Cluster of C{masters} masters with C{replicas} replicas each, on
    free ports of 127.0.0.1, made by C{redis-cli --cluster create}.

    @ivar nodes: the L{RedisServer} of every node, in the order given to
        C{redis-cli} (which makes the first C{masters} of them masters).
    @ivar dest: C{redis-cluster://127.0.0.1:p1,...}, every node.
    """

    def __init__(self, reactor, addCleanup, masters=3, replicas=1, readyTimeout=30.0):
        """
        @param reactor: the reactor that runs the processes.
        @param addCleanup: a test's C{addCleanup}.
        @param masters: how many masters (at least 3, as redis-cli wants).
        @param replicas: how many replicas each master gets.
        @param readyTimeout: seconds the cluster may take to be ready.
        """
        self._reactor = reactor
        self._readyTimeout = readyTimeout
        self._replicas = replicas
        self.nodes = [
            RedisServer(reactor, addCleanup, cluster=True) for _ in range(masters * (1 + replicas))
        ]
        self.dest = "redis-cluster://" + ",".join(node.address for node in self.nodes)

    @property
    def log(self):
        """
        What every node wrote so far.
        """
        return "".join(node.log for node in self.nodes)

    def node(self, address):
        """
        @param address: C{host:port}.
        @return: the L{RedisServer} listening there.
        """
        for node in self.nodes:
            if node.address == address:
                return node
        raise KeyError(address)

    @inlineCallbacks
    def start(self):
        """
        Start every node, join them with C{redis-cli --cluster create}, and
        wait until every node says C{cluster_state:ok} and knows every
        other.

        @return: a Deferred firing with this object.
        """
        results = yield DeferredList([node.start() for node in self.nodes], consumeErrors=True)
        for ok, result in results:
            if not ok:
                raise RedisHelperError("a node did not start: %s\n%s" % (result.value, self.log))
        argv = [REDIS_CLI, "--cluster", "create"] + [node.address for node in self.nodes]
        argv += ["--cluster-replicas", str(self._replicas), "--cluster-yes"]
        result = yield runPeer(argv, self._reactor, timeout=self._readyTimeout)
        if result.exitCode != 0:
            raise RedisHelperError("redis-cli --cluster create failed:\n%s\n%s" % (result.output, self.log))
        yield self.waitUntilOk()
        return self

    @inlineCallbacks
    def waitUntilOk(self, nodes=None):
        """
        Ask C{nodes} (default: every node that runs) for C{CLUSTER INFO}
        every 20 ms until each says C{cluster_state:ok} with every slot
        served and every node known.

        @return: a Deferred firing with None, or failing with
            L{RedisHelperError} after the C{readyTimeout}.
        """
        if nodes is None:
            nodes = [node for node in self.nodes if node.process is not None and node.process.running]
        deadline = self._reactor.seconds() + self._readyTimeout
        while True:
            infos = []
            for node in nodes:
                info = yield node.execute("CLUSTER", "INFO")
                infos.append(info.decode("ascii") if isinstance(info, bytes) else repr(info))
            if all(
                "cluster_state:ok" in info
                and "cluster_slots_ok:16384" in info
                and "cluster_known_nodes:%d" % (len(self.nodes),) in info
                for info in infos
            ):
                return
            if self._reactor.seconds() > deadline:
                raise RedisHelperError("the cluster is not ok:\n%s\n%s" % ("\n".join(infos), self.log))
            yield deferLater(self._reactor, 0.02, lambda: None)

    @inlineCallbacks
    def clusterNodes(self, via=None):
        """
        @param via: the node to ask (default: the first that runs).
        @return: a Deferred firing with its C{CLUSTER NODES}, parsed by
            L{parseClusterNodes}.
        """
        if via is None:
            via = next(node for node in self.nodes if node.process.running)
        text = yield via.execute("CLUSTER", "NODES")
        return parseClusterNodes(text.decode("ascii"))

    @inlineCallbacks
    def masters(self):
        """
        @return: a Deferred firing with the L{RedisServer}s that are masters
            now (serving slots), in slot order.
        """
        nodes = yield self.clusterNodes()
        masters = sorted(
            (n for n in nodes if "master" in n["flags"] and "fail" not in n["flags"] and n["slots"]),
            key=lambda n: n["slots"][0],
        )
        return [self.node(n["address"]) for n in masters]

    @inlineCallbacks
    def replicasOf(self, master):
        """
        @param master: a L{RedisServer} that is a master.
        @return: a Deferred firing with the L{RedisServer}s replicating it.
        """
        nodes = yield self.clusterNodes()
        ids = {n["address"]: n["id"] for n in nodes}
        return [
            self.node(n["address"]) for n in nodes if n["master"] == ids[master.address] and "fail" not in n["flags"]
        ]
