"""
Hostile peers against the demo server, measured: the server's memory, a
healthy client's latency meanwhile, and whether the server closed the
hostile connection.

    .venv/bin/python benchmarks/abuse/flood.py flood [--calls 200000]
    .venv/bin/python benchmarks/abuse/flood.py delayed [--calls 200000]
    .venv/bin/python benchmarks/abuse/flood.py fragments [--tags 40 --mib 15]
    .venv/bin/python benchmarks/abuse/flood.py empty-fragments [--count 10000000]
    .venv/bin/python benchmarks/abuse/flood.py slow-reader [--calls 20000]

Each scenario starts C{twistd -n txscales demo-server} from this checkout (or
the one named by C{--tree}), runs the hostile peer on one raw socket for
C{--seconds} while a healthy raw Mux client calls C{query} in a loop on
another connection, and prints one JSON line:

  - C{peakRssMB}: the server's largest resident set size seen (sampled every
    20 ms), and C{startRssMB} before the attack;
  - C{healthyP99ms}, C{healthyCalls}, C{healthyTimeouts} (1 s each);
  - C{closedByServer}: whether the server closed the hostile connection;
  - C{sentMB}: what the hostile peer managed to send;
  - C{serverCpuPerHealthyCallUs}: the server's CPU time per healthy call,
    measured for 2 s before the attack;
  - for C{slow-reader} (a peer with the smallest receive buffer, reading 1
    byte at a time): C{serverCpuPerReplyUs}, the server's CPU time per
    reply the peer received, the healthy client's share taken out.

Scenarios:
  - flood: C{--calls} Tdispatch C{query} calls (1 KiB payloads), never read;
  - delayed: the same with C{delayedQuery} of 60 s;
  - fragments: C{--tags} tags each sent C{--mib} MiB of fragments, never
    finished;
  - empty-fragments: C{--count} empty fragments of one tag.
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

from _recovery import freePort  # this folder, first on the path of a script

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(os.path.dirname(HERE))


def frame(typeCode, tag, body):
    return struct.pack(">IbBH", len(body) + 4, typeCode, tag >> 16, tag & 0xFFFF) + body


def dispatchBody(payload):
    # No contexts, no dst, no dtab, then the Thrift message.
    return b"\x00\x00" + b"\x00\x00" + b"\x00\x00" + payload


def thriftCall(name, fields):
    """
    A binary-protocol Thrift call: C{fields} already encoded, then STOP.
    """
    return struct.pack(">iI", -2147418111, len(name)) + name + struct.pack(">i", 0) + fields + b"\x00"


def stringField(fid, value):
    return struct.pack(">bhI", 11, fid, len(value)) + value


def i32Field(fid, value):
    return struct.pack(">bhi", 8, fid, value)


def query(payload):
    return dispatchBody(thriftCall(b"query", stringField(1, payload)))


def delayedQuery(payload, ms):
    return dispatchBody(thriftCall(b"delayedQuery", stringField(1, payload) + i32Field(2, ms)))


def readFrame(sock):
    header = recvExactly(sock, 4)
    (length,) = struct.unpack(">I", header)
    return recvExactly(sock, length)


def recvExactly(sock, n):
    parts = []
    while n:
        data = sock.recv(n)
        if not data:
            raise ConnectionError("closed")
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def rssMB(pid):
    with open("/proc/%d/status" % (pid,)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def cpuSeconds(pid):
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def startServer(tree, port, extra):
    env = dict(os.environ, PYTHONPATH=tree)
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    argv = [twistd, "--pidfile=", "-n", "--logfile=/dev/null", "txscales", "demo-server"]
    argv += ["--listen", "tcp:%d:interface=127.0.0.1" % (port,)] + extra
    process = subprocess.Popen(argv, env=env, cwd="/tmp", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the server did not start")


class Healthy(threading.Thread):
    """
    A healthy client: one query at a time, timing each.
    """

    def __init__(self, port, interval):
        threading.Thread.__init__(self, daemon=True)
        self.interval = interval
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(1.0)
        self.latencies = []
        self.timeouts = 0
        self.running = True

    def run(self):
        request = frame(2, 2, query(b"h" * 100))
        while self.running:
            start = time.perf_counter()
            try:
                self.sock.sendall(request)
                readFrame(self.sock)
            except socket.timeout:
                self.timeouts += 1
                self.sock.close()
                return
            self.latencies.append(time.perf_counter() - start)
            time.sleep(self.interval)


class Hostile(threading.Thread):
    """
    Send C{chunks} (an iterator of bytes) until done, closed or stopped.
    """

    def __init__(self, port, chunks, recvBuffer=None):
        threading.Thread.__init__(self, daemon=True)
        self.sock = socket.socket()
        if recvBuffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recvBuffer)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.chunks = chunks
        self.sent = 0
        self.closedByServer = False
        self.running = True

    def run(self):
        for chunk in self.chunks:
            view = memoryview(chunk)
            while view and self.running:
                try:
                    n = self.sock.send(view)
                except socket.timeout:
                    continue
                except OSError:
                    self.closedByServer = True
                    return
                self.sent += n
                view = view[n:]
            if not self.running:
                return

    def checkClosed(self):
        """
        @return: whether the server closed the connection (reading what it
            sent, without waiting).
        """
        if self.closedByServer:
            return True
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    return True
        except BlockingIOError:
            return False
        except OSError:
            return True


def replySize(port):
    """
    @return: the size of the slow reader's reply, measured on a new
        connection.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(frame(2, 2, query(b"s" * 100)))
        return 4 + len(readFrame(sock))
    finally:
        sock.close()


def batches(messages, per=256):
    batch = []
    for message in messages:
        batch.append(message)
        if len(batch) == per:
            yield b"".join(batch)
            batch = []
    if batch:
        yield b"".join(batch)


def scenario(args):
    if args.scenario == "flood":
        body = query(b"a" * 1024)
        return batches(frame(2, 2 + i % 8000000, body) for i in range(args.calls))
    if args.scenario == "delayed":
        body = delayedQuery(b"a" * 1024, 60000)
        return batches(frame(2, 2 + i, body) for i in range(args.calls))
    if args.scenario == "fragments":
        piece = b"f" * (1 << 20)

        def fragments():
            for tag in range(2, 2 + args.tags):
                for _ in range(args.mib):
                    yield frame(2, tag | 0x800000, piece)

        return fragments()
    if args.scenario == "empty-fragments":
        batch = frame(2, 2 | 0x800000, b"") * 65536
        return [batch] * (args.count // 65536)
    if args.scenario == "slow-reader":
        body = query(b"s" * 100)
        return batches(frame(2, 2 + i, body) for i in range(args.calls))
    raise SystemExit("unknown scenario %r" % (args.scenario,))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["flood", "delayed", "fragments", "empty-fragments", "slow-reader"])
    parser.add_argument("--tree", default=TREE, help="the txscales checkout the server runs from")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--calls", type=int, default=200000)
    parser.add_argument("--tags", type=int, default=40)
    parser.add_argument("--mib", type=int, default=15)
    parser.add_argument("--count", type=int, default=10000000)
    parser.add_argument("--healthy-interval", type=float, default=0.002, help="seconds between healthy calls")
    parser.add_argument("--server-option", action="append", default=[], help="passed on to demo-server")
    args = parser.parse_args()
    port = freePort()
    server = startServer(os.path.abspath(args.tree), port, args.server_option)
    try:
        time.sleep(0.5)
        startRss = rssMB(server.pid)
        healthy = Healthy(port, args.healthy_interval)
        healthy.start()
        time.sleep(0.5)
        # What the healthy client costs the server alone, per call.
        calls, cpu = len(healthy.latencies), cpuSeconds(server.pid)
        time.sleep(2.0)
        healthyCpu = (cpuSeconds(server.pid) - cpu) / max(1, len(healthy.latencies) - calls)
        healthy.latencies = []
        slow = args.scenario == "slow-reader"
        hostile = Hostile(port, scenario(args), recvBuffer=1 if slow else None)
        startCpu = cpuSeconds(server.pid)
        hostile.start()
        peak = startRss
        received = 0
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            peak = max(peak, rssMB(server.pid))
            if slow:
                # Read one byte at a time, as a 1-byte window would let us.
                # (The socket's timeout, 0.2 s, is shared with the sending
                # thread.)
                try:
                    for _ in range(200):
                        if hostile.sock.recv(1):
                            received += 1
                except (socket.timeout, BlockingIOError):
                    pass
            else:
                time.sleep(0.02)
        cpu = cpuSeconds(server.pid) - startCpu
        hostile.running = False
        healthy.running = False
        closed = hostile.checkClosed()
        healthy.join(2)
        latencies = sorted(healthy.latencies)
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000 if latencies else None
        result = {
            "scenario": args.scenario,
            "tree": os.path.abspath(args.tree),
            "startRssMB": round(startRss, 1),
            "peakRssMB": round(peak, 1),
            "healthyP99ms": round(p99, 2) if p99 is not None else None,
            "healthyCalls": len(latencies),
            "healthyTimeouts": healthy.timeouts,
            "closedByServer": closed,
            "sentMB": round(hostile.sent / 1e6, 1),
            "serverCpuSeconds": round(cpu, 2),
            "serverCpuPerHealthyCallUs": round(healthyCpu * 1e6, 1),
        }
        if slow:
            replies = received / float(replySize(port))
            result["bytesReceived"] = received
            # The healthy client's share taken out.
            attack = cpu - healthyCpu * len(latencies)
            result["serverCpuPerReplyUs"] = round(attack / replies * 1e6, 1) if replies else None
        print(json.dumps(result, sort_keys=True))
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
