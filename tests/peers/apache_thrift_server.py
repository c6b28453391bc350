"""
Apache Thrift's own Python server as an interop peer of txscales' plain
Thrift client.

Run it with the test suite's interpreter (the C{thrift} package is installed
there)::

    python tests/peers/apache_thrift_server.py [--server simple|threaded]
        [--transport framed|buffered] [--protocol binary|compact]
        [--host 127.0.0.1] [--port 0] [--random-delay MS] [--seed N]

It serves the demo C{TestService} (C{txscales/demo/TestService.thrift}) with
C{TSimpleServer} (one connection at a time) or C{TThreadedServer} (a thread
per connection), C{TFramedTransport} or C{TBufferedTransport}, and
C{TBinaryProtocol} or C{TCompactProtocol}:

  - C{query(x)} answers C{x + x}, after a random delay of 0 to MS
    milliseconds when C{--random-delay} is given;
  - C{delayedQuery(x, ms)} answers C{x + x} after C{ms} milliseconds;
  - C{raiseError(code)} raises C{InvalidQueryException(errorCode=code)};
  - the one-way C{log(message)} prints C{LOG <message>} on stdout.

It prints C{LISTENING <port>} on stdout once it accepts connections, and
runs until killed.  Like C{thrift_client.py}, it imports nothing from
txscales: the generated modules are loaded straight from
C{txscales/demo/gen/}.
"""

import argparse
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from thrift_client import loadGen  # noqa: E402


class Handler:
    """
    The demo service, synchronously.
    """

    def __init__(self, ttypes, randomDelay, seed):
        self._ttypes = ttypes
        self._randomDelay = randomDelay
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def query(self, x):
        if self._randomDelay:
            with self._lock:
                delay = self._random.uniform(0, self._randomDelay)
            time.sleep(delay / 1000.0)
        return x + x

    def delayedQuery(self, x, delayMs):
        time.sleep(delayMs / 1000.0)
        return x + x

    def raiseError(self, errorCode):
        raise self._ttypes.InvalidQueryException(errorCode=errorCode)

    def log(self, message):
        sys.stdout.write("LOG %s\n" % (message,))
        sys.stdout.flush()


def parseArgs(argv):
    p = argparse.ArgumentParser(description="Apache Thrift server interop peer")
    p.add_argument("--server", choices=["simple", "threaded"], default="threaded")
    p.add_argument("--transport", choices=["framed", "buffered"], default="framed")
    p.add_argument("--protocol", choices=["binary", "compact"], default="binary")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--random-delay", type=float, default=0.0, help="query: sleep uniformly 0..MS ms")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parseArgs(sys.argv[1:] if argv is None else argv)
    TestService, ttypes = loadGen()
    from thrift.protocol.TBinaryProtocol import TBinaryProtocolFactory
    from thrift.protocol.TCompactProtocol import TCompactProtocolFactory
    from thrift.server.TServer import TSimpleServer, TThreadedServer
    from thrift.transport.TSocket import TServerSocket
    from thrift.transport.TTransport import TBufferedTransportFactory, TFramedTransportFactory

    processor = TestService.Processor(Handler(ttypes, args.random_delay, args.seed))
    socket = TServerSocket(host=args.host, port=args.port)
    transportFactory = TFramedTransportFactory() if args.transport == "framed" else TBufferedTransportFactory()
    protocolFactory = TBinaryProtocolFactory() if args.protocol == "binary" else TCompactProtocolFactory()
    if args.server == "simple":
        server = TSimpleServer(processor, socket, transportFactory, protocolFactory)
    else:
        server = TThreadedServer(processor, socket, transportFactory, protocolFactory, daemon=True)
    # Bind now to learn the port; serve() would bind again otherwise.
    socket.listen()
    socket.listen = lambda: None
    sys.stdout.write("LISTENING %d\n" % (socket.handle.getsockname()[1],))
    sys.stdout.flush()
    server.serve()


if __name__ == "__main__":
    sys.exit(main())
