"""
A thriftpy2 client as an interop peer of txscales' plain Thrift server.

Run it with the interpreter of the thriftpy2 peer virtualenv
(C{scripts/setup-thriftpy2-peer} makes C{.peers/thriftpy2/})::

    .peers/thriftpy2/bin/python tests/peers/thriftpy2_client.py --port P
        [--host 127.0.0.1] [--transport framed|buffered]
        [--protocol binary|compact] [--count N] [--errors M] [--timeout S]

On one connection, with the demo C{TestService} loaded by thriftpy2 from
C{txscales/demo/TestService.thrift}, it runs the same steps as
C{thrift_client.py} (Apache Thrift's client): N C{query("q<i>")} calls,
one C{delayedQuery("d", 20)}, M C{raiseError(7)} calls that must raise
C{InvalidQueryException(errorCode=7)}, and the one-way C{log("hello")}
followed by C{query("after")}.  The last stdout line is one JSON object with
the same keys (C{ok}, C{wrong}, C{errors}, C{errorTypes}, C{exceptionsOk},
C{afterOnewayOk}, C{elapsed}, ...); the exit code is 0 when the run
completed, 2 when it could not connect.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from thriftpy2_server import IDL, factories  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description="thriftpy2 client interop peer")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--transport", choices=["framed", "buffered"], default="framed")
    p.add_argument("--protocol", choices=["binary", "compact"], default="binary")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--errors", type=int, default=3)
    p.add_argument("--timeout", type=float, default=5.0, help="socket timeout in seconds")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)

    import thriftpy2
    from thriftpy2.rpc import make_client

    module = thriftpy2.load(IDL, module_name="TestService_thrift")
    transportFactory, protocolFactory = factories(args.transport, args.protocol)
    out = {"transport": args.transport, "protocol": args.protocol, "count": args.count, "peer": "thriftpy2"}
    counts = {"ok": 0, "wrong": 0, "errors": 0}
    errorTypes = []
    samples = []
    started = time.time()

    def report():
        out.update(counts, errorTypes=errorTypes, samples=samples[:10], elapsed=round(time.time() - started, 4))
        sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
        sys.stdout.flush()

    def answer(expected, got):
        if got == expected:
            counts["ok"] += 1
            return True
        counts["wrong"] += 1
        samples.append({"expected": expected, "got": repr(got)})
        return False

    def failure(what, e):
        counts["errors"] += 1
        if type(e).__name__ not in errorTypes:
            errorTypes.append(type(e).__name__)
        samples.append({"call": what, "error": "%s: %s" % (type(e).__name__, e)})

    try:
        client = make_client(
            module.TestService,
            args.host,
            args.port,
            proto_factory=protocolFactory,
            trans_factory=transportFactory,
            timeout=int(args.timeout * 1000),
        )
    except Exception as e:
        out["connectError"] = "%s: %s" % (type(e).__name__, e)
        report()
        return 2

    for i in range(args.count):
        x = "q%d" % i
        try:
            answer(x + x, client.query(x))
        except Exception as e:
            failure("query", e)
    try:
        answer("dd", client.delayedQuery("d", 20))
    except Exception as e:
        failure("delayedQuery", e)

    exceptionsOk = 0
    for _ in range(args.errors):
        try:
            got = client.raiseError(7)
        except module.InvalidQueryException as e:
            if e.errorCode == 7:
                exceptionsOk += 1
            else:
                counts["wrong"] += 1
                samples.append({"expected": "InvalidQueryException(7)", "got": repr(e)})
        except Exception as e:
            failure("raiseError", e)
        else:
            counts["wrong"] += 1
            samples.append({"expected": "InvalidQueryException(7)", "got": repr(got)})
    out["exceptionsOk"] = exceptionsOk

    afterOnewayOk = False
    try:
        client.log("hello")
        got = client.query("after")
        afterOnewayOk = got == "afterafter"
        if not afterOnewayOk:
            counts["wrong"] += 1
            samples.append({"expected": "afterafter", "got": repr(got)})
    except Exception as e:
        failure("log+query", e)
    out["afterOnewayOk"] = afterOnewayOk
    client.close()
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
