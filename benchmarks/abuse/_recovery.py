"""
What the abuse scripts share (L{freePort}), and what the recovery ones
use: real C{twistd txscales demo-server} processes on chosen ports, and a
closed-loop load whose outcomes are counted per second.

Run the scripts from a checkout, with its tree first on the path, to
measure that checkout's client:

    PYTHONPATH=$PWD .venv/bin/python benchmarks/abuse/restart.py
"""

import os
import random
import socket
import subprocess
import sys
import time

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater


def freePort():
    """
    @return: a TCP port on 127.0.0.1 that was free a moment ago.
    """
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def twistd():
    """
    @return: the command running this interpreter's C{twistd}.
    """
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.isfile(script):
        return [sys.executable, script]
    return [sys.executable, "-m", "twisted"]


def startServer(port, deadline=30.0):
    """
    Start C{twistd -n txscales demo-server} on C{127.0.0.1:port} and wait
    (polling, bounded) until it accepts connections.

    @return: the C{subprocess.Popen}.
    """
    argv = twistd() + ["--pidfile=", "-n", "--logfile=/dev/null", "txscales", "demo-server"]
    argv += ["--listen", "tcp:%d:interface=127.0.0.1" % (port,)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("demo-server on port %d exited with %r" % (port, process.returncode))
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("demo-server on port %d did not listen within %g s" % (port, deadline))


class Load:
    """
    C{workers} loops calling C{call()} until stopped, counting successes
    and failures by exception class.
    """

    def __init__(self, reactor, call, workers):
        self._reactor = reactor
        self._call = call
        self.running = True
        self.ok = 0
        self.failures = {}
        for _ in range(workers):
            self._worker()

    @inlineCallbacks
    def _worker(self):
        while self.running:
            try:
                yield self._call()
            except Exception as e:
                name = type(e).__name__
                self.failures[name] = self.failures.get(name, 0) + 1
                # A failing call must not spin the loop.
                yield deferLater(self._reactor, 0.001, lambda: None)
            else:
                self.ok += 1


def sleep(reactor, seconds):
    """
    @return: a Deferred firing after C{seconds}.
    """
    return deferLater(reactor, seconds, lambda: None)


class ThreeServers:
    """
    Three demo servers on free ports and one p2c ThriftMux client over them,
    under a closed-loop load of C{delayedQuery("x", 20)} calls.

    @ivar ports: the servers' ports.
    @ivar servers: their C{subprocess.Popen}s (replace one to restart it).
    @ivar client: the client.
    @ivar load: the L{Load}.
    """

    def __init__(self, reactor, timeout, workers, seed):
        from prometheus_client import CollectorRegistry

        from txscales.demo.gen import TestService
        from txscales.thriftmux import ThriftMux

        self.ports = [freePort() for _ in range(3)]
        self.servers = [startServer(port) for port in self.ports]
        dest = "tcp://" + ",".join("127.0.0.1:%d" % (port,) for port in self.ports)
        self.client = ThriftMux.newClient(
            TestService.Iface, dest, timeout=timeout, random=random.Random(seed), registry=CollectorRegistry()
        )
        self.load = Load(reactor, lambda: self.client.delayedQuery("x", 20), workers)

    def stopLoad(self):
        """
        Stop the load and close the client.

        @return: a Deferred firing once the client is closed.
        """
        self.load.running = False
        return self.client.close()

    def killServers(self):
        """
        Kill every server and wait for it.
        """
        for server in self.servers:
            server.kill()
            server.wait()
