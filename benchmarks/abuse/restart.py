"""
Requests reaching a restarted server: one client (p2c, 20 closed-loop
workers) against three C{twistd txscales demo-server}s; one is killed with
SIGKILL, stays down, is restarted on the same port, and the calls it
answers in the next 10 s are counted.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/abuse/restart.py [--down 5]

Prints one JSON line.
"""

import argparse
import json
import os
import sys

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import react

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _recovery import ThreeServers, sleep, startServer  # noqa: E402


@inlineCallbacks
def main(reactor, args):
    setup = ThreeServers(reactor, args.timeout, args.workers, args.seed)
    try:
        yield sleep(reactor, 3.0)
        node = setup.client.stack.nodes[1]
        answered = [0]
        succeeded = node.succeeded

        def counted():
            answered[0] += 1
            succeeded()

        node.succeeded = counted
        setup.servers[1].kill()
        setup.servers[1].wait()
        yield sleep(reactor, args.down)
        setup.servers[1] = startServer(setup.ports[1])
        answered[0] = 0
        yield sleep(reactor, 10.0)
        reached = answered[0]
        state = node.accrual.state if node.accrual is not None else None
        yield setup.stopLoad()
        load = setup.load
        print(
            json.dumps(
                {
                    "reachedWithin10s": reached,
                    "down": args.down,
                    "ok": load.ok,
                    "failures": load.failures,
                    "accrualAfter": state,
                },
                sort_keys=True,
            )
        )
    finally:
        setup.killServers()


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--down", type=float, default=5.0, help="seconds the server stays down")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    react(main, [parse()])
