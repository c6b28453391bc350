"""
Redis clients' throughput against one redis-server, in one run: commands
per second (and the client process's CPU per command) of every client of
L{clients.CLIENTS}, for GET and SET, 32 B and 1 KiB values, 1 and 100
commands outstanding: the median of several rounds whose client order
alternates.

Run by C{benchmarks/redis/run} (which makes the benchmark's venv) as
C{.peers/redis-bench/bin/python benchmarks/redis/bench.py}.  One
redis-server (no persistence, on a free port of 127.0.0.1) serves the whole
run; each measurement runs its client in a process of its own, one at a
time.  Prints a markdown table and writes it with every figure to
C{--out}: C{redis.md} and C{redis.json}.
"""

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from clients import CLIENTS, WARMUP  # noqa: E402

REDIS_SERVER = "redis-server"


def txscalesPython():
    """
    @return: the Python that runs txscales: C{$TXSCALES_PYTHON}, else the
        checkout's C{.venv}.
    """
    return os.environ.get("TXSCALES_PYTHON") or os.path.join(REPO, ".venv", "bin", "python")


class Server:
    """
    A redis-server on a free port of 127.0.0.1, without persistence.
    """

    def __init__(self, timeout=10.0):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--logfile", ""],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("redis-server did not start on port %d" % (self.port,))
            time.sleep(0.05)

    def stop(self):
        self.process.kill()
        self.process.wait()


def runOnce(name, port, command, size, outstanding, count, timeout):
    """
    One measurement of client C{name}, in a process of its own.

    @return: the JSON line its process printed, as a dictionary.
    """
    python = txscalesPython() if CLIENTS[name][0] == "txscales" else sys.executable
    env = dict(os.environ, PYTHONPATH=REPO)
    argv = [python, os.path.join(HERE, "clients.py"), name, str(port), command, str(size), str(outstanding),
            str(count)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit("%s failed (exit %s):\n%s%s" % (name, done.returncode, done.stdout, done.stderr))
    return json.loads(lines[-1])


def caseName(command, size, outstanding):
    return "%s %s %d" % (command, "1 KiB" if size == 1024 else "%d B" % (size,), outstanding)


def markdown(results, names, cases):
    head = "| command, value, outstanding | " + " | ".join(names) + " | txscales / txredisapi | " \
        "txscales / redis.asyncio | txscales / redis-benchmark |"
    rows = [head, "|---" * (len(names) + 4) + "|"]
    for case in cases:
        figures = results[case]
        cells = []
        for name in names:
            cells.append("{:,.0f} ({:.1f} us)".format(figures[name]["median"], figures[name]["cpuMicroseconds"]))
        ratios = []
        for other in ("txredisapi", "redis.asyncio", "redis-benchmark"):
            if "txscales" in figures and other in figures:
                ratios.append("%.2f" % (figures["txscales"]["median"] / figures[other]["median"],))
            else:
                ratios.append("")
        rows.append("| %s | %s | %s |" % (case, " | ".join(cells), " | ".join(ratios)))
    return "\n".join(rows) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated (default: all)")
    parser.add_argument("--commands", default="GET,SET")
    parser.add_argument("--sizes", default="32,1024", help="value sizes in bytes")
    parser.add_argument("--outstanding", default="1,100", help="commands in flight")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=None,
                        help="commands per measurement (default: 30,000 at 1 outstanding, else 200,000)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one measurement may take")
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"))
    args = parser.parse_args()
    names = [n for n in args.clients.split(",") if n]
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        parser.error("unknown clients %s (known: %s)" % (", ".join(unknown), ", ".join(CLIENTS)))
    commands = [c.upper() for c in args.commands.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    windows = [int(o) for o in args.outstanding.split(",")]

    server = Server()
    results = {}
    cases = []
    try:
        for outstanding in windows:
            for command in commands:
                for size in sizes:
                    case = caseName(command, size, outstanding)
                    cases.append(case)
                    count = args.count or (30000 if outstanding == 1 else 200000)
                    runs = {name: [] for name in names}
                    cpu = {name: [] for name in names}
                    for r in range(args.rounds):
                        for name in names if r % 2 == 0 else names[::-1]:
                            result = runOnce(name, server.port, command, size, outstanding, count, args.timeout)
                            runs[name].append(result["commandsPerSecond"])
                            cpu[name].append(result["cpuMicrosecondsPerCommand"])
                            print("redis-bench: %s, round %d, %s: %.0f commands/s, %.1f us CPU/command"
                                  % (case, r + 1, name, runs[name][-1], cpu[name][-1]), flush=True)
                    results[case] = {
                        name: {"count": count, "runs": runs[name], "median": statistics.median(runs[name]),
                               "cpuMicroseconds": statistics.median(cpu[name])}
                        for name in names
                    }
        version = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True).stdout.strip()
    finally:
        server.stop()

    table = markdown(results, names, cases)
    print(table, end="")
    report = {
        "settings": {"warmup": WARMUP, "rounds": args.rounds, "protocol": "RESP2"},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "redis": version,
        "results": results,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "redis.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(args.out, "redis.md"), "w") as f:
        f.write(
            "Redis clients against one redis-server (%s) on 127.0.0.1, RESP2, every client in its own process,"
            " one at a time: commands/s, median of %d alternating rounds (in parentheses: the client process'"
            " CPU per command).  See benchmarks/redis/clients.py for how each client keeps commands in flight"
            " (redis-sync and redis-benchmark send batches of OUTSTANDING commands per round trip). The"
            " server and the client share the machine's %d cores (with whatever else runs on it): the CPU per"
            " command varies less from run to run than the commands/s.\n\n%s"
            % (version.split(" sha=")[0], args.rounds, os.cpu_count(), table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
