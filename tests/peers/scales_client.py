"""
Scales' own ThriftMux client as an independent interop peer.

Run it with the interpreter of the virtualenv that C{scripts/setup-scales-peer}
makes, never with the test suite's own (gevent and Twisted must not share a
process)::

    .peers/scales/bin/python tests/peers/scales_client.py --port P --mode MODE \\
        [--host 127.0.0.1] [--count N] [--timeout S] [--concurrency C] \\
        [--client-id ID] [--delay-ms MS] [--open-timeout S] [--max-seconds S]

It talks to the demo C{TestService} (C{txscales/demo/TestService.thrift}):
C{query(x)} answers C{x + x}, C{delayedQuery(x, delayMs)} answers C{x + x}
after C{delayMs}, C{raiseError(code)} raises
C{InvalidQueryException(errorCode=code)}.

Modes:
  - C{query}: N sequential C{query("x<i>")} calls, each answer checked.
  - C{concurrent}: N C{query_async("c<i>")} calls with C outstanding at once.
  - C{timeouts}: N rounds of: a slow C{delayedQuery("s<i>", delayMs)} with
    delayMs above the client timeout (must time out), a fast
    C{query("f<i>")} while the slow one is outstanding, and a fast
    C{query("g<i>")} right after the slow one timed out (when its tag may be
    reused); then it waits out the delay and makes one last call. Every fast
    answer is checked, so a timed-out call's late answer reaching another call
    counts as C{wrong}.
  - C{error}: N C{raiseError(7)} calls (then one C{query} to show that the
    connection still works); C{ok} counts the calls that surfaced
    C{InvalidQueryException(errorCode=7)} (Scales wraps it in
    C{ScalesError.inner_exception}), C{wrong} counts calls that returned or
    surfaced anything else.

Output: diagnostics go to stderr; the last stdout line is one JSON object:
C{{"ok", "wrong", "timeouts", "errors", "errorTypes", "elapsed", ...}} plus
per-mode details and C{"wire"} counters taken from Scales' transport (pings
sent/answered, Tdiscarded sent, replies by type, orphan replies, shutdowns).
The exit code is 0 when the run completed (the caller judges the JSON), 3 when
the C{--max-seconds} watchdog fired (the JSON, marked C{"watchdog": true}, is
still printed), and another non-zero code on a crash.

This file imports nothing from txscales but the generated Thrift modules, which
it loads straight from C{txscales/demo/gen/} under their own module names
without executing any C{txscales} or C{txscales.demo} package code.
"""

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN_PACKAGE = "txscales.demo.gen"

DEFAULT_COUNTS = {"query": 100, "concurrent": 200, "timeouts": 5, "error": 3}
DEFAULT_TIMEOUTS = {"query": 5.0, "concurrent": 5.0, "timeouts": 0.5, "error": 5.0}


def load_gen(repo=REPO):
    """
    Load C{txscales.demo.gen.TestService} and C{.ttypes} from the work tree
    without importing C{txscales/__init__.py} or C{txscales/demo/__init__.py}:
    the gen package is registered directly in C{sys.modules}, so its relative
    imports resolve against it and no parent package is ever executed.
    """
    gen_dir = os.path.join(repo, "txscales", "demo", "gen")
    if GEN_PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            GEN_PACKAGE,
            os.path.join(gen_dir, "__init__.py"),
            submodule_search_locations=[gen_dir],
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[GEN_PACKAGE] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[GEN_PACKAGE]
            raise
    service = importlib.import_module(GEN_PACKAGE + ".TestService")
    ttypes = importlib.import_module(GEN_PACKAGE + ".ttypes")
    return service, ttypes


class WireStats(object):
    """
    Counters taken by wrapping a few methods of Scales' ThriftMux transport
    (C{scales.thriftmux.sink.SocketTransportSink}). The wrappers only observe;
    any error in them is swallowed so that they never change Scales' behaviour.
    """

    REPLY_NAMES = {
        0xFE: "Rdispatch",
        0xBE: "Rdiscarded",
        0xBF: "Rping",
        0x7F: "Rerr(0x7f)",
        0x80: "Rerr(0x80)",
        0xC0: "Rdrain",
    }

    def __init__(self):
        self.t0 = time.time()
        self.pingsSent = 0
        self.pingsAnswered = 0
        self.firstPingAt = None
        self.discardsSent = 0
        self.discardedTags = []
        self.replies = {}
        self.orphanReplies = 0
        self.shutdowns = []

    def install(self):
        from scales.thriftmux import sink as tsink

        cls = tsink.SocketTransportSink
        stats = self

        def guarded(fn):
            try:
                fn()
            except Exception:
                pass

        orig_send_ping = cls._SendPingMessage

        def _SendPingMessage(self_):
            def note():
                stats.pingsSent += 1
                if stats.firstPingAt is None:
                    stats.firstPingAt = round(time.time() - stats.t0, 3)
            guarded(note)
            return orig_send_ping(self_)

        orig_on_ping = cls._OnPingResponse

        def _OnPingResponse(self_, msg_type, stream):
            def note():
                stats.pingsAnswered += 1
                stats._reply(0xBF)
            guarded(note)
            return orig_on_ping(self_, msg_type, stream)

        orig_on_timeout = cls._OnTimeout

        def _OnTimeout(self_, tag):
            def note():
                if tag:
                    stats.discardsSent += 1
                    if len(stats.discardedTags) < 50:
                        stats.discardedTags.append(tag)
            guarded(note)
            return orig_on_timeout(self_, tag)

        orig_tagged = cls._ProcessTaggedReply

        def _ProcessTaggedReply(self_, tag, stream):
            def note():
                stats._reply(stream.getvalue()[0])
                if tag not in self_._tag_map:
                    stats.orphanReplies += 1
            guarded(note)
            return orig_tagged(self_, tag, stream)

        orig_shutdown = cls._Shutdown

        def _Shutdown(self_, reason, fault=True):
            def note():
                if self_.isActive and len(stats.shutdowns) < 20:
                    stats.shutdowns.append(str(reason))
            guarded(note)
            return orig_shutdown(self_, reason, fault)

        cls._SendPingMessage = _SendPingMessage
        cls._OnPingResponse = _OnPingResponse
        cls._OnTimeout = _OnTimeout
        cls._ProcessTaggedReply = _ProcessTaggedReply
        cls._Shutdown = _Shutdown

    def _reply(self, type_byte):
        name = self.REPLY_NAMES.get(type_byte, "0x%02x" % type_byte)
        self.replies[name] = self.replies.get(name, 0) + 1

    def as_dict(self):
        return {
            "pingsSent": self.pingsSent,
            "pingsAnswered": self.pingsAnswered,
            "firstPingAt": self.firstPingAt,
            "discardsSent": self.discardsSent,
            "discardedTags": list(self.discardedTags),
            "replies": dict(self.replies),
            "orphanReplies": self.orphanReplies,
            "shutdowns": list(self.shutdowns),
        }


class Results(object):
    """The tallies that end up in the JSON line."""

    def __init__(self, mode):
        self.mode = mode
        self.ok = 0
        self.wrong = 0
        self.timeouts = 0
        self.errors = 0
        self.errorTypes = []
        self.errorCounts = {}
        self.errorSamples = []
        self.wrongSamples = []
        self.latenciesMs = []
        self.details = {}

    def answer(self, expected, got, started):
        if got == expected:
            self.ok += 1
            self.latenciesMs.append((time.time() - started) * 1000.0)
            return True
        self.wrong += 1
        if len(self.wrongSamples) < 10:
            self.wrongSamples.append({"expected": expected, "got": repr(got)})
        return False

    def failure(self, exc, timeout_type):
        """Count an exception; return its description."""
        if isinstance(exc, timeout_type):
            self.timeouts += 1
            return "TimeoutError"
        self.errors += 1
        desc = describe(exc)
        if desc not in self.errorCounts:
            self.errorTypes.append(desc)
            self.errorCounts[desc] = 0
        self.errorCounts[desc] += 1
        if len(self.errorSamples) < 5:
            self.errorSamples.append({"type": desc, "message": short(exc)})
        return desc

    def as_dict(self, elapsed):
        lat = sorted(self.latenciesMs)

        def pct(p):
            if not lat:
                return None
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3)

        out = {
            "ok": self.ok,
            "wrong": self.wrong,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "errorTypes": self.errorTypes,
            "elapsed": round(elapsed, 4),
            "mode": self.mode,
            "errorCounts": self.errorCounts,
            "errorSamples": self.errorSamples,
            "wrongSamples": self.wrongSamples,
            "latencyMs": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        }
        out.update(self.details)
        return out


def describe(exc):
    """C{"ScalesError(InvalidQueryException)"}, C{"ServerError"}, ..."""
    inner = getattr(exc, "inner_exception", None)
    if inner is not None:
        return "%s(%s)" % (type(exc).__name__, type(inner).__name__)
    return type(exc).__name__


def short(exc, limit=300):
    inner = getattr(exc, "inner_exception", None)
    text = repr(inner) if inner is not None else repr(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def run_query(client, args, res, env):
    for i in range(args.count):
        arg = "x%d" % i
        started = time.time()
        try:
            res.answer(arg + arg, client.query(arg), started)
        except Exception as e:
            res.failure(e, env["TimeoutError"])


def run_concurrent(client, args, res, env):
    import gevent
    from gevent.pool import Pool

    state = {"inFlight": 0, "maxInFlight": 0}

    def one(i):
        arg = "c%d" % i
        started = time.time()
        state["inFlight"] += 1
        state["maxInFlight"] = max(state["maxInFlight"], state["inFlight"])
        try:
            res.answer(arg + arg, client.query_async(arg).get(), started)
        except Exception as e:
            res.failure(e, env["TimeoutError"])
        finally:
            state["inFlight"] -= 1

    pool = Pool(args.concurrency)
    for i in range(args.count):
        pool.spawn(one, i)
    pool.join()
    gevent.sleep(0)
    res.details["concurrency"] = args.concurrency
    res.details["maxInFlight"] = state["maxInFlight"]


def run_timeouts(client, args, res, env):
    import gevent

    TimeoutError = env["TimeoutError"]
    d = {
        "delayMs": args.delay_ms,
        "slowCalls": 0,
        "slowTimedOut": 0,
        "slowAnswered": 0,
        "slowErrors": 0,
        "slowTimeoutAfterMs": [],
        "fastCalls": 0,
        "fastOk": 0,
        "fastTimedOut": 0,
        "finalOk": None,
    }

    def fast(arg):
        d["fastCalls"] += 1
        started = time.time()
        try:
            if res.answer(arg + arg, client.query(arg), started):
                d["fastOk"] += 1
        except Exception as e:
            if res.failure(e, TimeoutError) == "TimeoutError":
                d["fastTimedOut"] += 1

    for i in range(args.count):
        slow_arg = "s%d" % i
        d["slowCalls"] += 1
        started = time.time()
        slow = client.delayedQuery_async(slow_arg, args.delay_ms)
        gevent.sleep(0.01)
        fast("f%d" % i)  # while the slow call is outstanding
        try:
            got = slow.get()
        except Exception as e:
            if res.failure(e, TimeoutError) == "TimeoutError":
                d["slowTimedOut"] += 1
                if len(d["slowTimeoutAfterMs"]) < 20:
                    d["slowTimeoutAfterMs"].append(round((time.time() - started) * 1000.0, 1))
            else:
                d["slowErrors"] += 1
        else:
            d["slowAnswered"] += 1
            res.answer(slow_arg + slow_arg, got, started)
        fast("g%d" % i)  # right after the timeout: the discarded tag may be reused

    # Let any late answer to a discarded call arrive, then check the
    # connection still answers correctly.
    gevent.sleep(args.delay_ms / 1000.0 + 0.3)
    for j in range(3):
        fast("z%d" % j)
    d["finalOk"] = d["fastOk"] == d["fastCalls"]
    res.details.update(d)


def run_error(client, args, res, env):
    code = 7
    d = {
        "expectedErrorCode": code,
        "surfaced": [],
        "afterErrorQueryOk": None,
    }
    InvalidQueryException = env["ttypes"].InvalidQueryException
    for _ in range(args.count):
        try:
            got = client.raiseError(code)
        except Exception as e:
            desc = res.failure(e, env["TimeoutError"])
            inner = getattr(e, "inner_exception", None)
            info = {
                "type": type(e).__name__,
                "module": type(e).__module__,
                "isScalesError": isinstance(e, env["ScalesError"]),
                "innerType": type(inner).__name__ if inner is not None else None,
                "innerModule": type(inner).__module__ if inner is not None else None,
                "errorCode": getattr(inner if inner is not None else e, "errorCode", None),
                "desc": desc,
            }
            if len(d["surfaced"]) < 3:
                d["surfaced"].append(info)
            target = inner if inner is not None else e
            if isinstance(target, InvalidQueryException) and target.errorCode == code:
                res.ok += 1
            else:
                res.wrong += 1
                if len(res.wrongSamples) < 10:
                    res.wrongSamples.append({"expected": "InvalidQueryException(7)", "got": short(e)})
        else:
            res.wrong += 1
            if len(res.wrongSamples) < 10:
                res.wrongSamples.append({"expected": "InvalidQueryException(7)", "got": repr(got)})
    # The connection must still work after an exception reply.
    try:
        got = client.query("after")
        d["afterErrorQueryOk"] = got == "afterafter"
    except Exception as e:
        d["afterErrorQueryOk"] = False
        d["afterErrorQueryError"] = "%s: %s" % (describe(e), short(e))
    res.details.update(d)


MODES = {
    "query": run_query,
    "concurrent": run_concurrent,
    "timeouts": run_timeouts,
    "error": run_error,
}


def parse_args(argv):
    p = argparse.ArgumentParser(description="Scales ThriftMux client interop peer")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--mode", choices=sorted(MODES), required=True)
    p.add_argument("--count", type=int, default=None,
                   help="calls (rounds in timeouts mode); default per mode %s" % DEFAULT_COUNTS)
    p.add_argument("--timeout", type=float, default=None,
                   help="Scales' per-call timeout in seconds; default per mode %s" % DEFAULT_TIMEOUTS)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--client-id", default=None,
                   help="sent as the com.twitter.finagle.thrift.ClientIdContext context")
    p.add_argument("--delay-ms", type=int, default=None,
                   help="delayedQuery delay in timeouts mode; default max(2*timeout, timeout+300ms)")
    p.add_argument("--open-timeout", type=float, default=10.0,
                   help="how long to wait for the connection (first Tping/Rping) before calling anyway")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="watchdog: print the partial JSON and exit 3 after this long")
    p.add_argument("--verbose", action="store_true", help="Scales' DEBUG log to stderr")
    args = p.parse_args(argv)
    if args.count is None:
        args.count = DEFAULT_COUNTS[args.mode]
    if args.timeout is None:
        args.timeout = DEFAULT_TIMEOUTS[args.mode]
    if args.delay_ms is None:
        ms = int(args.timeout * 1000)
        args.delay_ms = max(2 * ms, ms + 300)
    if args.concurrency < 1 or args.count < 0 or args.timeout <= 0:
        p.error("--concurrency must be >= 1, --count >= 0, --timeout > 0")
    return args


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    TestService, ttypes = load_gen()
    import gevent
    from importlib.metadata import version
    from scales.dispatch import ScalesError
    from scales.message import TimeoutError
    from scales.thriftmux import ThriftMux

    assert "twisted" not in sys.modules, "the Scales peer must not import Twisted"

    wire = WireStats()
    wire.install()
    res = Results(args.mode)
    env = {"TimeoutError": TimeoutError, "ScalesError": ScalesError, "ttypes": ttypes}
    t_start = time.time()
    done = threading.Event()
    emitted = threading.Lock()

    def report(extra):
        out = res.as_dict(time.time() - t_start)
        out.update({
            "count": args.count,
            "timeoutS": args.timeout,
            "clientId": args.client_id,
            "wire": wire.as_dict(),
            "python": sys.version.split()[0],
            "gevent": gevent.__version__,
            "scales": version("scales-rpc"),
        })
        out.update(extra)
        return out

    def watchdog():
        # A real OS thread (nothing is monkey-patched), so it fires even if
        # the gevent hub is stuck.
        if not done.wait(args.max_seconds):
            if emitted.acquire(False):
                try:
                    emit(report({"watchdog": True, "connectElapsed": None}))
                finally:
                    os._exit(3)

    threading.Thread(target=watchdog, name="watchdog", daemon=True).start()

    uri = "tcp://%s:%d" % (args.host, args.port)
    builder = (ThriftMux.NewBuilder(TestService.Iface, client_id=args.client_id)
               .SetUri(uri)
               .SetTimeout(args.timeout)
               .SetOpenTimeout(args.open_timeout))
    client = builder.Build()  # waits for the first Tping's Rping (or open-timeout)
    connect_elapsed = time.time() - t_start
    res.details["connected"] = wire.pingsAnswered > 0
    t_start = time.time()

    MODES[args.mode](client, args, res, env)

    out = report({"connectElapsed": round(connect_elapsed, 4), "watchdog": False})
    try:
        client.DispatcherClose()
    except Exception:
        traceback.print_exc()
    done.set()
    if emitted.acquire(False):
        emit(out)
        sys.stderr.flush()
        # Skip interpreter teardown: lingering Scales greenlets (ping loop,
        # resurrector) have nothing left to do.
        os._exit(0)
    # The watchdog is printing; it exits the process.
    time.sleep(60)


if __name__ == "__main__":
    main()
