"""
Run every txscales benchmark on 127.0.0.1 and write the results.

    .venv/bin/python benchmarks/harness.py [--quick] [--out DIR]

(C{benchmarks/run} installs what this needs, then runs it.)  Servers and
clients are separate processes (L{server}, L{client}, L{scales_client},
L{balancer}, and grpcio's own in L{grpc_server} and L{grpc_client}); this
process only starts them and reads the one JSON line each client prints.
The txscales they run is the one in this checkout.

Every figure is reported as a ratio to the raw Twisted echo (L{echo})
measured in the same run, since these machines are noisy; throughput is the
best of several short windows after a warm-up.  Results go to
C{results/results.md} (tables), C{results/results.json} (everything
measured) and C{results/results.png} (chart), and the goals are printed
with whether each holds.
"""

import argparse
import json
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

SIZES = (32, 16 * 1024)
CONCURRENCIES = (1, 100)
CELLS = [(c, s) for c in CONCURRENCIES for s in SIZES]
GOAL_CELL = (100, 32)
HELD_CALLS = 10000

GOALS = {
    "throughput": 0.60,  # txscales ThriftMux >= 0.60x raw echo at 100 outstanding, 32 B
    "throughputPure": 0.40,  # the same, pure Python (TXSCALES_NO_EXTENSIONS=1 on both sides)
    "scales": 20.0,  # txscales client >= 20x Scales' client against the same server
    "grpc": 15.0,  # txscales ThriftMux >= 15x grpcio's asyncio client and server, 100 outstanding, 32 B
    "p2c": 1.5,  # P2C pick at 1000 endpoints <= 1.5x its cost at 10
    "memoryMB": 50.0,  # 10 000 outstanding calls use < 50 MB above the idle client
    "plainThrift": 1.5,  # txscales plain framed Thrift, pipelined, >= 1.5x TTwisted at 100 outstanding, 32 B
    "tailLatency": 4.0,  # ThriftMux p99 at the latency load <= 4x the echo's p99 at the same load
}

LATENCY_GC = ["--gc-freeze"]
"""What the latency runs pass to client and server alike, echo and ThriftMux:
gc.freeze() once started, so that no full collection of start-up's objects
(a pause of tens of ms) lands in a few seconds' measurement of one row and
not the other's."""

SERVING = re.compile(r"txscales: serving .+ on (?P<host>\S+):(?P<port>\d+)\s*$")

NA = "n/a (not available)"

# What makes a client or server process run txscales' pure-Python modules.
PURE = {"TXSCALES_NO_EXTENSIONS": "1"}


def say(message):
    sys.stdout.write("bench: %s\n" % (message,))
    sys.stdout.flush()


def sizeName(size):
    return "%d KiB" % (size // 1024,) if size >= 1024 else "%d B" % (size,)


def cellName(cell):
    concurrency, size = cell
    return "%d outst., %s" % (concurrency, sizeName(size))


class Failed(Exception):
    pass


class Processes:
    """
    The subprocesses this run started; all are stopped at the end.
    """

    def __init__(self, env):
        self.env = env
        self._running = []

    def start(self, argv, env=None):
        p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(self.env, **env) if env else self.env,
            cwd=REPO,
            start_new_session=True,
        )
        p.argv = argv
        self._running.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for stream in (p.stdout, p.stderr):
            if stream is not None:
                stream.close()
        if p in self._running:
            self._running.remove(p)

    def stopAll(self):
        for p in list(self._running):
            self.stop(p)

    def run(self, argv, timeout, watch=None, env=None):
        """
        Run a client to completion.

        @param watch: a server process whose CPU time the client's run used
            is added to the result (C{serverCpuSeconds}).
        @return: the JSON object of its last stdout line.
        @raise Failed: when it fails, prints no JSON or takes too long.
        """
        before = cpuSeconds(watch) if watch is not None else None
        p = self.start(argv, env)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            self._running.remove(p)
            raise Failed("%s took longer than %ss; stderr: %s" % (os.path.basename(argv[1]), timeout, err.decode()[-800:]))
        self._running.remove(p)
        lines = [line for line in out.decode().splitlines() if line.startswith("{")]
        if not lines:
            raise Failed("%s printed no result (exit %s): %s" % (os.path.basename(argv[1]), p.returncode, err.decode()[-800:]))
        result = json.loads(lines[-1])
        if before is not None:
            after = cpuSeconds(watch)
            if after is not None:
                result["serverCpuSeconds"] = after - before
                if result.get("answered"):
                    result["serverCpuUs"] = round((after - before) / result["answered"] * 1e6, 2)
        if not result.get("ok"):
            raise Failed("%s failed: %s" % (os.path.basename(argv[1]), result.get("error") or err.decode()[-800:]))
        return result

    def waitFor(self, p, match, timeout=30.0):
        """
        Read C{p}'s stdout until a line satisfies C{match} (a callable
        returning a value or None).

        @return: that value.
        """
        deadline = time.monotonic() + timeout
        seen = []
        fd = p.stdout.fileno()
        buffered = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                text = line.decode("utf-8", "replace")
                seen.append(text)
                value = match(text)
                if value is not None:
                    return value
        err = b""
        if p.poll() is not None:
            err = p.stderr.read()
        raise Failed("%s did not start: %s %s" % (" ".join(p.argv[1:3]), "\n".join(seen)[-800:], err.decode()[-800:]))


def cpuSeconds(p):
    """
    @return: the user + system CPU seconds process C{p} used so far, or None.
    """
    try:
        with open("/proc/%d/stat" % (p.pid,)) as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _jsonPort(line):
    if line.startswith("{"):
        return json.loads(line).get("port")
    return None


def _loggedPort(line):
    m = SERVING.search(line)
    return int(m.group("port")) if m else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.python = sys.executable
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.procs = Processes(env)
        self.results = {"throughput": {}, "variants": {}, "latency": {}, "memory": {}, "balancer": {}, "hotpath": {}, "available": {}}
        self.genDir = None
        self.current = None
        w = args
        self.loopArgs = ["--warmup", str(w.warmup), "--window", str(w.window), "--windows", str(w.windows)]

    # --- what is available ----------------------------------------------------

    def preflight(self):
        available = self.results["available"]
        # Apache Thrift's Twisted code, generated from the demo IDL.
        thrift = shutil.which("thrift")
        if thrift is None:
            available["ttwisted"] = "no thrift compiler (Debian package thrift-compiler)"
        else:
            self.genDir = tempfile.mkdtemp(prefix="txscales-bench-gen.")
            with open(os.path.join(REPO, "txscales", "demo", "TestService.thrift")) as f:
                idl = re.sub(r"(?m)^namespace py .*$", "namespace py benchgen", f.read())
            idlPath = os.path.join(self.genDir, "TestService.thrift")
            with open(idlPath, "w") as f:
                f.write(idl)
            r = subprocess.run([thrift, "--gen", "py:twisted", "-out", self.genDir, idlPath], capture_output=True)
            available["ttwisted"] = True if r.returncode == 0 else "thrift --gen py:twisted failed: %s" % (r.stderr.decode()[-300:],)
        # Scales' client, in its own virtualenv.
        scales = os.path.join(REPO, ".peers", "scales", "bin", "python")
        if os.path.exists(scales):
            r = subprocess.run([scales, "-c", "import gevent, scales.thriftmux"], capture_output=True)
            available["scales"] = True if r.returncode == 0 else "Scales' venv cannot import scales.thriftmux"
        else:
            available["scales"] = "no .peers/scales (scripts/setup-scales-peer)"
        self.scalesPython = scales
        # grpcio's asyncio client and server, in their own virtualenv.
        self.grpcPython = os.path.join(REPO, ".peers", "grpc-bench", "bin", "python")
        if os.path.exists(self.grpcPython):
            r = subprocess.run([self.grpcPython, "-c", "import grpc, twisted; print(grpc.__version__)"], capture_output=True, text=True)
            available["grpc"] = True if r.returncode == 0 else "n/a: the grpc-bench venv cannot import grpc: %s" % (r.stderr[-300:],)
            self.results["grpcio"] = r.stdout.strip() or None
        else:
            available["grpc"] = "n/a: no .peers/grpc-bench (benchmarks/run makes it, with grpcio)"
        # txscales' plain Thrift, once it exists.
        r = subprocess.run(
            [self.python, "-c", "from txscales.thrift import Thrift"], capture_output=True, env=self.procs.env, cwd=REPO
        )
        available["thrift"] = True if r.returncode == 0 else NA
        # Which path txscales runs on unless told otherwise.
        r = subprocess.run(
            [self.python, "-c", "import txscales; print(txscales.compiled)"],
            capture_output=True, env=self.procs.env, cwd=REPO, text=True,
        )
        self.results["compiled"] = r.stdout.strip() == "True"
        say("txscales: %s" % ("compiled modules in use" if self.results["compiled"] else "pure Python (no compiled modules built)"))
        for name, state in sorted(available.items()):
            say("%s: %s" % (name, "available" if state is True else state))

    # --- servers -------------------------------------------------------------

    def server(self, kind, *extra, env=None):
        p = self.current = self.procs.start([self.python, os.path.join(HERE, "server.py"), kind] + list(extra), env)
        return p, self.procs.waitFor(p, _jsonPort)

    def grpcServer(self):
        p = self.current = self.procs.start([self.grpcPython, os.path.join(HERE, "grpc_server.py")])
        return p, self.procs.waitFor(p, _jsonPort)

    def twistdThriftServer(self):
        twistd = os.path.join(os.path.dirname(self.python), "twistd")
        p = self.current = self.procs.start(
            [
                twistd,
                "--pidfile=",
                "-n",
                "txscales",
                "serve",
                "--protocol",
                "thrift",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--iface",
                "txscales.demo.gen.TestService.Iface",
                "--handler",
                "txscales.demo.handler:makeHandler",
            ]
        )
        return p, self.procs.waitFor(p, _loggedPort)

    def thriftServer(self):
        """
        Start txscales' plain Thrift server: C{twistd txscales serve
        --protocol thrift}, or else C{Thrift.newServer} in L{server}.

        @return: (process, port), or None when neither starts.
        """
        available = self.results["available"]
        try:
            started = self.twistdThriftServer()
            self.results["thriftServer"] = "twistd txscales serve --protocol thrift"
            return started
        except Failed as e:
            why = str(e)
        try:
            started = self.server("thrift")
            self.results["thriftServer"] = "Thrift.newServer (twistd txscales serve --protocol thrift did not start)"
            say("plain Thrift: twistd txscales serve --protocol thrift did not start; using Thrift.newServer")
            return started
        except Failed as e:
            say("plain Thrift server: %s; %s" % (why[:300], e))
            available["thrift"] = "n/a (server not available)"
            return None

    # --- clients -------------------------------------------------------------

    def client(self, kind, port, mode, *extra, timeout=60, env=None):
        argv = [self.python, os.path.join(HERE, "client.py"), kind, "--port", str(port), "--mode", mode] + list(extra)
        if kind == "ttwisted":
            argv += ["--gen-dir", self.genDir]
        return self.procs.run(argv, timeout, watch=self.current, env=env)

    def throughputCell(self, kind, port, cell, *extra, env=None):
        concurrency, size = cell
        if kind == "scales":
            argv = [
                self.scalesPython,
                os.path.join(HERE, "scales_client.py"),
                "--port",
                str(port),
                "--size",
                str(size),
                "--concurrency",
                str(concurrency),
            ] + self.loopArgs
            return self.procs.run(argv, 90, watch=self.current)
        if kind == "grpc":
            argv = [self.grpcPython, os.path.join(HERE, "grpc_client.py"), "--port", str(port), "--size", str(size), "--concurrency", str(concurrency)]
            return self.procs.run(argv + self.loopArgs, 90, watch=self.current)
        return self.client(
            kind, port, "throughput", "--size", str(size), "--concurrency", str(concurrency), *(self.loopArgs + list(extra)), env=env
        )

    def record(self, table, row, cell, run):
        """
        Run one measurement, keep the best of repeated ones.
        """
        key = cellName(cell)
        try:
            result = run()
            if result.get("wrong") or result.get("failures"):
                raise Failed("wrong answers %s, failures %s %s" % (result.get("wrong"), result.get("failures"), result.get("failureSamples")))
        except Failed as e:
            say("%s, %s: FAILED: %s" % (row, key, e))
            table.setdefault(row, {}).setdefault(key, {"error": str(e)})
            return
        previous = table.setdefault(row, {}).get(key)
        if previous and "best" in previous:
            result["rates"] = previous["rates"] + result["rates"]
            result["best"] = max(previous["best"], result["best"])
            result["median"] = sorted(result["rates"])[len(result["rates"]) // 2]
            for name in ("clientCpuUs", "serverCpuUs"):
                known = [r[name] for r in (previous, result) if r.get(name) is not None]
                result[name] = min(known) if known else None
        table[row][key] = result
        say(
            "%-34s %-20s %10.0f calls/s  (windows: %s; CPU per call: client %s us, server %s us)"
            % (row, key, result["best"], ", ".join("%.0f" % r for r in result["rates"]), result.get("clientCpuUs"), result.get("serverCpuUs"))
        )

    def unavailable(self, table, row, why):
        for cell in CELLS:
            table.setdefault(row, {})[cellName(cell)] = {"na": why}

    # --- the measurements ----------------------------------------------------

    def throughput(self):
        t = self.results["throughput"]
        v = self.results["variants"]
        available = self.results["available"]

        p, port = self.server("echo")
        for cell in CELLS:
            self.record(t, "echo", cell, lambda: self.throughputCell("echo", port, cell))
        self.procs.stop(p)

        p, port = self.server("thriftmux")
        for cell in CELLS:
            self.record(t, "thriftmux", cell, lambda: self.throughputCell("thriftmux", port, cell))
        if available["scales"] is True:
            for cell in CELLS:
                self.record(t, "scales", cell, lambda: self.throughputCell("scales", port, cell))
        else:
            self.unavailable(t, "scales", available["scales"])
        self.record(v, "thriftmux, timeout=1 s", GOAL_CELL, lambda: self.throughputCell("thriftmux", port, GOAL_CELL, "--timeout", "1"))
        self.record(v, "thriftmux, client stats=False", GOAL_CELL, lambda: self.throughputCell("thriftmux", port, GOAL_CELL, "--no-stats"))
        self.procs.stop(p)

        p, port = self.server("thriftmux", "--no-stats")
        self.record(v, "thriftmux, stats=False both sides", GOAL_CELL, lambda: self.throughputCell("thriftmux", port, GOAL_CELL, "--no-stats"))
        self.procs.stop(p)

        # Both sides on the pure-Python path.
        p, port = self.server("thriftmux", env=PURE)
        for cell in CELLS:
            self.record(t, "thriftmux-pure", cell, lambda: self.throughputCell("thriftmux", port, cell, env=PURE))
        self.procs.stop(p)

        if available["thrift"] is True:
            p = self.thriftServer()
            if p is None:
                self.unavailable(t, "thrift", available["thrift"])
            else:
                p, port = p
                for cell in CELLS:
                    self.record(t, "thrift", cell, lambda: self.throughputCell("thrift", port, cell))
                for cell in CELLS:
                    self.record(t, "thrift-pipelined", cell, lambda: self.throughputCell("thrift", port, cell, "--pipelined"))
                self.procs.stop(p)
        else:
            self.unavailable(t, "thrift", available["thrift"])
            self.unavailable(t, "thrift-pipelined", available["thrift"])

        if available["ttwisted"] is True:
            p, port = self.server("ttwisted", "--gen-dir", self.genDir)
            for cell in CELLS:
                self.record(t, "ttwisted", cell, lambda: self.throughputCell("ttwisted", port, cell))
            self.procs.stop(p)
        else:
            self.unavailable(t, "ttwisted", available["ttwisted"])

        p, port = self.server("echo-batched")
        for cell in CELLS:
            self.record(t, "echo-batched", cell, lambda: self.throughputCell("echo-batched", port, cell))
        self.procs.stop(p)

        if available["grpc"] is True:
            p, port = self.grpcServer()
            for cell in CELLS:
                self.record(t, "grpc", cell, lambda: self.throughputCell("grpc", port, cell))
            self.procs.stop(p)
        else:
            self.unavailable(t, "grpc", available["grpc"])

        # The goals' cells once more, alternating, so that each side of a
        # ratio had two chances at a quiet machine.
        for _ in range(self.args.goal_repeats):
            for row, kind, env in (("echo", "echo", None), ("thriftmux", "thriftmux", None), ("thriftmux-pure", "thriftmux", PURE)):
                p, port = self.server(kind, env=env)
                self.record(t, row, GOAL_CELL, lambda: self.throughputCell(kind, port, GOAL_CELL, env=env))
                if row == "thriftmux" and available["scales"] is True:
                    self.record(t, "scales", GOAL_CELL, lambda: self.throughputCell("scales", port, GOAL_CELL))
                self.procs.stop(p)

    def plainThrift(self, rounds=3):
        """
        The plain Thrift goal's cell alone, in C{rounds} alternating rounds:
        txscales' pooled and pipelined clients against its server, then
        TTwisted's client against TTwisted's server.  Each round's best
        calls/s per row go into C{plainThriftRounds}; the goal takes the
        median of the rounds' ratios (pipelined / TTwisted).
        """
        t = self.results["throughput"]
        available = self.results["available"]
        if available["thrift"] is not True or available["ttwisted"] is not True:
            say("plain Thrift vs TTwisted: n/a (%s, %s)" % (available["thrift"], available["ttwisted"]))
            return
        measuredRounds = self.results.setdefault("plainThriftRounds", [])
        for _ in range(rounds):
            measured = {}
            started = self.thriftServer()
            if started is None:
                return
            p, port = started
            for row, extra in (("thrift", ()), ("thrift-pipelined", ("--pipelined",))):
                measured[row] = self.roundBest(t, row, lambda: self.throughputCell("thrift", port, GOAL_CELL, *extra))
            self.procs.stop(p)
            p, port = self.server("ttwisted", "--gen-dir", self.genDir)
            measured["ttwisted"] = self.roundBest(t, "ttwisted", lambda: self.throughputCell("ttwisted", port, GOAL_CELL))
            self.procs.stop(p)
            if measured["thrift-pipelined"] and measured["ttwisted"]:
                measuredRounds.append(measured)
                say("plain Thrift round: pipelined %.2fx, pooled %s TTwisted" % (
                    measured["thrift-pipelined"] / measured["ttwisted"],
                    "%.2fx" % (measured["thrift"] / measured["ttwisted"]) if measured["thrift"] else "n/a"))

    def roundBest(self, table, row, run):
        """
        L{record} one measurement of the goal cell.

        @return: this measurement's best window (calls/s), or None.
        """
        before = len(table.get(row, {}).get(cellName(GOAL_CELL), {}).get("rates", []))
        self.record(table, row, GOAL_CELL, run)
        rates = table.get(row, {}).get(cellName(GOAL_CELL), {}).get("rates", [])[before:]
        return max(rates) if rates else None

    def best(self, row, cell=GOAL_CELL, table="throughput"):
        entry = self.results[table].get(row, {}).get(cellName(cell), {})
        return entry.get("best")

    def latency(self):
        echoMax, muxMax = self.best("echo"), self.best("thriftmux")
        if not echoMax or not muxMax:
            say("latency: skipped (no throughput figures to size the offered load)")
            return
        # Half the lower maximum; lower still while ThriftMux cannot keep up
        # with it (an open loop fed faster than it is served only measures
        # its queue).
        rate = round(0.5 * min(echoMax, muxMax), -2)
        self.results["latencyGc"] = LATENCY_GC
        for attempt in range(4):
            r = self.latencyRun("thriftmux", rate)
            if r is None or self.keptUp(r, rate) or attempt == 3:
                break
            say("latency: ThriftMux fell behind %d calls/s offered (%.0f/s sent, %d outstanding at the end); lowering the load" % (rate, r["achieved"], r["outstandingAtEnd"]))
            rate = round(rate * 0.6, -2)
        self.results["latencyRate"] = rate
        self.latencyRun("echo", rate)
        # The goal's rounds: this pair, then two more at the same load in
        # alternating order; the goal takes the median p99 ratio.
        rounds = self.results["latencyRounds"] = []
        for order in (None, ("echo", "thriftmux"), ("thriftmux", "echo")):
            pair = self.results["latency"] if order is None else {}
            for kind in order or ():
                self.latencyRun(kind, rate, pair)
            if pair.get("echo", {}).get("p99") and pair.get("thriftmux", {}).get("p99"):
                rounds.append({"thriftmux": pair["thriftmux"]["p99"], "echo": pair["echo"]["p99"]})
        # And at half that load: how the tails look with room to spare.
        light = self.results["latencyLight"] = {"rate": round(rate / 2, -2)}
        for kind in ("thriftmux", "echo"):
            self.latencyRun(kind, light["rate"], light)

    @staticmethod
    def keptUp(r, rate):
        """
        @return: whether an open-loop run kept up with its offered load: it
            sent on schedule, and the calls outstanding when it stopped were
            no more than 20 ms of calls (a backlog that grows is not a
            passing stall).
        """
        return r["achieved"] >= 0.97 * rate and r["outstandingAtEnd"] <= max(50, rate * 0.02)

    def latencyRun(self, kind, rate, into=None):
        """
        Measure C{kind}'s latency at C{rate} calls/s offered, into
        C{into[kind]} (by default the main latency results).
        """
        into = self.results["latency"] if into is None else into
        p, port = self.server(kind, *LATENCY_GC)
        r = None
        try:
            r = self.client(
                kind, port, "latency", "--size", "32", "--rate", str(rate), "--warmup", "1", "--duration", str(self.args.latency_seconds),
                *LATENCY_GC
            )
            if r.get("wrong") or r.get("failures"):
                raise Failed("wrong answers or failures: %s" % (r,))
            into[kind] = r
            say(
                "latency %-10s at %d/s offered (%.0f/s sent, %d outstanding at most): p50 %s us, p99 %s us, p99.9 %s us"
                % (kind, rate, r["achieved"], r["maxOutstanding"], r["p50"], r["p99"], r["p999"])
            )
        except Failed as e:
            into[kind] = {"error": str(e)}
            say("latency %s: FAILED: %s" % (kind, e))
            r = None
        self.procs.stop(p)
        return r

    def memory(self):
        for kind in ("echo", "thriftmux"):
            # The server runs every held call, and the sentinel call after
            # them, at once: its default bound on one connection's running
            # requests would refuse most.
            p, port = self.server(kind, *(["--max-pending", str(HELD_CALLS + 1)] if kind == "thriftmux" else []))
            try:
                r = self.client(kind, port, "memory", "--count", str(HELD_CALLS), timeout=120)
                if r.get("stillHeld") != HELD_CALLS:
                    raise Failed("only %s of %d calls were outstanding when measured" % (r.get("stillHeld"), HELD_CALLS))
                self.results["memory"][kind] = r
                say("memory %-10s %d outstanding calls: %.1f MB above idle (%.0f bytes per call)" % (kind, HELD_CALLS, r["aboveIdle"] / 1e6, r["perCall"]))
            except Failed as e:
                self.results["memory"][kind] = {"error": str(e)}
                say("memory %s: FAILED: %s" % (kind, e))
            self.procs.stop(p)

    def hotpath(self):
        argv = [self.python, os.path.join(HERE, "hotpath.py"), "--calls", "30000", "--repeats", "3"]
        try:
            r = self.procs.run(argv, 180)
            self.results["hotpath"] = r["us"]
            # The same, pure Python: the kinds that run txscales.
            pure = self.procs.run(argv + ["--kinds", "thriftmux,mux-floor"], 180, env=PURE)
            for kind, us in pure["us"].items():
                self.results["hotpath"][kind + "-pure"] = us
            for kind, us in sorted(self.results["hotpath"].items()):
                say("CPU per call in-process %-18s client %.2f us, server %.2f us" % (kind, us["client"], us["server"]))
        except Failed as e:
            self.results["hotpath"] = {"error": str(e)}
            say("hot path: FAILED: %s" % (e,))

    def grpcRounds(self, rounds=3):
        """
        The gRPC goal's cell alone, in C{rounds} alternating rounds:
        txscales ThriftMux's client against its server, then grpcio's
        asyncio client against its server.  Each round's figures go into
        C{grpcRounds} (not into the throughput table); the goal takes the
        median of their ratios.
        """
        available = self.results["available"]
        if available["grpc"] is not True:
            say("ThriftMux vs gRPC: n/a (%s)" % (available["grpc"],))
            return
        done = self.results.setdefault("grpcRounds", [])
        key = cellName(GOAL_CELL)
        for _ in range(rounds):
            measured = {}
            for row, start in (("thriftmux", lambda: self.server("thriftmux")), ("grpc", self.grpcServer)):
                scratch = {}
                try:
                    p, port = start()
                except Failed as e:
                    say("%s server: FAILED: %s" % (row, e))
                    continue
                self.record(scratch, row, GOAL_CELL, lambda: self.throughputCell(row, port, GOAL_CELL))
                self.procs.stop(p)
                entry = scratch[row][key]
                if "best" in entry:
                    measured[row] = {k: entry.get(k) for k in ("best", "median", "clientCpuUs", "serverCpuUs", "connections")}
            if len(measured) == 2:
                measured["ratio"] = measured["thriftmux"]["best"] / measured["grpc"]["best"]
                done.append(measured)
                say("ThriftMux vs gRPC, round %d: %.1fx" % (len(done), measured["ratio"]))

    def balancer(self):
        try:
            r = self.procs.run([self.python, os.path.join(HERE, "balancer.py"), "--balancers", self.args.balancers], 120)
            self.results["balancer"] = r["nsPerPick"]
            for name, costs in sorted(r["nsPerPick"].items()):
                say("balancer %-14s %s" % (name, ", ".join("%s endpoints: %.0f ns" % (n, c) for n, c in costs.items())))
        except Failed as e:
            self.results["balancer"] = {"error": str(e)}
            say("balancer: FAILED: %s" % (e,))

    # --- goals ---------------------------------------------------------------

    def goals(self):
        goals = []
        echo, mux, scales = self.best("echo"), self.best("thriftmux"), self.best("scales")

        def goal(name, text, value, threshold, holds, shown):
            goals.append({"name": name, "goal": text, "value": value, "threshold": threshold, "holds": holds, "measured": shown})

        if echo and mux:
            r = mux / echo
            goal("throughput", "txscales ThriftMux >= 0.60x raw echo (100 outstanding, 32 B)", r, GOALS["throughput"], r >= GOALS["throughput"], "%.2fx (%.0f vs %.0f calls/s)" % (r, mux, echo))
        else:
            goal("throughput", "txscales ThriftMux >= 0.60x raw echo (100 outstanding, 32 B)", None, GOALS["throughput"], None, "not measured")
        pure = self.best("thriftmux-pure")
        text = "txscales ThriftMux in pure Python (TXSCALES_NO_EXTENSIONS=1) >= 0.40x raw echo (100 outstanding, 32 B)"
        if echo and pure:
            r = pure / echo
            goal("throughputPure", text, r, GOALS["throughputPure"], r >= GOALS["throughputPure"], "%.2fx (%.0f vs %.0f calls/s)" % (r, pure, echo))
        else:
            goal("throughputPure", text, None, GOALS["throughputPure"], None, "not measured")
        if mux and scales:
            r = mux / scales
            goal("scales", "txscales client >= 20x Scales' client, same txscales server (100 outstanding, 32 B)", r, GOALS["scales"], r >= GOALS["scales"], "%.1fx (%.0f vs %.0f calls/s)" % (r, mux, scales))
        else:
            goal("scales", "txscales client >= 20x Scales' client, same txscales server (100 outstanding, 32 B)", None, GOALS["scales"], None, "not measured")
        text = "txscales ThriftMux >= 15x grpcio's asyncio client and server (unary, generic bytes handlers; 100 outstanding, 32 B)"
        rounds, grpc = self.results.get("grpcRounds"), self.best("grpc")
        if rounds:
            ratios = sorted(r["ratio"] for r in rounds)
            r = ratios[len(ratios) // 2]
            goal("grpc", text, r, GOALS["grpc"], r >= GOALS["grpc"], "%.1fx (median of %d alternating rounds: %s)" % (r, len(ratios), ", ".join("%.1f" % x for x in ratios)))
        elif mux and grpc:
            r = mux / grpc
            goal("grpc", text, r, GOALS["grpc"], r >= GOALS["grpc"], "%.1fx (%.0f vs %.0f calls/s)" % (r, mux, grpc))
        else:
            goal("grpc", text, None, GOALS["grpc"], None, "not measured")
        p2c = self.results["balancer"].get("p2c") if isinstance(self.results["balancer"], dict) else None
        if p2c and "10" in p2c and "1000" in p2c:
            r = p2c["1000"] / p2c["10"]
            goal("p2c", "P2C pick at 1000 endpoints <= 1.5x its cost at 10", r, GOALS["p2c"], r <= GOALS["p2c"], "%.2fx (%.0f vs %.0f ns)" % (r, p2c["1000"], p2c["10"]))
        else:
            goal("p2c", "P2C pick at 1000 endpoints <= 1.5x its cost at 10", None, GOALS["p2c"], None, "not measured")
        text = "txscales plain framed Thrift, pipelined, >= 1.5x Apache Thrift TTwisted (100 outstanding, 32 B)"
        rounds = self.results.get("plainThriftRounds")
        if rounds:
            ratios = sorted(r["thrift-pipelined"] / r["ttwisted"] for r in rounds)
            r = ratios[len(ratios) // 2]
            goal("plainThrift", text, r, GOALS["plainThrift"], r >= GOALS["plainThrift"], "%.2fx (median of %d alternating rounds: %s)" % (r, len(ratios), ", ".join("%.2f" % x for x in ratios)))
        else:
            pipelined, ttwisted = self.best("thrift-pipelined"), self.best("ttwisted")
            if pipelined and ttwisted:
                r = pipelined / ttwisted
                goal("plainThrift", text, r, GOALS["plainThrift"], r >= GOALS["plainThrift"], "%.2fx (%.0f vs %.0f calls/s)" % (r, pipelined, ttwisted))
            else:
                goal("plainThrift", text, None, GOALS["plainThrift"], None, "not measured")
        m = self.results["memory"].get("thriftmux", {})
        if "aboveIdle" in m:
            mb = m["aboveIdle"] / 1e6
            goal("memory", "10 000 outstanding calls use < 50 MB above the idle client", mb, GOALS["memoryMB"], mb < GOALS["memoryMB"], "%.1f MB" % (mb,))
        else:
            goal("memory", "10 000 outstanding calls use < 50 MB above the idle client", None, GOALS["memoryMB"], None, "not measured")
        rounds = self.results.get("latencyRounds") or []
        text = "txscales ThriftMux p99 latency at the latency load <= 4x the raw echo's p99 at the same load"
        if rounds:
            ratios = sorted(x["thriftmux"] / x["echo"] for x in rounds)
            r = ratios[len(ratios) // 2]
            shown = "%.2fx (median of %d alternating rounds: %s; first round %.0f vs %.0f us)" % (
                r, len(ratios), ", ".join("%.2f" % x for x in ratios), rounds[0]["thriftmux"], rounds[0]["echo"])
            goal("tailLatency", text, r, GOALS["tailLatency"], r <= GOALS["tailLatency"], shown)
        else:
            goal("tailLatency", text, None, GOALS["tailLatency"], None, "not measured")
        self.results["goals"] = goals
        return goals


# --- reporting -------------------------------------------------------------------

ROWS = [
    ("echo", "raw Twisted echo (baseline)"),
    ("thriftmux", "txscales ThriftMux"),
    ("thriftmux-pure", "txscales ThriftMux, pure Python (TXSCALES_NO_EXTENSIONS=1)"),
    ("thrift", "txscales plain Thrift (framed)"),
    ("thrift-pipelined", "txscales plain Thrift (framed), pipelined=True"),
    ("ttwisted", "Apache Thrift TTwisted"),
    ("scales", "Scales' client -> txscales server"),
    ("grpc", "gRPC: grpcio's asyncio client and server"),
    ("echo-batched", "hand-batched Twisted echo"),
]


def _calls(entry, base):
    if entry is None:
        return "-"
    if "na" in entry:
        return entry["na"]
    if "error" in entry:
        return "failed"
    text = "{:,.0f}/s".format(entry["best"])
    if base:
        text += " (%.2fx)" % (entry["best"] / base,)
    return text


def _grpcSection(results):
    """
    @return: the markdown lines that say how gRPC was measured, and its
        alternating rounds against ThriftMux, if any.
    """
    rounds = results.get("grpcRounds") or []
    grpc = results["throughput"].get("grpc", {})
    if not rounds and not any("best" in entry for entry in grpc.values()):
        return []
    seen = sorted(({r["grpc"].get("connections") for r in rounds} | {e.get("connections") for e in grpc.values() if "best" in e}) - {None})
    lines = [
        "",
        "gRPC: grpcio %s's own asyncio client and server (`grpc.aio`, default options) in separate processes, one unary "
        "method served by a generic handler on bytes (no generated code, no serializers), answering x + x as the others "
        "do. All calls share one channel: one HTTP/2 connection (connections seen: %s), the calls outstanding "
        "multiplexed on it as streams, as ThriftMux's are on its one connection." % (
            results.get("grpcio") or "?", ", ".join(str(n) for n in seen) or "?"),
    ]
    if rounds:
        us = lambda v: "-" if v is None else "%.1f us" % (v,)
        lines += [
            "",
            "ThriftMux and gRPC, %s, in alternating rounds (the goal takes the median ratio); CPU per call measured "
            "as in the table below:" % (cellName(GOAL_CELL),),
            "",
            "| round | ThriftMux | gRPC | ratio | client CPU, ThriftMux / gRPC | server CPU, ThriftMux / gRPC |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for i, r in enumerate(rounds, 1):
            mux, grpc = r["thriftmux"], r["grpc"]
            lines.append("| %d | {:,.0f}/s | {:,.0f}/s | %.1fx | %s / %s | %s / %s |".format(mux["best"], grpc["best"]) % (
                i, r["ratio"], us(mux["clientCpuUs"]), us(grpc["clientCpuUs"]), us(mux["serverCpuUs"]), us(grpc["serverCpuUs"])))
    return lines


def _latencyTable(lat):
    """
    @return: the markdown lines of a latency table for the echo and
        ThriftMux results in C{lat}.
    """
    lines = ["", "| | sent | most outstanding | p50 | p99 | p99.9 |", "|---|---:|---:|---:|---:|---:|"]
    echo = lat.get("echo", {})
    for kind, title in (("echo", "raw Twisted echo (baseline)"), ("thriftmux", "txscales ThriftMux")):
        r = lat.get(kind, {})
        if "p50" not in r:
            lines.append("| %s | failed | | | | |" % (title,))
            continue
        cells = []
        for q in ("p50", "p99", "p999"):
            text = _us(r[q])
            if kind != "echo" and echo.get(q):
                text += " (%.2fx)" % (r[q] / echo[q],)
            cells.append(text)
        lines.append("| %s | {:,.0f}/s | {:,} | %s |".format(r["achieved"], r["maxOutstanding"]) % (title, " | ".join(cells)))
    return lines


def _us(v):
    return "-" if v is None else "{:,.0f} us".format(v)


def machineInfo():
    info = {"cores": os.cpu_count(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import twisted

        info["twisted"] = twisted.__version__
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        info["thrift"] = version("thrift")
    except Exception:
        pass
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "txscales", "twisted"], capture_output=True, text=True).stdout.strip()
        info["commit"] = head + (" (txscales/ modified)" if dirty else "")
    except OSError:
        pass
    return info


def markdown(results):
    info = results["machine"]
    t = results["throughput"]
    lines = [
        "# txscales benchmarks",
        "",
        "%s; %s cores (%s); Python %s, Twisted %s, thrift %s; txscales at %s." % (
            info["date"], info["cores"], info.get("cpu", "?"), info["python"], info.get("twisted", "?"), info.get("thrift", "?"), info.get("commit", "?")),
        "",
        "Client and server are separate processes on 127.0.0.1. Ratios (in brackets) are to the raw Twisted echo "
        "measured in the same run. Calls/s: the best of %d windows of %g s after %g s of warm-up, per cell; "
        "the goal cells were measured %d more time(s), alternating." % (
            results["settings"]["windows"], results["settings"]["window"], results["settings"]["warmup"], results["settings"]["goalRepeats"]),
        "",
        "txscales ran %s, except in the rows that say pure Python (TXSCALES_NO_EXTENSIONS=1 on both sides)." % (
            "its compiled modules (txscales.compiled was True)" if results.get("compiled") else "in pure Python: its compiled modules were not built",),
        "",
        "## Calls per second",
        "",
        "| | " + " | ".join(cellName(c) for c in CELLS) + " |",
        "|---|" + "---:|" * len(CELLS),
    ]
    for row, title in ROWS:
        base = [t.get("echo", {}).get(cellName(c), {}).get("best") for c in CELLS]
        cells = [_calls(t.get(row, {}).get(cellName(c)), b) for c, b in zip(CELLS, base)]
        lines.append("| %s | %s |" % (title, " | ".join(cells)))
    if results.get("thriftServer"):
        lines += ["", "txscales plain Thrift: client `Thrift.newClient(..., transport=\"framed\")`, server %s." % (results["thriftServer"],)]
    v = results["variants"]
    if v:
        echo = t.get("echo", {}).get(cellName(GOAL_CELL), {}).get("best")
        lines += ["", "Variants, %s:" % (cellName(GOAL_CELL),), "", "| | calls/s |", "|---|---:|"]
        lines.append("| txscales ThriftMux (defaults: stats on, no timeout) | %s |" % (_calls(t.get("thriftmux", {}).get(cellName(GOAL_CELL)), echo),))
        for row, cells in v.items():
            lines.append("| txscales %s | %s |" % (row, _calls(cells.get(cellName(GOAL_CELL)), echo)))
    lines += _grpcSection(results)
    cpuRows = [(row, title) for row, title in ROWS if t.get(row, {}).get(cellName(GOAL_CELL), {}).get("clientCpuUs")]
    hot = results.get("hotpath") or {}
    if cpuRows or (hot and "error" not in hot):
        lines += [
            "",
            "## CPU per call (%s)" % (cellName(GOAL_CELL),),
            "",
            "Microseconds of CPU per call on each side. Loopback: the client's CPU clock in its best window, the "
            "server's CPU time (from /proc) over the whole client run. In-process: client and server protocols in one "
            "process, bytes handed over in batches, no sockets (benchmarks/hotpath.py); this moves least from run to "
            "run, and its ratios are to the raw echo's protocols measured the same way.",
            "",
            "| | client | server |",
            "|---|---:|---:|",
        ]
        for row, title in cpuRows:
            entry = t[row][cellName(GOAL_CELL)]
            server = entry.get("serverCpuUs")
            lines.append("| %s, loopback | %.1f us | %s |" % (title, entry["clientCpuUs"], "-" if server is None else "%.1f us" % (server,)))
        names = {
            "echo": "raw Twisted echo (baseline)",
            "thriftmux": "txscales ThriftMux",
            "thriftmux-nostats": "txscales ThriftMux, stats=False",
            "thriftmux-timeout": "txscales ThriftMux, timeout=1 s",
            "mux-floor": "Mux protocol alone (no client stack)",
            "thriftmux-pure": "txscales ThriftMux, pure Python",
            "mux-floor-pure": "Mux protocol alone, pure Python",
        }
        if "error" not in hot:
            echo = hot.get("echo")
            for kind, us in hot.items():
                ratio = lambda side: " (%.1fx)" % (us[side] / echo[side],) if echo and kind != "echo" and echo[side] else ""
                lines.append("| %s, in-process | %.2f us%s | %.2f us%s |" % (names.get(kind, kind), us["client"], ratio("client"), us["server"], ratio("server")))
            floor = hot.get("mux-floor")
            if echo and floor:
                # Client and server take turns on a connection's batches, so
                # calls/s follow the sum of both sides' CPU per call.
                echoSum = echo["client"] + echo["server"]
                floorSum = floor["client"] + floor["server"]
                lines += [
                    "",
                    "With 100 calls outstanding, client and server take turns on each batch, so calls/s follow the sum "
                    "of both sides' CPU per call. The Mux protocol alone (Thrift encoding, tag map, one Deferred per "
                    "call, the txscales server) sums to %.2f us in process against the echo's %.2f us (%.2fx), before "
                    "any client stack; over loopback both also pay the system calls and the reactor, which the "
                    "echo's loopback CPU above shows, and the protocol's ceiling rises accordingly."
                    % (floorSum, echoSum, echoSum / floorSum),
                ]
    lat = results["latency"]
    if lat:
        rate = results.get("latencyRate")
        lines += [
            "",
            "## Latency at %s calls/s offered (open loop, 32 B)" % ("{:,.0f}".format(rate) if rate else "?",),
            "",
            "Half the lower of the two maximums above, lowered while ThriftMux could not keep up with it; both "
            "measured at the same offered load. Latency runs from making a call to its answer (a late tick of the "
            "load generator delays when calls are made, not their measured latency). The calls of each "
            "1 ms tick go out together, in smaller batches than the 100 of the maximums, and a call costs more in "
            "a small batch: the second table is at half this load. Ratios are to the echo's same percentile; "
            "the plot shows both latency distributions.",
        ]
        if results.get("latencyGc"):
            lines[-1] += (
                " Client and server, echo and ThriftMux alike, ran with %s: gc.freeze() once started, so that a "
                "full collection of start-up's objects, a pause of tens of ms, cannot land in one row's few seconds "
                "and not the other's." % (" ".join(results["latencyGc"]),)
            )
        lines += _latencyTable(lat)
        light = results.get("latencyLight") or {}
        if light.get("rate"):
            lines += ["", "At {:,.0f} calls/s offered:".format(light["rate"])] + _latencyTable(light)
    bal = results["balancer"]
    if bal and "error" not in bal:
        echoCall = t.get("echo", {}).get(cellName(GOAL_CELL), {}).get("best")
        sizes = sorted({int(n) for costs in bal.values() for n in costs})
        lines += [
            "",
            "## Balancer pick cost (pick + release, 100 picks outstanding)",
            "",
            "Ratios are to the same balancer at %d endpoints%s." % (
                sizes[0], "; the last column is the cost at %d endpoints as a share of one raw echo call (100 outstanding, 32 B)" % (sizes[-1],) if echoCall else ""),
            "",
            "| balancer | " + " | ".join("%d endpoints" % n for n in sizes) + (" | share of an echo call |" if echoCall else " |"),
            "|---|" + "---:|" * (len(sizes) + (1 if echoCall else 0)),
        ]
        for name in sorted(bal, key=lambda n: (n != "p2c", n)):
            costs = bal[name]
            first = costs[str(sizes[0])]
            cells = ["{:,.0f} ns ({:.2f}x)".format(costs[str(n)], costs[str(n)] / first) for n in sizes]
            if echoCall:
                cells.append("%.3fx" % (costs[str(sizes[-1])] * 1e-9 * echoCall,))
            lines.append("| %s | %s |" % (name, " | ".join(cells)))
    mem = results["memory"]
    if mem:
        lines += [
            "",
            "## Memory for %s outstanding calls (client RSS above idle)" % ("{:,}".format(HELD_CALLS),),
            "",
            "| | above idle | per call | idle RSS |",
            "|---|---:|---:|---:|",
        ]
        echo = mem.get("echo", {}).get("aboveIdle")
        for kind, title in (("echo", "raw Twisted echo (baseline)"), ("thriftmux", "txscales ThriftMux")):
            r = mem.get(kind, {})
            if "aboveIdle" not in r:
                lines.append("| %s | failed | | |" % (title,))
                continue
            ratio = " (%.1fx)" % (r["aboveIdle"] / echo,) if kind != "echo" and echo else ""
            lines.append("| %s | %.1f MB%s | {:,.0f} B | %.1f MB |".format(r["perCall"]) % (title, r["aboveIdle"] / 1e6, ratio, r["idleRss"] / 1e6))
    lines += ["", "## Goals", "", "| goal | measured | holds |", "|---|---|---|"]
    for g in results["goals"]:
        holds = "n/a" if g["holds"] is None else ("yes" if g["holds"] else "**no**")
        lines.append("| %s | %s | %s |" % (g["goal"], g["measured"], holds))
    return "\n".join(lines) + "\n"


def chart(results, path):
    """
    Draw the throughput ratios and the latency percentiles; needs
    matplotlib (C{benchmarks/run} installs it).

    @return: None, or why no chart was drawn.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed"
    t = results["throughput"]
    rows = [(row, title) for row, title in ROWS if row != "echo" and any("best" in t.get(row, {}).get(cellName(c), {}) for c in CELLS)]
    fig, axes = plt.subplots(1, 3, figsize=(19, 6.5), gridspec_kw={"width_ratios": [3, 2, 2]})
    ax = axes[0]
    width = 0.8 / max(1, len(rows))
    for i, (row, title) in enumerate(rows):
        values = []
        for c in CELLS:
            base = t.get("echo", {}).get(cellName(c), {}).get("best")
            entry = t.get(row, {}).get(cellName(c), {})
            values.append(entry["best"] / base if base and "best" in entry else 0)
        xs = [j + (i - (len(rows) - 1) / 2.0) * width for j in range(len(CELLS))]
        ax.bar(xs, values, width, label=title)
        for x, value in zip(xs, values):
            if value:
                ax.text(x, value, "%.2f" % value, ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(GOALS["throughput"], color="red", linestyle="--", linewidth=0.8, label="goal for ThriftMux at 100 outst., 32 B (0.60x)")
    ax.axhline(GOALS["throughputPure"], color="orange", linestyle=":", linewidth=0.8, label="goal for pure-Python ThriftMux (0.40x)")
    ax.set_xticks(range(len(CELLS)))
    ax.set_xticklabels([cellName(c) for c in CELLS])
    ax.set_ylabel("calls/s as a ratio to the raw Twisted echo (= 1)")
    ax.set_title("Throughput, ratio to raw echo in the same run")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    ax = axes[1]
    lat = results["latency"]
    qs = [("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")]
    for i, (kind, title) in enumerate((("echo", "raw Twisted echo"), ("thriftmux", "txscales ThriftMux"))):
        r = lat.get(kind, {})
        values = [r.get(q) or 0 for q, _ in qs]
        xs = [j + (i - 0.5) * 0.4 for j in range(len(qs))]
        ax.bar(xs, values, 0.4, label=title)
        for x, value in zip(xs, values):
            if value:
                ax.text(x, value, "%.0f" % value, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(qs)))
    ax.set_xticklabels([name for _, name in qs])
    ax.set_yscale("log")
    ax.set_ylabel("microseconds (log scale)")
    rate = results.get("latencyRate")
    ax.set_title("Latency at %s calls/s offered (32 B)" % ("{:,.0f}".format(rate) if rate else "?",))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    _latencyDistribution(axes[2], lat, rate)
    fig.suptitle("txscales benchmarks, %s" % (results["machine"]["date"],))
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    return None


def _latencyDistribution(ax, lat, rate):
    """
    Draw the share of calls slower than each latency (1 - CDF, both axes
    logarithmic, so the tail is visible) from the runs' histograms.
    """
    for kind, title in (("echo", "raw Twisted echo"), ("thriftmux", "txscales ThriftMux")):
        buckets = lat.get(kind, {}).get("histogram")
        if not buckets:
            continue
        total = float(sum(n for _, n in buckets))
        xs, ys, above = [], [], total
        for bound, n in buckets:
            above -= n
            if above > 0:
                xs.append(bound)
                ys.append(above / total)
        ax.step(xs, ys, where="post", label=title)
    for share, name in ((0.5, "p50"), (0.01, "p99"), (0.001, "p99.9")):
        ax.axhline(share, color="grey", linestyle=":", linewidth=0.6)
        ax.text(0.01, share, name, transform=ax.get_yaxis_transform(), fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency, microseconds (log scale)")
    ax.set_ylabel("share of calls slower (log scale)")
    ax.set_title("Latency distribution at %s calls/s offered" % ("{:,.0f}".format(rate) if rate else "?",))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)


def writeAtomically(path, data):
    tmp = path + ".tmp"
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp, mode) as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description="Run the txscales benchmarks.")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="where to write results.md, .json, .png")
    parser.add_argument("--quick", action="store_true", help="shorter windows, no repeats (a smoke run)")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up per throughput cell")
    parser.add_argument("--window", type=float, default=0.75, help="seconds per measuring window")
    parser.add_argument("--windows", type=int, default=3, help="measuring windows per throughput cell")
    parser.add_argument("--goal-repeats", type=int, default=1, help="extra measurements of the goals' cells")
    parser.add_argument("--latency-seconds", type=float, default=3.0)
    parser.add_argument("--balancers", default="p2c,p2c-peak-ewma,aperture,heap,round-robin")
    parser.add_argument("--only", default="throughput,latency,memory,balancer,cpu,grpc,plain-thrift", help="comma-separated parts to run (grpc: ThriftMux against gRPC at 100 outstanding, 32 B, in 3 alternating rounds; plain-thrift: the plain Thrift goal, 3 alternating rounds against TTwisted)")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.window, args.windows, args.goal_repeats, args.latency_seconds = 0.3, 0.4, 2, 0, 1.0
    parts = set(args.only.split(","))
    started = time.monotonic()
    bench = Bench(args)
    os.makedirs(args.out, exist_ok=True)
    try:
        bench.preflight()
        if "throughput" in parts:
            bench.throughput()
        if "latency" in parts:
            bench.latency()
        if "memory" in parts:
            bench.memory()
        if "balancer" in parts:
            bench.balancer()
        if "cpu" in parts:
            bench.hotpath()
        if "plain-thrift" in parts:
            bench.plainThrift()
        if "grpc" in parts:
            bench.grpcRounds(1 if args.quick else 3)
    finally:
        bench.procs.stopAll()
        if bench.genDir:
            shutil.rmtree(bench.genDir, ignore_errors=True)
    results = bench.results
    results["machine"] = machineInfo()
    results["settings"] = {"warmup": args.warmup, "window": args.window, "windows": args.windows, "goalRepeats": args.goal_repeats}
    goals = bench.goals()
    results["seconds"] = round(time.monotonic() - started, 1)
    md = markdown(results)
    writeAtomically(os.path.join(args.out, "results.md"), md)
    writeAtomically(os.path.join(args.out, "results.json"), json.dumps(results, indent=1, sort_keys=True) + "\n")
    png = os.path.join(args.out, "results.png")
    try:
        why = chart(results, png + ".tmp")
        if why is None:
            os.replace(png + ".tmp", png)
    except Exception as e:  # a chart must not lose the table
        why = "chart failed: %s" % (e,)
    sys.stdout.write("\n" + md + "\n")
    say("wrote %s, results.json%s" % (os.path.join(args.out, "results.md"), "" if why else ", results.png"))
    if why:
        say("no chart: %s" % (why,))
    for g in goals:
        state = "n/a" if g["holds"] is None else ("HOLDS" if g["holds"] else "MISSED")
        say("goal %-6s %-7s %s: %s" % (g["name"], state, g["goal"], g["measured"]))
    say("done in %.0f s" % (results["seconds"],))
    failures = [
        (row, cell)
        for table in ("throughput", "variants")
        for row, cells in results[table].items()
        for cell, entry in cells.items()
        if "error" in entry
    ]
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
