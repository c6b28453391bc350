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
import signal
import sys

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import react

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _recovery import ThreeServers, sleep  # noqa: E402


@inlineCallbacks
def main(reactor, args):
    setup = ThreeServers(reactor, args.timeout, args.workers, args.seed)
    load = setup.load
    try:
        yield sleep(reactor, 3.0)
        setup.servers[1].send_signal(signal.SIGSTOP)
        perSecond = []
        before = load.failures.get("RequestTimeoutError", 0)
        ok = load.ok
        for _ in range(int(args.seconds)):
            yield sleep(reactor, 1.0)
            now = load.failures.get("RequestTimeoutError", 0)
            perSecond.append(now - before)
            before = now
        setup.servers[1].send_signal(signal.SIGCONT)
        yield setup.stopLoad()
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
        setup.killServers()


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    react(main, [parse()])
