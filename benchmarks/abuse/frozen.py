"""
A frozen server: one client (p2c, 20 closed-loop workers, 0.5 s timeout)
against three C{twistd txscales demo-server}s, one of which is stopped
with SIGSTOP; the calls that time out are counted each second.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/abuse/frozen.py [--seconds 10]

Prints one JSON line.
"""

import argparse
import json
import os
import random
import signal
import sys

from prometheus_client import CollectorRegistry
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import react

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _recovery import Load, freePort, sleep, startServer  # noqa: E402

from txscales.demo.gen import TestService  # noqa: E402
from txscales.thriftmux import ThriftMux  # noqa: E402


@inlineCallbacks
def main(reactor, args):
    ports = [freePort() for _ in range(3)]
    servers = [startServer(port) for port in ports]
    try:
        dest = "tcp://" + ",".join("127.0.0.1:%d" % (port,) for port in ports)
        client = ThriftMux.newClient(
            TestService.Iface, dest, timeout=args.timeout, random=random.Random(args.seed), registry=CollectorRegistry()
        )
        load = Load(reactor, lambda: client.delayedQuery("x", 20), args.workers)
        yield sleep(reactor, 3.0)
        servers[1].send_signal(signal.SIGSTOP)
        perSecond = []
        before = load.failures.get("RequestTimeoutError", 0)
        ok = load.ok
        for _ in range(int(args.seconds)):
            yield sleep(reactor, 1.0)
            now = load.failures.get("RequestTimeoutError", 0)
            perSecond.append(now - before)
            before = now
        load.running = False
        servers[1].send_signal(signal.SIGCONT)
        yield client.close()
        print(
            json.dumps(
                {
                    "timedOutPerSecond": perSecond,
                    "timedOutTotal": sum(perSecond),
                    "okWhileFrozen": load.ok - ok,
                    "failures": load.failures,
                },
                sort_keys=True,
            )
        )
    finally:
        for server in servers:
            server.kill()
            server.wait()


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    react(main, [parse()])
