"""
Apache Thrift's own Python client as an interop peer of a ThriftMux server
(which serves framed Thrift clients on its Mux port: "downgrade").

Run it with the test suite's interpreter (the C{thrift} package is installed
there)::

    python tests/peers/thrift_client.py --port P [--host 127.0.0.1]
        [--transport framed|buffered] [--protocol binary|compact]
        [--count N] [--errors M] [--timeout S]

It uses C{TSocket} + C{TFramedTransport} (or C{TBufferedTransport}, which a
ThriftMux server does not serve: only framed Thrift is detected) + 
C{TBinaryProtocol} (or C{TCompactProtocol}) and the generated demo
C{TestService} client (C{txscales/demo/TestService.thrift}), on one
connection:

  1. N C{query("q<i>")} calls, each answer checked against C{x + x};
  2. one C{delayedQuery("d", 20)} call, checked;
  3. M C{raiseError(7)} calls, each of which must raise
     C{InvalidQueryException(errorCode=7)};
  4. one one-way C{log("hello")} call followed by C{query("after")}, which
     must still be answered correctly.

Output: diagnostics go to stderr; the last stdout line is one JSON object:
C{{"ok", "wrong", "errors", "errorTypes", "exceptionsOk", "afterOnewayOk",
"elapsed", ...}}: C{ok} counts correct answers of steps 1 and 2, C{wrong}
counts wrong answers (or wrong exceptions) of any step, C{errors} counts
calls that failed with anything else (transport errors...).  The exit code
is 0 when the run completed (the caller judges the JSON), 2 when it could not
connect (the JSON still printed, with C{"connectError"}), another non-zero
code on a crash.

This file imports nothing from txscales: it loads the generated Thrift
modules straight from C{txscales/demo/gen/} under their own module names
without executing any C{txscales} package code.
"""

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN_PACKAGE = "txscales.demo.gen"


def loadGen(repo=REPO):
    """
    Load C{txscales.demo.gen.TestService} and C{.ttypes} from the work tree
    without executing C{txscales/__init__.py} or C{txscales/demo/__init__.py}.
    """
    genDir = os.path.join(repo, "txscales", "demo", "gen")
    if GEN_PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            GEN_PACKAGE, os.path.join(genDir, "__init__.py"), submodule_search_locations=[genDir]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[GEN_PACKAGE] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[GEN_PACKAGE]
            raise
    return importlib.import_module(GEN_PACKAGE + ".TestService"), importlib.import_module(GEN_PACKAGE + ".ttypes")


class Tally:
    """
    The counts that end up in the JSON line.
    """

    def __init__(self):
        self.ok = 0
        self.wrong = 0
        self.errors = 0
        self.errorTypes = []
        self.samples = []

    def answer(self, expected, got):
        if got == expected:
            self.ok += 1
            return True
        self.wrong += 1
        self.sample({"expected": expected, "got": repr(got)})
        return False

    def failure(self, what, exc):
        self.errors += 1
        name = type(exc).__name__
        if name not in self.errorTypes:
            self.errorTypes.append(name)
        self.sample({"call": what, "error": "%s: %s" % (name, exc)})

    def sample(self, item):
        if len(self.samples) < 10:
            self.samples.append(item)


def parseArgs(argv):
    p = argparse.ArgumentParser(description="Apache Thrift client interop peer")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--transport", choices=["framed", "buffered"], default="framed")
    p.add_argument("--protocol", choices=["binary", "compact"], default="binary")
    p.add_argument("--count", type=int, default=100, help="query calls")
    p.add_argument("--errors", type=int, default=3, help="raiseError(7) calls")
    p.add_argument("--timeout", type=float, default=5.0, help="socket timeout in seconds")
    return p.parse_args(argv)


def main(argv=None):
    args = parseArgs(sys.argv[1:] if argv is None else argv)
    TestService, ttypes = loadGen()
    from thrift.protocol.TBinaryProtocol import TBinaryProtocol
    from thrift.protocol.TCompactProtocol import TCompactProtocol
    from thrift.transport.TSocket import TSocket
    from thrift.transport.TTransport import TBufferedTransport, TFramedTransport

    socket = TSocket(args.host, args.port)
    socket.setTimeout(args.timeout * 1000.0)
    transport = (TFramedTransport if args.transport == "framed" else TBufferedTransport)(socket)
    protocol = (TBinaryProtocol if args.protocol == "binary" else TCompactProtocol)(transport)
    client = TestService.Client(protocol)
    tally = Tally()
    out = {"transport": args.transport, "protocol": args.protocol, "count": args.count}
    started = time.time()

    def report():
        out.update(
            ok=tally.ok,
            wrong=tally.wrong,
            errors=tally.errors,
            errorTypes=tally.errorTypes,
            samples=tally.samples,
            elapsed=round(time.time() - started, 4),
        )
        sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
        sys.stdout.flush()

    try:
        transport.open()
    except Exception as e:
        out["connectError"] = "%s: %s" % (type(e).__name__, e)
        report()
        return 2

    for i in range(args.count):
        x = "q%d" % i
        try:
            tally.answer(x + x, client.query(x))
        except Exception as e:
            tally.failure("query", e)

    try:
        tally.answer("dd", client.delayedQuery("d", 20))
    except Exception as e:
        tally.failure("delayedQuery", e)

    exceptionsOk = 0
    for _ in range(args.errors):
        try:
            got = client.raiseError(7)
        except ttypes.InvalidQueryException as e:
            if e.errorCode == 7:
                exceptionsOk += 1
            else:
                tally.wrong += 1
                tally.sample({"expected": "InvalidQueryException(7)", "got": repr(e)})
        except Exception as e:
            tally.failure("raiseError", e)
        else:
            tally.wrong += 1
            tally.sample({"expected": "InvalidQueryException(7)", "got": repr(got)})
    out["exceptionsOk"] = exceptionsOk

    afterOnewayOk = False
    try:
        client.log("hello")
        got = client.query("after")
        afterOnewayOk = got == "afterafter"
        if not afterOnewayOk:
            tally.wrong += 1
            tally.sample({"expected": "afterafter", "got": repr(got)})
    except Exception as e:
        tally.failure("log+query", e)
    out["afterOnewayOk"] = afterOnewayOk

    try:
        transport.close()
    except Exception as e:
        print("close failed: %r" % (e,), file=sys.stderr)
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
