"""
A thriftpy2 server as an interop peer of txscales' plain Thrift client.

Run it with the interpreter of the thriftpy2 peer virtualenv
(C{scripts/setup-thriftpy2-peer} makes C{.peers/thriftpy2/})::

    .peers/thriftpy2/bin/python tests/peers/thriftpy2_server.py
        [--server simple|threaded] [--transport framed|buffered]
        [--protocol binary|compact] [--host 127.0.0.1] [--port 0]
        [--random-delay MS] [--seed N]

It serves the demo C{TestService}, loaded by thriftpy2 from
C{txscales/demo/TestService.thrift} (no generated code), with thriftpy2's
C{TSimpleServer} or C{TThreadedServer}: C{query(x)} answers C{x + x}
(after a random delay of 0 to MS milliseconds with C{--random-delay});
C{delayedQuery(x, ms)} answers it after C{ms} milliseconds;
C{raiseError(code)} raises C{InvalidQueryException(errorCode=code)}; the
one-way C{log(message)} prints C{LOG <message>} on stdout.  It prints
C{LISTENING <port>} once it accepts connections and runs until killed.
"""

import argparse
import os
import random
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IDL = os.path.join(REPO, "txscales", "demo", "TestService.thrift")


class Handler:
    """
    The demo service, synchronously.
    """

    def __init__(self, module, randomDelay=0.0, seed=0):
        self._module = module
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
        raise self._module.InvalidQueryException(errorCode=errorCode)

    def log(self, message):
        sys.stdout.write("LOG %s\n" % (message,))
        sys.stdout.flush()


def factories(transport, protocol):
    """
    @return: thriftpy2's (transport factory, protocol factory) by name.
    """
    from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
    from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory

    transportFactory = TFramedTransportFactory() if transport == "framed" else TBufferedTransportFactory()
    protocolFactory = TBinaryProtocolFactory() if protocol == "binary" else TCompactProtocolFactory()
    return transportFactory, protocolFactory


def main(argv=None):
    p = argparse.ArgumentParser(description="thriftpy2 server interop peer")
    p.add_argument("--server", choices=["simple", "threaded"], default="threaded")
    p.add_argument("--transport", choices=["framed", "buffered"], default="framed")
    p.add_argument("--protocol", choices=["binary", "compact"], default="binary")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--random-delay", type=float, default=0.0, help="query: sleep uniformly 0..MS ms")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)

    import thriftpy2
    from thriftpy2.server import TSimpleServer, TThreadedServer
    from thriftpy2.thrift import TProcessor
    from thriftpy2.transport import TServerSocket

    module = thriftpy2.load(IDL, module_name="TestService_thrift")
    processor = TProcessor(module.TestService, Handler(module, args.random_delay, args.seed))
    socket = TServerSocket(host=args.host, port=args.port, client_timeout=None)
    transportFactory, protocolFactory = factories(args.transport, args.protocol)
    options = dict(iprot_factory=protocolFactory, itrans_factory=transportFactory)
    if args.server == "simple":
        server = TSimpleServer(processor, socket, **options)
    else:
        server = TThreadedServer(processor, socket, daemon=True, **options)
    # Bind now to learn the port; serve() would bind again otherwise.
    socket.listen()
    socket.listen = lambda: None
    sys.stdout.write("LISTENING %d\n" % (socket.sock.getsockname()[1],))
    sys.stdout.flush()
    server.serve()


if __name__ == "__main__":
    sys.exit(main())
