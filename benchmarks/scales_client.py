"""
Scales' own ThriftMux client (scales-rpc, gevent) as a benchmark client.
Run it with the interpreter of Scales' virtualenv (C{.peers/scales}, made
by C{scripts/setup-scales-peer}), never with txscales' own: gevent and
Twisted do not share a process.

    .peers/scales/bin/python benchmarks/scales_client.py --port P --size 32 --concurrency 100

With C{--concurrency} C, C greenlets of a gevent pool each call
C{query_async(x).get()} in a loop, so C calls are outstanding; after
C{--warmup} seconds the answers are counted in C{--windows} windows of
C{--window} seconds.  Every answer is checked against C{x + x}.  Prints one
JSON line like the Twisted clients (C{rates}, C{best}, C{median}).

It imports nothing from txscales: the generated demo modules are loaded
straight from C{txscales/demo/gen/}, as C{tests/peers/scales_client.py}
does.
"""

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN_PACKAGE = "txscales.demo.gen"


def loadGen():
    genDir = os.path.join(REPO, "txscales", "demo", "gen")
    spec = importlib.util.spec_from_file_location(
        GEN_PACKAGE, os.path.join(genDir, "__init__.py"), submodule_search_locations=[genDir]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[GEN_PACKAGE] = module
    spec.loader.exec_module(module)
    return importlib.import_module(GEN_PACKAGE + ".TestService")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0, help="Scales' per-call timeout")
    args = parser.parse_args()

    TestService = loadGen()
    import gevent
    from gevent.pool import Pool
    from scales.thriftmux import ThriftMux

    assert "twisted" not in sys.modules, "the Scales client must not import Twisted"

    client = (
        ThriftMux.NewBuilder(TestService.Iface)
        .SetUri("tcp://127.0.0.1:%d" % (args.port,))
        .SetTimeout(args.timeout)
        .SetOpenTimeout(10.0)
        .Build()
    )
    x = ("abcdefghijklmnopqrstuvwxyz" * (args.size // 26 + 1))[: args.size]
    expected = x + x
    state = {"answered": 0, "wrong": 0, "failures": {}, "stop": False}

    first = client.query(x)
    if first != expected:
        raise SystemExit("wrong first answer")

    def worker():
        while not state["stop"]:
            try:
                answer = client.query_async(x).get()
            except Exception as e:
                name = type(e).__name__
                state["failures"][name] = state["failures"].get(name, 0) + 1
                continue
            if answer == expected:
                state["answered"] += 1
            else:
                state["wrong"] += 1

    pool = Pool(args.concurrency)
    for _ in range(args.concurrency):
        pool.spawn(worker)
    gevent.sleep(args.warmup)
    rates = []
    cpuPerCall = []
    mark = (time.perf_counter(), time.process_time(), state["answered"])
    for _ in range(args.windows):
        gevent.sleep(args.window)
        now, cpu, answered = time.perf_counter(), time.process_time(), state["answered"]
        rates.append((answered - mark[2]) / (now - mark[0]))
        if answered > mark[2]:
            cpuPerCall.append((cpu - mark[1]) / (answered - mark[2]))
        mark = (now, cpu, answered)
    state["stop"] = True
    pool.join(timeout=30)
    ordered = sorted(rates)
    from importlib.metadata import version

    out = {
        "kind": "scales",
        "mode": "throughput",
        "size": args.size,
        "concurrency": args.concurrency,
        "rates": [round(r, 1) for r in rates],
        "best": round(ordered[-1], 1),
        "median": round(ordered[len(ordered) // 2], 1),
        "wrong": state["wrong"],
        "answered": state["answered"] + 1,
        "clientCpuUs": round(min(cpuPerCall) * 1e6, 2) if cpuPerCall else None,
        "failures": state["failures"],
        "python": sys.version.split()[0],
        "gevent": gevent.__version__,
        "scales": version("scales-rpc"),
        "ok": True,
    }
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    sys.stdout.flush()
    try:
        client.DispatcherClose()
    except Exception:
        pass
    # Lingering Scales greenlets (ping loop, resurrector) have nothing left
    # to do: skip the interpreter's teardown.
    os._exit(0)


if __name__ == "__main__":
    main()
