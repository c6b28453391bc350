"""
A benchmark client process (Twisted).  It connects to one server on
127.0.0.1, runs one measurement and prints one JSON line.

    python benchmarks/client.py KIND --port P --mode throughput --size 32 --concurrency 100
    python benchmarks/client.py KIND --port P --mode latency --size 32 --rate 20000
    python benchmarks/client.py KIND --port P --mode memory --count 10000

KIND is C{echo} (the raw baseline, L{echo}), C{echo-batched} (its
hand-batched version), C{thriftmux}
(C{ThriftMux.newClient}), C{thrift} (txscales' plain framed Thrift client,
C{txscales.thrift.Thrift.newClient}, when it exists) or C{ttwisted} (Apache
Thrift's C{TTwisted.ThriftClientProtocol} on code generated into
C{--gen-dir}).  Every answer is checked against C{x + x}.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import ClosedLoop, HeldCalls, OpenLoop, describeRuntime, emit, freezeHeap, payload  # noqa: E402

HOLD_MS = 600000


class Target:
    """
    What a measurement calls: C{call()} (one call with the payload),
    C{expected} (its answer), C{hold()} and C{sentinel()} (for the memory
    measurement), and C{close()}.
    """

    def __init__(self, call, expected, hold=None, sentinel=None, close=None):
        self.call = call
        self.expected = expected
        self.hold = hold
        self.sentinel = sentinel
        self.close = close or (lambda: None)


def echoTarget(reactor, port, size, batched):
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from echo import BatchedEchoClientProtocol, EchoClientProtocol

    protocol = BatchedEchoClientProtocol() if batched else EchoClientProtocol()
    d = connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)

    def connected(p):
        x = payload(size, text=False)
        return Target(
            lambda: p.call(x),
            x + x,
            hold=lambda: p.call(b"h", HOLD_MS),
            sentinel=lambda: p.call(b"s"),
            close=p.transport.loseConnection,
        )

    return d.addCallback(connected)


def thriftMuxTarget(reactor, port, size, stats, timeout):
    from twisted.internet.defer import succeed

    from txscales.demo.gen import TestService
    from txscales.thriftmux import ThriftMux

    client = ThriftMux.newClient(
        TestService.Iface, "tcp://127.0.0.1:%d" % (port,), timeout=timeout, reactor=reactor, stats=stats
    )
    x = payload(size)
    return succeed(
        Target(
            lambda: client.query(x),
            x + x,
            hold=lambda: client.delayedQuery("h", HOLD_MS),
            sentinel=lambda: client.query("s"),
            close=client.close,
        )
    )


def thriftTarget(reactor, port, size, stats, timeout, pipelined=False):
    from twisted.internet.defer import succeed

    from txscales.demo.gen import TestService
    from txscales.thrift import Thrift

    options = {} if stats else {"stats": False}
    if timeout is not None:
        options["timeout"] = timeout
    if pipelined:
        options["pipelined"] = True
    client = Thrift.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (port,), transport="framed", **options)
    x = payload(size)
    return succeed(Target(lambda: client.query(x), x + x, close=client.close))


def ttwistedTarget(reactor, port, size, genDir):
    sys.path.insert(0, genDir)
    from benchgen import TestService
    from thrift.protocol.TBinaryProtocol import TBinaryProtocolAcceleratedFactory
    from thrift.transport import TTwisted
    from twisted.internet.protocol import ClientCreator

    class Protocol(TTwisted.ThriftClientProtocol):
        def connectionMade(self):
            self.transport.setTcpNoDelay(True)
            TTwisted.ThriftClientProtocol.connectionMade(self)

    creator = ClientCreator(reactor, Protocol, TestService.Client, TBinaryProtocolAcceleratedFactory())
    d = creator.connectTCP("127.0.0.1", port)
    d.addCallback(lambda p: p.started.addCallback(lambda client: (p, client)))

    def connected(pc):
        p, client = pc
        x = payload(size)
        return Target(lambda: client.query(x), x + x, close=p.transport.loseConnection)

    return d.addCallback(connected)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["echo", "echo-batched", "thriftmux", "thrift", "ttwisted"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["throughput", "latency", "memory", "check"], default="throughput")
    parser.add_argument("--size", type=int, default=32, help="payload bytes (x of query(x))")
    parser.add_argument("--concurrency", type=int, default=100, help="throughput: calls outstanding")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency: calls offered per second")
    parser.add_argument("--count", type=int, default=10000, help="memory: calls held outstanding")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="latency: measured seconds")
    parser.add_argument("--no-stats", action="store_true", help="txscales: stats=False")
    parser.add_argument("--timeout", type=float, default=None, help="txscales: per-call timeout")
    parser.add_argument("--pipelined", action="store_true", help="thrift: pipelined=True (one connection)")
    parser.add_argument("--gen-dir", help="ttwisted: where benchgen/ was generated")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once connected, before measuring")
    parser.add_argument("--profile", help="write a pyinstrument profile of the measurement here")
    args = parser.parse_args()

    from twisted.internet import reactor
    from twisted.internet.defer import inlineCallbacks

    if args.kind in ("echo", "echo-batched"):
        ready = echoTarget(reactor, args.port, args.size, args.kind == "echo-batched")
    elif args.kind == "thriftmux":
        ready = thriftMuxTarget(reactor, args.port, args.size, not args.no_stats, args.timeout)
    elif args.kind == "thrift":
        ready = thriftTarget(reactor, args.port, args.size, not args.no_stats, args.timeout, args.pipelined)
    else:
        ready = ttwistedTarget(reactor, args.port, args.size, args.gen_dir)

    result = dict(describeRuntime(), kind=args.kind, mode=args.mode, size=args.size)

    @inlineCallbacks
    def run():
        target = yield ready
        try:
            # The first call connects; its answer must be right.
            first = yield target.call()
            if first != target.expected:
                raise AssertionError("wrong first answer: %r" % (first[:40],))
            if args.gc_freeze:
                freezeHeap()
            profiler = None
            if args.profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005)
                profiler.start()
            if args.mode == "throughput":
                run = ClosedLoop(
                    reactor, target.call, target.expected, args.concurrency, args.warmup, args.window, args.windows
                )
            elif args.mode == "latency":
                run = OpenLoop(reactor, target.call, target.expected, args.rate, args.warmup, args.duration)
            elif args.mode == "memory":
                run = HeldCalls(reactor, target.call, target.hold, target.sentinel, args.count)
            else:
                run = None
            if run is not None:
                yield run.run()
                result.update(run.asDict())
            if profiler is not None:
                profiler.stop()
                with open(args.profile, "w") as f:
                    f.write(profiler.output_text(unicode=True, color=False, show_all=False))
            result["ok"] = True
        finally:
            closing = target.close()
            if closing is not None:
                yield closing

    def done(_):
        emit(result)
        reactor.stop()

    def failed(f):
        result["ok"] = False
        result["error"] = f.getErrorMessage()[:500]
        sys.stderr.write(f.getTraceback())
        done(None)

    reactor.callWhenRunning(lambda: run().addCallbacks(done, failed))
    reactor.run()


if __name__ == "__main__":
    main()
