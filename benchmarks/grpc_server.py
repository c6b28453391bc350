"""
The gRPC benchmark server process: grpcio's own asyncio server
(C{grpc.aio.server()}, default options) with one unary method,
C{/txscales.bench.Echo/Query}, served by a generic handler on bytes (no
generated code, no serializers: grpcio hands the request's bytes over as they
are).  It answers C{x + x}, like the demo C{TestService.query} the other
servers run.  It listens on a free port of 127.0.0.1, prints C{{"port": N}}
on stdout, and serves until it is terminated.

    .peers/grpc-bench/bin/python benchmarks/grpc_server.py

It runs in the C{.peers/grpc-bench} venv that C{benchmarks/run} makes (grpcio
is never installed into C{.venv}), and imports neither Twisted nor txscales.
"""

import asyncio
import json
import os
import signal
import sys

SERVICE = "txscales.bench.Echo"
METHOD = "Query"


async def query(request, context):
    """
    @return: C{request + request}.
    """
    return request + request


async def serve():
    import grpc

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(query)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    sys.stdout.write(json.dumps({"port": port, "kind": "grpc", "grpcio": grpc.__version__, "python": sys.version.split()[0], "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    await stopping.wait()
    await server.stop(None)


if __name__ == "__main__":
    asyncio.run(serve())
