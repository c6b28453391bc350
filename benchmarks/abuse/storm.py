"""
Reconnect storm: a Mux server that closes every session right after the
handshake, and one ThriftMux client calling it from 10 closed-loop workers
(1 s timeout) for 20 s; the connections it made are counted.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/abuse/storm.py [--seconds 20]

Prints one JSON line.
"""

import argparse
import json
import os
import random
import sys

from prometheus_client import CollectorRegistry
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import react

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _recovery import Load, sleep  # noqa: E402

from txscales.demo.gen import TestService  # noqa: E402
from txscales.mux.protocol import MuxServerFactory, MuxServerProtocol  # noqa: E402
from txscales.thriftmux import ThriftMux  # noqa: E402


class BreakingProtocol(MuxServerProtocol):
    """
    Close the session once it is negotiated.
    """

    def dataReceived(self, data):
        MuxServerProtocol.dataReceived(self, data)
        if self.session is not None and self.session.negotiated:
            self.transport.loseConnection()


class BreakingFactory(MuxServerFactory):
    connections = 0

    def buildProtocol(self, addr):
        self.connections += 1
        p = BreakingProtocol(lambda request: b"", self._clock)
        p.factory = self
        return p


@inlineCallbacks
def main(reactor, args):
    factory = BreakingFactory(None, reactor)
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    client = ThriftMux.newClient(
        TestService.Iface,
        "tcp://127.0.0.1:%d" % (port.getHost().port,),
        timeout=1.0,
        random=random.Random(args.seed),
        registry=CollectorRegistry(),
    )
    load = Load(reactor, lambda: client.query("x"), args.workers)
    yield sleep(reactor, args.seconds)
    connections = factory.connections
    load.running = False
    yield client.close()
    yield port.stopListening()
    print(json.dumps({"connections": connections, "seconds": args.seconds, "failures": load.failures}, sort_keys=True))


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    react(main, [parse()])
