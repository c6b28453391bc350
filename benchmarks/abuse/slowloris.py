"""
Slow peers against the demo server: a measurement, not a test (it runs for
minutes).  Starts C{twistd txscales demo-server} from a checkout and prints
one JSON line per run.

  - C{slowloris}: C{--connections} raw sockets (1000) each complete the Mux
    handshake, declare a 1 MiB Tdispatch and trickle it in, C{--chunk}
    bytes (4 KiB) per connection every C{--every} seconds (0.5), for
    C{--duration} seconds (70).  Reports the server's RSS and open fds
    (first, peak, last), how many of the connections the server closed and
    when, and the latency of a healthy ThriftMux client calling at 100/s
    meanwhile (p50, p99, max, failures).
  - C{chunked}: one 16 MiB frame, framed Thrift (the downgraded path) or
    Mux, sent in 4 KiB writes a fraction of a millisecond apart, so that the
    server reads it in small pieces; reports the server's CPU seconds from
    the first byte to the answer's first bytes.

Usage::

    python benchmarks/abuse/slowloris.py slowloris [--src CHECKOUT] [--flags "--read-timeout 30"]
    python benchmarks/abuse/slowloris.py chunked [--src CHECKOUT]

C{--src} is the checkout whose txscales serves (default: this one), so that
the same script measures another branch (a C{git worktree add} of it).

Measured on 2 shared cores, before the server timeouts and with their
defaults (30 s read timeout): slowloris, 1000 connections for 70 s: fds
peak 1011 -> 1011, last 1011 -> 11; RSS 62 -> 643 MB vs 64 -> 247 MB;
closed by the server 0 -> 1000 (all within 30 s of trickling); healthy
client p99 90 -> 8.3 ms.  Chunked, server CPU for one 16 MiB frame: framed
Thrift 1.82 s before the shared length-prefix decoder, 0.32-0.37 s since
(Mux 0.28-0.36 s).
"""

import argparse
import json
import os
import re
import resource
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SERVING = re.compile(r"txscales: serving .+ on (\S+):(\d+)")

# The handshake probe (Rerr "tinit check"), then a Tinit.
HANDSHAKE = bytes.fromhex(
    "0000000f8000000174696e697420636865636b"
    "0000002a4400000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666"
)
MIB = 1024 * 1024


def raiseFdLimit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """
    A C{twistd txscales demo-server} from checkout C{src}.
    """

    def __init__(self, src, flags=()):
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        env = dict(os.environ, PYTHONPATH=src, PYTHONUNBUFFERED="1")
        self.cwd = tempfile.mkdtemp(prefix="txscales-abuse-")
        argv = [sys.executable, twistd, "--pidfile=", "-n", "txscales", "demo-server"]
        argv += ["--listen", "tcp:0:interface=127.0.0.1"] + list(flags)
        self.process = subprocess.Popen(
            argv, cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=raiseFdLimit,
        )
        self.lines = []
        for line in self.process.stdout:
            self.lines.append(line)
            match = SERVING.search(line)
            if match:
                self.port = int(match.group(2))
                break
        else:
            raise RuntimeError("the server did not start:\n" + "".join(self.lines))
        self.pid = self.process.pid

    def rss(self):
        with open("/proc/%d/status" % (self.pid,)) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % (self.pid,)))

    def cpu(self):
        with open("/proc/%d/stat" % (self.pid,)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.process.terminate()
        try:
            rest, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate()
        self.lines.append(rest)
        return "".join(self.lines)


HEALTHY_CLIENT = r"""
import json, sys, time
from twisted.internet import reactor, task
from txscales.demo.gen import TestService
from txscales.thriftmux import ThriftMux

dest, duration, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
client = ThriftMux.newClient(TestService.Iface, dest, timeout=5.0, stats=False)
latencies, failures = [], {}
start = time.perf_counter()

def one():
    t = time.perf_counter()
    def ok(_):
        latencies.append(time.perf_counter() - t)
    def failed(f):
        failures[f.type.__name__] = failures.get(f.type.__name__, 0) + 1
    client.query("ping").addCallbacks(ok, failed)

loop = task.LoopingCall(one)
loop.start(1.0 / rate)

def done():
    loop.stop()
    latencies.sort()
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else None
    print(json.dumps({"calls": len(latencies), "p50ms": pick(0.5), "p99ms": pick(0.99), "maxms": pick(1.0) if latencies else None, "failures": failures}))
    reactor.stop()

reactor.callLater(duration, done)
reactor.run()
"""


def healthyClient(src, port, duration, rate=100):
    env = dict(os.environ, PYTHONPATH=src)
    return subprocess.Popen(
        [sys.executable, "-c", HEALTHY_CLIENT, "tcp://127.0.0.1:%d" % (port,), str(duration), str(rate)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def slowloris(args):
    raiseFdLimit()
    server = Server(args.src, args.flags.split())
    header = struct.pack(">IB", MIB, 2) + b"\x00\x00\x02"
    chunk = b"x" * args.chunk
    selector = selectors.DefaultSelector()
    socks = []
    for i in range(args.connections):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.setblocking(False)
        s.send(HANDSHAKE + header)
        selector.register(s, selectors.EVENT_READ, i)
        socks.append(s)
    begin = time.monotonic()
    client = healthyClient(args.src, server.port, args.duration)
    closedAt = {}
    sent = [0] * len(socks)
    samples = []
    nextTick = begin
    while time.monotonic() - begin < args.duration:
        now = time.monotonic()
        if now >= nextTick:
            for i, s in enumerate(socks):
                if i in closedAt or sent[i] + len(chunk) >= MIB - 8:
                    continue
                try:
                    sent[i] += s.send(chunk)
                except BlockingIOError:
                    pass
                except OSError:
                    closedAt.setdefault(i, now - begin)
            samples.append((round(now - begin, 1), server.rss(), server.fds()))
            nextTick += args.every
        for key, _ in selector.select(max(0.0, nextTick - time.monotonic())):
            i = key.data
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closedAt.setdefault(i, time.monotonic() - begin)
                selector.unregister(key.fileobj)
    healthy = json.loads(client.communicate(timeout=60)[0].strip().splitlines()[-1])
    for s in socks:
        s.close()
    output = server.stop()
    times = sorted(closedAt.values())
    rss = [r for _, r, _ in samples]
    fds = [f for _, _, f in samples]
    return {
        "run": "slowloris",
        "src": args.src,
        "flags": args.flags,
        "connections": args.connections,
        "bytesSentMiB": round(sum(sent) / MIB, 1),
        "rssMB": {"first": rss[0] // 10**6, "peak": max(rss) // 10**6, "last": rss[-1] // 10**6},
        "fds": {"first": fds[0], "peak": max(fds), "last": fds[-1]},
        "closedByServer": len(times),
        "closedAtS": {"first": round(times[0], 1), "median": round(times[len(times) // 2], 1), "last": round(times[-1], 1)}
        if times
        else None,
        "healthyClient": healthy,
        "serverLogLines": sum(1 for line in output.splitlines() if "timeout) from" in line),
    }


def chunked(args):
    results = {"run": "chunked", "src": args.src}
    name = b"query"
    n = 16 * MIB - 200
    body = (
        struct.pack(">Ii", 0x80010001, len(name)) + name + struct.pack(">i", 1)
        + b"\x0b\x00\x01" + struct.pack(">i", n) + b"a" * n + b"\x00"
    )
    frames = {
        "framedThrift": struct.pack(">I", len(body)) + body,
        "mux": struct.pack(">IB", len(body) + 4 + 6, 2) + b"\x00\x00\x02" + b"\x00\x00" * 3 + body,
    }
    for kind, data in frames.items():
        server = Server(args.src, ["--read-timeout", "off"] if "--read-timeout" in serverHelp(args.src) else [])
        try:
            s = socket.create_connection(("127.0.0.1", server.port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if kind == "mux":
                s.sendall(HANDSHAKE)
                got = b""
                while len(got) < len(HANDSHAKE):
                    got += s.recv(65536)
            before = server.cpu()
            for i in range(0, len(data), 4096):
                s.sendall(data[i : i + 4096])
                time.sleep(0.0002)
            s.settimeout(120)
            s.recv(65536)
            results[kind + "CpuS"] = round(server.cpu() - before, 2)
            s.close()
        finally:
            server.stop()
    return results


def serverHelp(src):
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    env = dict(os.environ, PYTHONPATH=src)
    return subprocess.run(
        [sys.executable, twistd, "txscales", "demo-server", "--help"], env=env, capture_output=True, text=True
    ).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", choices=["slowloris", "chunked"])
    parser.add_argument("--src", default=REPO, help="checkout whose txscales serves (default: this one)")
    parser.add_argument("--flags", default="", help="extra demo-server options, one string")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=70.0)
    args = parser.parse_args()
    args.src = os.path.abspath(args.src)
    result = slowloris(args) if args.run == "slowloris" else chunked(args)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
