"""
Log bytes a peer makes a real C{twistd txscales demo-server} write by sending
requests that are not Thrift.

The script starts the server (logging to a file), opens C{--connections}
raw sockets, negotiates Mux on each and sends its share of C{--requests}
Tdispatch messages whose body is not Thrift, reads every answer, closes the
socket, stops the server and prints the log bytes written for the bad
requests, and how many answers were errors.

    python benchmarks/abuse/badrequests.py [--requests 10000] [--connections 1]

Measured on 2 cores, 10,000 bad requests, every one answered with an
Rdispatch error both times: before the fix 8,510,054 log bytes (140,004
lines, 851 bytes a request: a critical traceback each), on one connection or
on 100; after it 316 bytes (2 lines) on one connection and 2,654 bytes
(20 lines) on 100.
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

from _recovery import freePort  # this folder, first on the path of a script

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MARKER = bytes.fromhex("0000000f7f00000174696e697420636865636b")
TINIT = bytes.fromhex("0000002a4400000100010000000a6d75782d6672616d6572000000047fffffff00000003746c73000000036f6666")
BODY = b"not a thrift message at all"
TWISTD = "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"


def dispatch(tag):
    payload = struct.pack(">BBH", 2, tag >> 16, tag & 0xFFFF) + b"\x00\x00\x00\x00\x00\x00" + BODY
    return struct.pack(">I", len(payload)) + payload


def readFrames(sock, count):
    """
    @return: the type bytes of C{count} frames read from C{sock}.
    """
    buf = b""
    types = []
    while len(types) < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">I", buf)[0]:
            size = struct.unpack_from(">I", buf)[0]
            types.append((buf[4], buf[8] if size > 4 else None))
            buf = buf[4 + size :]
    return types


def _lines(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def main(requests, connections, tree):
    port = freePort()
    logDir = tempfile.mkdtemp()
    logFile = os.path.join(logDir, "twistd.log")
    env = dict(os.environ, PYTHONPATH=tree)
    server = subprocess.Popen(
        [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "--logfile", logFile, "txscales", "demo-server",
         "--listen", "tcp:%d:interface=127.0.0.1" % (port,)],
        env=env,
        cwd=logDir,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        time.sleep(0.5)
        before = os.path.getsize(logFile)
        beforeLines = _lines(logFile)
        errors = 0
        perConnection = requests // connections
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(MARKER + TINIT)
            readFrames(sock, 2)
            sent = 0
            while sent < perConnection:
                batch = min(1000, perConnection - sent)
                sock.sendall(b"".join(dispatch(2 + n) for n in range(batch)))
                # Rdispatch (0xfe) with status 1 (error).
                errors += sum(1 for t in readFrames(sock, batch) if t == (0xFE, 1))
                sent += batch
            sock.close()
        time.sleep(1.0)
    finally:
        server.terminate()
        server.wait(30)
    # twistd rotates its log file every megabyte: count every file.
    rotated = [os.path.join(logDir, n) for n in os.listdir(logDir) if n.startswith("twistd.log.")]
    with open(logFile, "rb") as f:
        current = f.read()
    # The lines of stopping the server are not the bad requests'.
    current = current.split(b"Received SIGTERM")[0]
    logBytes = sum(map(os.path.getsize, rotated)) + len(current) - before
    lines = current.count(b"\n") + sum(_lines(p) for p in rotated) - beforeLines
    print(json.dumps({"requests": requests, "connections": connections, "errorAnswers": errors,
                      "logBytes": logBytes, "logLines": lines,
                      "logBytesPerRequest": round(logBytes / requests, 2)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--tree", default=ROOT, help="the txscales checkout to serve (default: this one)")
    options = parser.parse_args()
    main(options.requests, options.connections, options.tree)
