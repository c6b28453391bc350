"""
The CPU cost of one call on each side, without sockets: client and server
protocols in one process, their bytes handed over in batches by a pump, as
a busy connection delivers them.  Prints one JSON line.

    python benchmarks/hotpath.py [--kinds echo,thriftmux] [--concurrency 100] [--size 32]

Kinds run by default: echo, thriftmux, thriftmux-nostats, thriftmux-timeout,
mux-floor.  Also available: thriftmux-clientid (calls carry a client id),
mux-contexts (the Mux floor, its calls carrying Finagle's contexts as a
plain list, as calls made while serving a request pass them on), thrift
(txscales' plain framed Thrift, pooled: at most 64 connections, so that
calls beyond wait for one), thrift-high (the same with a connection per call
outstanding), thrift-pipelined (pipelined on one connection),
thriftmux-tracing (a tracer on, no call sampled: what deciding and sending
the sampling decision costs) and thriftmux-otel (every call recorded as an
OpenTelemetry span on both sides, to an SDK provider that exports nowhere;
needs the otel extra).

Each round, the pump gives the server everything the client wrote, then the
client everything the server wrote; C{--concurrency} calls are outstanding
and each answer starts the next call, as in the throughput benchmark.  The
time spent inside each side's C{dataReceived} (which, on the client, runs
the callbacks that make the next calls) is that side's cost.  With no
kernel, no scheduler and no other process involved, these figures move
much less from run to run than calls/s over loopback, which makes them the
measure to compare two versions of the code with.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import payload  # noqa: E402


class BufferTransport:
    """
    A transport that keeps what is written until the pump takes it.
    """

    disconnecting = False
    connected = True

    def __init__(self):
        self.out = []

    def write(self, data):
        self.out.append(data)

    def writeSequence(self, data):
        self.out.extend(data)

    def take(self):
        out, self.out = self.out, []
        return b"".join(out)

    def setTcpNoDelay(self, enabled):
        pass

    def loseConnection(self):
        self.connected = False

    abortConnection = loseConnection

    def getPeer(self):
        from twisted.internet.address import IPv4Address

        return IPv4Address("TCP", "127.0.0.1", 40000)

    getHost = getPeer

    def registerProducer(self, producer, streaming):
        pass

    def unregisterProducer(self):
        pass


class WallClock:
    """
    A clock for the client stack: real time, timers that never fire (pings
    are off, and a timeout's timer only bounds calls that all end first).
    """

    # As a real reactor's: the builtin, no Python frame per reading.
    seconds = staticmethod(time.time)

    def callLater(self, delay, f, *args, **kwargs):
        from twisted.internet.task import Clock

        return Clock().callLater(delay, f, *args, **kwargs)


class Pair:
    """
    A client protocol and a server protocol joined by a pump that times
    each side.
    """

    def __init__(self):
        self.clientTransport = BufferTransport()
        self.serverTransport = BufferTransport()
        self.client = None
        self.server = None
        self.clientSeconds = 0.0
        self.serverSeconds = 0.0

    def connect(self, client, server):
        self.client, self.server = client, server
        server.makeConnection(self.serverTransport)
        client.makeConnection(self.clientTransport)

    def pump(self, timed=True):
        moved = False
        data = self.clientTransport.take()
        if data:
            moved = True
            t0 = time.process_time()
            self.server.dataReceived(data)
            if timed:
                self.serverSeconds += time.process_time() - t0
        data = self.serverTransport.take()
        if data:
            moved = True
            t0 = time.process_time()
            self.client.dataReceived(data)
            if timed:
                self.clientSeconds += time.process_time() - t0
        return moved


def echoSetup(size):
    from echo import EchoClientProtocol, EchoServerFactory

    pair = Pair()
    server = EchoServerFactory(WallClock()).buildProtocol(None)
    client = EchoClientProtocol()
    pair.connect(client, server)
    x = payload(size, text=False)
    return pair, (lambda: client.call(x)), x + x


def thriftMuxSetup(size, stats, timeout=None, clientId=None):
    from twisted.internet.defer import succeed

    from txscales.demo.gen import TestService
    from txscales.demo.handler import TestServiceHandler
    from txscales.thriftmux import ThriftMux
    from txscales.thriftmux._server import serverFactory

    pair = Pair()
    clock = WallClock()
    serverStats = None
    if stats:
        from txscales.stats import Stats

        serverStats = Stats("server", "hotpath")
    factory = serverFactory(TestService.Iface, TestServiceHandler(clock), clock, stats=serverStats)

    class Endpoint:
        def connect(self, clientFactory):
            server = factory.buildProtocol(None)
            client = clientFactory.buildProtocol(None)
            pair.connect(client, server)
            return succeed(client)

    client = ThriftMux.newClient(
        TestService.Iface,
        "tcp://127.0.0.1:9",
        reactor=clock,
        stats=stats,
        timeout=timeout,
        clientId=clientId,
        pingInterval=None,
        endpointFactory=lambda reactor, host, port, timeout: Endpoint(),
    )
    x = payload(size)
    return pair, (lambda: client.query(x)), x + x


class Pairs:
    """
    Many L{Pair}s (one per connection, as a pooled client makes them),
    pumped and timed together.
    """

    def __init__(self):
        self.pairs = []
        self.clientSeconds = 0.0
        self.serverSeconds = 0.0

    def connect(self, client, server):
        pair = Pair()
        self.pairs.append(pair)
        pair.connect(client, server)

    def pump(self, timed=True):
        moved = False
        for pair in list(self.pairs):
            pair.clientSeconds = pair.serverSeconds = 0.0
            moved = pair.pump(timed) or moved
            self.clientSeconds += pair.clientSeconds
            self.serverSeconds += pair.serverSeconds
        return moved


def thriftSetup(size, pipelined, high=None):
    """
    txscales' plain framed Thrift client and server: pooled (at most
    C{high} connections, the default 64 unless given, a call at a time on
    each) or pipelined (one connection).
    """
    from twisted.internet.defer import succeed

    from txscales.demo.gen import TestService
    from txscales.demo.handler import TestServiceHandler
    from txscales.thrift import Thrift
    from txscales.thrift._server import serverFactory

    pairs = Pairs()
    clock = WallClock()
    factory = serverFactory(TestService.Iface, TestServiceHandler(clock), clock)

    class Endpoint:
        def connect(self, clientFactory):
            client = clientFactory.buildProtocol(None)
            pairs.connect(client, factory.buildProtocol(None))
            return succeed(client)

    options = {"pipelined": True} if pipelined else ({"high": high} if high else {})
    client = Thrift.newClient(
        TestService.Iface,
        "tcp://127.0.0.1:9",
        reactor=clock,
        stats=True,
        endpointFactory=lambda reactor, host, port, timeout: Endpoint(),
        **options
    )
    x = payload(size)
    return pairs, (lambda: client.query(x)), x + x


def tracedSetup(size, rate, otel):
    """
    thriftMuxSetup with a tracer on and C{rate} of the calls sampled: the
    OpenTelemetry tracer when C{otel}, else one that records nothing.
    """
    from txscales import tracing
    from txscales._sampling import SAMPLER

    SAMPLER.rate = rate
    if otel:
        from opentelemetry.sdk.trace import TracerProvider

        tracing.useOpenTelemetry(TracerProvider())
    else:
        tracing.useTracer(NullTracer())
    return thriftMuxSetup(size, True)


class NullTracer:
    """
    A tracer on, whose spans (none, when nothing is sampled) go nowhere.
    """

    def startSpan(self, name, kind, trace, attributes):
        return self

    def setAttribute(self, key, value):
        pass

    def fail(self, exception):
        pass

    def end(self):
        pass


def resetTracing():
    """
    Turn tracing off again after a traced kind (when txscales has it).
    """
    try:
        from txscales import tracing
        from txscales._sampling import DEFAULT_RATE, SAMPLER
    except ImportError:
        return
    tracing.useTracer(None)
    SAMPLER.rate = DEFAULT_RATE


def muxFloorSetup(size, contexts=()):
    """
    The floor under txscales' ThriftMux client: the same server, but calls
    made on the Mux protocol directly (encode, dispatch, decode; no client
    stack, no contexts unless given), to show what the stack costs and what
    it cannot.
    """
    from txscales.demo.gen import TestService
    from txscales.demo.handler import TestServiceHandler
    from txscales.mux.protocol import MuxClientProtocol
    from txscales.thrift import decodeReply, describeService, encodeCall
    from txscales.thriftmux._server import serverFactory

    pair = Pair()
    clock = WallClock()
    factory = serverFactory(TestService.Iface, TestServiceHandler(clock), clock)
    client = MuxClientProtocol(clock, pingInterval=None)
    pair.connect(client, factory.buildProtocol(None))
    method = describeService(TestService.Iface)["query"]
    x = payload(size)

    def call():
        return client.dispatch(encodeCall(method, (x,), {}), contexts).addCallback(
            lambda reply: decodeReply(method, reply.body)
        )

    return pair, call, x + x


# Finagle's contexts (MUX.md 2.2) with values of their usual sizes.
CONTEXTS = [
    (b"com.twitter.finagle.tracing.TraceContext", bytes(32)),
    (b"com.twitter.finagle.Retries", bytes(4)),
    (b"com.twitter.finagle.Deadline", bytes(16)),
    (b"com.twitter.finagle.thrift.ClientIdContext", b"hotpath"),
]


def measure(setup, concurrency, calls, warmup):
    pair, call, expected = setup()
    state = {"answered": 0, "wrong": 0, "failed": 0, "left": warmup + calls}

    def finished(result):
        if result == expected:
            state["answered"] += 1
        elif hasattr(result, "getErrorMessage"):
            state["failed"] += 1
            state["error"] = result.getErrorMessage()
        else:
            state["wrong"] += 1
        if state["left"] > 0:
            issue()

    def issue():
        state["left"] -= 1
        call().addBoth(finished)

    # Connect (the first call waits for the handshake), then warm up.
    call()
    while pair.pump(timed=False):
        pass
    for _ in range(concurrency):
        issue()
    while state["answered"] + state["failed"] + state["wrong"] < warmup:
        if not pair.pump(timed=False):
            break
    start = state["answered"]
    pair.clientSeconds = pair.serverSeconds = 0.0
    while pair.pump():
        pass
    n = state["answered"] - start
    if state["failed"] or state["wrong"] or n <= 0:
        raise SystemExit("hot path run failed: %r" % (state,))
    return {"clientUs": pair.clientSeconds / n * 1e6, "serverUs": pair.serverSeconds / n * 1e6, "calls": n}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kinds", default="echo,thriftmux,thriftmux-nostats,thriftmux-timeout,mux-floor")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--calls", type=int, default=30000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    setups = {
        "echo": lambda: echoSetup(args.size),
        "thriftmux": lambda: thriftMuxSetup(args.size, True),
        "thriftmux-nostats": lambda: thriftMuxSetup(args.size, False),
        "thriftmux-timeout": lambda: thriftMuxSetup(args.size, True, timeout=1.0),
        "mux-floor": lambda: muxFloorSetup(args.size),
        "thriftmux-clientid": lambda: thriftMuxSetup(args.size, True, clientId="hotpath"),
        "mux-contexts": lambda: muxFloorSetup(args.size, CONTEXTS),
        "thrift": lambda: thriftSetup(args.size, False),
        "thrift-high": lambda: thriftSetup(args.size, False, high=args.concurrency),
        "thrift-pipelined": lambda: thriftSetup(args.size, True),
        "thriftmux-tracing": lambda: tracedSetup(args.size, 0.0, otel=False),
        "thriftmux-otel": lambda: tracedSetup(args.size, 1.0, otel=True),
    }
    out = {"kind": "hotpath", "ok": True, "concurrency": args.concurrency, "size": args.size, "us": {}}
    for kind in args.kinds.split(","):
        runs = [measure(setups[kind], args.concurrency, args.calls, args.calls // 5) for _ in range(args.repeats)]
        resetTracing()
        out["us"][kind] = {
            "client": round(min(r["clientUs"] for r in runs), 2),
            "server": round(min(r["serverUs"] for r in runs), 2),
        }
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
