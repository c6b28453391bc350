"""
A benchmark server process.  It listens on a free port of 127.0.0.1, prints
C{{"port": N}} on stdout, and serves until it is terminated.

    python benchmarks/server.py echo|echo-batched
    python benchmarks/server.py thriftmux|thrift [--no-stats]
    python benchmarks/server.py ttwisted --gen-dir DIR

C{echo} and C{echo-batched} are the raw echo baselines (L{echo});
C{thriftmux} is C{ThriftMux.newServer} serving the demo C{TestService}
handler (C{query(x) -> x + x}); C{thrift} is C{Thrift.newServer}, txscales'
plain framed Thrift server, the same way, once it exists; C{ttwisted} is Apache Thrift's own Twisted
server (C{TTwisted.ThriftServerFactory}) on code generated with
C{thrift --gen py:twisted} into DIR (package C{benchgen}), with the
C-accelerated binary protocol.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import describeRuntime, emit, freezeHeap  # noqa: E402


def listenEcho(reactor, batched):
    from twisted.internet.endpoints import TCP4ServerEndpoint

    from echo import EchoServerFactory

    return TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(EchoServerFactory(reactor, batched))


def listenThriftMux(reactor, stats, maxPending=None):
    from txscales.demo.gen import TestService
    from txscales.demo.handler import TestServiceHandler
    from txscales.thriftmux import ThriftMux

    options = {} if maxPending is None else {"maxPendingPerConnection": maxPending}
    service = ThriftMux.newServer(
        TestService.Iface, TestServiceHandler(reactor), "tcp:0:interface=127.0.0.1", reactor=reactor, stats=stats,
        **options
    )
    service.startService()
    return service.listening


def listenThrift(reactor, stats):
    from txscales.demo.gen import TestService
    from txscales.demo.handler import TestServiceHandler
    from txscales.thrift import Thrift

    service = Thrift.newServer(
        TestService.Iface, TestServiceHandler(reactor), "tcp:0:interface=127.0.0.1", reactor=reactor, stats=stats
    )
    service.startService()
    return service.listening


def listenTTwisted(reactor, genDir):
    sys.path.insert(0, genDir)
    from benchgen import TestService
    from thrift.protocol.TBinaryProtocol import TBinaryProtocolAcceleratedFactory
    from thrift.transport import TTwisted
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from zope.interface import implementer

    @implementer(TestService.Iface)
    class Handler:
        def query(self, x):
            return x + x

        def delayedQuery(self, x, delayMs):
            from twisted.internet.task import deferLater

            return deferLater(reactor, delayMs / 1000.0, lambda: x + x)

        def raiseError(self, errorCode):
            raise TestService.InvalidQueryException(errorCode=errorCode)

        def log(self, message):
            pass

    class Factory(TTwisted.ThriftServerFactory):
        noisy = False

        def buildProtocol(self, addr):
            p = TTwisted.ThriftServerFactory.buildProtocol(self, addr)
            original = p.connectionMade

            def connectionMade():
                p.transport.setTcpNoDelay(True)
                original()

            p.connectionMade = connectionMade
            return p

    pfactory = TBinaryProtocolAcceleratedFactory()
    factory = Factory(TestService.Processor(Handler()), pfactory)
    return TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["echo", "echo-batched", "thriftmux", "thrift", "ttwisted"])
    parser.add_argument("--no-stats", action="store_true", help="thriftmux, thrift: stats=False")
    parser.add_argument("--gen-dir", help="ttwisted: where benchgen/ was generated")
    parser.add_argument("--max-pending", type=int, help="thriftmux: requests one connection may have running")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once listening")
    args = parser.parse_args()

    from twisted.internet import reactor

    if args.kind in ("echo", "echo-batched"):
        d = listenEcho(reactor, args.kind == "echo-batched")
    elif args.kind == "thriftmux":
        d = listenThriftMux(reactor, not args.no_stats, args.max_pending)
    elif args.kind == "thrift":
        d = listenThrift(reactor, not args.no_stats)
    else:
        d = listenTTwisted(reactor, args.gen_dir)

    def listening(port):
        if args.gc_freeze:
            freezeHeap()
        emit(dict(describeRuntime(), port=port.getHost().port, kind=args.kind))

    def failed(f):
        sys.stderr.write("cannot listen: %s\n" % (f.getTraceback(),))
        reactor.stop()

    d.addCallbacks(listening, failed)
    reactor.run()


if __name__ == "__main__":
    main()
