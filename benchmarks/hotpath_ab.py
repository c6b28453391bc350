"""
An A/B of the ThriftMux hot path (L{hotpath}'s C{thriftmux} kind) between
an earlier commit of txscales and this checkout, in one process, the two
interleaved round by round: on a busy machine, runs made one after the
other differ by more than most changes do, while interleaved rounds see the
same load.  Prints one JSON line: the median and lowest microseconds of CPU
per call on each side, for each variant.

    python benchmarks/hotpath_ab.py [--base main] [--rounds 21] [--tracing]

The base commit's C{txscales} package is copied out of git under another
name (C{txscales_base}, its imports renamed), so that both import side by
side; it uses this checkout's plugins, whose discovery of C{tcp://} is
pointed at its own modules.  With C{--tracing}, a third variant runs this
checkout with a tracer on and nothing sampled (L{hotpath.NullTracer}).
Both trees run pure Python (C{TXSCALES_NO_EXTENSIONS=1}).
"""

import argparse
import importlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

os.environ["TXSCALES_NO_EXTENSIONS"] = "1"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import hotpath  # noqa: E402
from _common import payload  # noqa: E402

BASE = "txscales_base"


def exportBase(commit, folder):
    """
    Write C{commit}'s C{txscales} package into C{folder} as L{BASE}.
    """
    archive = subprocess.run(
        ["git", "-C", REPO, "archive", commit, "txscales"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    target = os.path.join(folder, BASE)
    os.rename(os.path.join(folder, "txscales"), target)
    name = re.compile(r"\btxscales(?=[.\s,]|$)", re.MULTILINE)
    for dirpath, _, files in os.walk(target):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                with open(path, encoding="utf-8") as source:
                    text = source.read()
                with open(path, "w", encoding="utf-8") as out:
                    out.write(name.sub(BASE, text))


def pointPluginsAtBase():
    """
    Make the base package find this checkout's plugins (which name this
    checkout's interfaces), its C{tcp://} scheme resolving with the base's
    own discovery code.
    """
    plugins = importlib.import_module(BASE + "._plugins")
    importlib.import_module(BASE + ".thriftmux")
    ours = importlib.import_module("txscales._plugins")
    interfaces = importlib.import_module("txscales.interfaces")

    class Static:
        scheme = "tcp"

        def resolve(self, uri, reactor, **options):
            module = importlib.import_module(BASE + ".discovery._resolve")
            return module.StaticDestination(module.parseStatic(uri))

    def findPlugin(interface, name, what, key="name"):
        if key == "scheme" and name == "tcp":
            return Static()
        return ours.findPlugin(getattr(interfaces, interface.__name__), name, what, key)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith(BASE) and hasattr(module, "findPlugin"):
            module.findPlugin = findPlugin
    plugins.findPlugin = findPlugin


def thriftMuxSetup(package, registry):
    """
    L{hotpath.thriftMuxSetup} (with stats) for the txscales package named
    C{package}, its metrics in C{registry}.
    """
    from twisted.internet.defer import succeed

    TestService = importlib.import_module(package + ".demo.gen.TestService")
    handler = importlib.import_module(package + ".demo.handler")
    thriftmux = importlib.import_module(package + ".thriftmux")
    server = importlib.import_module(package + ".thriftmux._server")
    Stats = importlib.import_module(package + ".stats").Stats
    pair = hotpath.Pair()
    clock = hotpath.WallClock()
    factory = server.serverFactory(
        TestService.Iface, handler.TestServiceHandler(clock), clock, stats=Stats("server", "hotpath", registry)
    )

    class Endpoint:
        def connect(self, clientFactory):
            pair.connect(clientFactory.buildProtocol(None), factory.buildProtocol(None))
            return succeed(pair.client)

    client = thriftmux.ThriftMux.newClient(
        TestService.Iface,
        "tcp://127.0.0.1:9",
        reactor=clock,
        registry=registry,
        pingInterval=None,
        endpointFactory=lambda reactor, host, port, timeout: Endpoint(),
    )
    x = payload(32)
    return pair, (lambda: client.query(x)), x + x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="main")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--tracing", action="store_true")
    args = parser.parse_args()
    from prometheus_client import CollectorRegistry

    from txscales import tracing
    from txscales._sampling import SAMPLER

    folder = tempfile.mkdtemp(prefix="txscales-ab-")
    try:
        exportBase(args.base, folder)
        sys.path.insert(0, folder)
        pointPluginsAtBase()
        registries = {BASE: CollectorRegistry(), "txscales": CollectorRegistry()}
        variants = {
            "base": lambda: thriftMuxSetup(BASE, registries[BASE]),
            "checkout": lambda: thriftMuxSetup("txscales", registries["txscales"]),
        }
        if args.tracing:

            def traced():
                tracing.useTracer(hotpath.NullTracer())
                SAMPLER.rate = 0.0
                return thriftMuxSetup("txscales", registries["txscales"])

            variants["checkout, tracing on"] = traced
        runs = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, setup in variants.items():
                runs[name].append(hotpath.measure(setup, 100, args.calls, args.calls // 5))
                tracing.useTracer(None)
        out = {"kind": "hotpath-ab", "base": args.base, "rounds": args.rounds, "us": {}}
        for name, results in runs.items():
            out["us"][name] = {
                side: {
                    "median": round(statistics.median(r[side + "Us"] for r in results), 2),
                    "min": round(min(r[side + "Us"] for r in results), 2),
                }
                for side in ("client", "server")
            }
        sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
