"""
The gRPC benchmark client process: grpcio's own asyncio client
(C{grpc.aio.insecure_channel}, default options) calling the unary
C{/txscales.bench.Echo/Query} of L{grpc_server} with bytes (C{channel.unary_unary(path)}, no generated code, no
serializers).  It runs one throughput measurement and prints one JSON line,
like L{client}.

    .peers/grpc-bench/bin/python benchmarks/grpc_client.py --port P --size 32 --concurrency 100

All calls share one channel, so one HTTP/2 connection carries the
C{--concurrency} calls outstanding as streams (the result's C{connections}
counts the connections to the server when the measurement ended), as one
ThriftMux connection carries its tagged calls.  The load is the harness's
L{ClosedLoop} (its windows and CPU clock) on the asyncio loop: each of
C{--concurrency} tasks awaits one call after another.  It runs in the
C{.peers/grpc-bench} venv that C{benchmarks/run} makes (with grpcio and
Twisted, whose L{Failure} the shared code records failures with).
"""

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import ClosedLoop, emit, payload  # noqa: E402
from grpc_server import METHOD, SERVICE  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402


class _Clock:
    """
    The one method of a reactor that L{ClosedLoop} schedules its windows with,
    on an asyncio loop.
    """

    def __init__(self, loop):
        self.callLater = loop.call_later


class AsyncioClosedLoop(ClosedLoop):
    """
    L{ClosedLoop} on an asyncio loop: C{concurrency} tasks, each awaiting
    C{call()} (an awaitable) in turn until the last window ends.
    """

    def run(self):
        """
        @return: an asyncio future that resolves once every call ended.
        """
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()
        self._tasks = [loop.create_task(self._worker()) for _ in range(self._concurrency)]
        self._reactor.callLater(self._warmup, self._startWindow)
        return self._ended

    async def _worker(self):
        call, check, expected = self._call, self.outcome.check, self._expected
        while not self._stopping:
            self._outstanding += 1
            try:
                result = await call()
            except Exception:
                result = Failure()
            self._outstanding -= 1
            if check(result, expected):
                self._answered += 1
        if self._outstanding == 0 and not self._ended.done():
            self._ended.set_result(self)


def connections(port):
    """
    @return: how many established TCP connections go to C{port} on this
        host, from C{/proc/net/tcp} and C{tcp6} (grpcio's IPv4 sockets are
        IPv6 ones, mapped): the harness runs one client at a time, so these
        are this client's.
    """
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            rows += [line.split() for line in f.readlines()[1:]]
    return sum(1 for row in rows if int(row[2].rsplit(":", 1)[1], 16) == port and row[3] == "01")


async def measure(args, result):
    import grpc

    result["grpcio"] = grpc.__version__
    async with grpc.aio.insecure_channel("127.0.0.1:%d" % (args.port,)) as channel:
        query = channel.unary_unary("/%s/%s" % (SERVICE, METHOD))
        x = payload(args.size, text=False)
        expected = x + x
        # The first call connects; its answer must be right.
        first = await query(x)
        if first != expected:
            raise AssertionError("wrong first answer: %r" % (first[:40],))
        loop = asyncio.get_running_loop()
        run = AsyncioClosedLoop(_Clock(loop), lambda: query(x), expected, args.concurrency, args.warmup, args.window, args.windows)
        await run.run()
        result["connections"] = connections(args.port)
        result.update(run.asDict())
    result["ok"] = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=32, help="payload bytes (x of Query(x))")
    parser.add_argument("--concurrency", type=int, default=100, help="calls outstanding")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--windows", type=int, default=3)
    args = parser.parse_args()
    result = {"kind": "grpc", "mode": "throughput", "size": args.size, "python": sys.version.split()[0], "pid": os.getpid()}
    try:
        asyncio.run(measure(args, result))
    except Exception as e:
        result["ok"] = False
        result["error"] = ("%s: %s" % (type(e).__name__, e))[:500]
        import traceback

        traceback.print_exc()
    emit(result)


if __name__ == "__main__":
    main()
