"""
One Redis client's throughput, measured in a process of its own:

    python benchmarks/redis/clients.py NAME PORT COMMAND SIZE OUTSTANDING COUNT

runs C{COUNT} commands (C{GET} or C{SET}) of key L{KEY} with values of
C{SIZE} bytes against the redis-server on 127.0.0.1:C{PORT}, keeping
C{OUTSTANDING} of them in flight, and prints one JSON line:
C{{"client", "command", "size", "outstanding", "count", "ok", "seconds",
"commandsPerSecond", "cpuMicrosecondsPerCommand"}} (the client process's
CPU, all threads).  A warm-up of L{WARMUP} commands through the same
client (connections made, code paths warm) comes first and is not timed.
The key holds a value of C{SIZE} bytes before the run, so every C{GET}
answers C{SIZE} bytes.

How each client keeps C{OUTSTANDING} commands in flight is its usual way:

  - txscales and txredisapi (Twisted): one connection; a window of
    C{OUTSTANDING} Deferreds, each reply sending the next command;
  - redis.asyncio: C{OUTSTANDING} tasks, each awaiting its commands one
    after the other; the client's pool gives each task a connection of
    its own (asyncio's client sends one command per connection at once);
  - redis-sync: one connection; at 1 outstanding, one command after the
    other; at more, a non-transactional pipeline of C{OUTSTANDING}
    commands per round trip (a batch, not a window);
  - redis-benchmark (C): C{-c 1 -P OUTSTANDING}, one connection sending
    C{OUTSTANDING} commands per round trip (a batch, as redis-sync's).

L{CLIENTS} is the table of clients: a name, the Python that runs it
(C{"bench"}: the benchmark's venv with the third-party clients,
C{"txscales"}: the project's), and a function
C{(port, command, value, outstanding, warmup, count) -> (ok, seconds,
cpuSeconds)}.
"""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _timing import timed, timedAsync  # noqa: E402

KEY = "key:000000000000"
"""The key every client reads and writes: redis-benchmark's own, without C{-r}."""

WARMUP = 2000




def window(send, count, outstanding):
    """
    Keep C{outstanding} Deferreds of C{send()} in flight until C{count}
    were sent.

    @return: a Deferred firing with how many succeeded.
    """
    from twisted.internet.defer import Deferred

    done = Deferred()
    state = {"sent": 0, "settled": 0, "ok": 0}

    def settled(result, ok):
        state["settled"] += 1
        state["ok"] += ok
        if state["sent"] < count:
            state["sent"] += 1
            send().addCallbacks(settled, failed, (1,))
        elif state["settled"] == count:
            done.callback(state["ok"])

    def failed(failure):
        settled(None, 0)

    for _ in range(min(outstanding, count)):
        state["sent"] += 1
        send().addCallbacks(settled, failed, (1,))
    return done


def onReactor(run):
    """
    Run the coroutine function C{run} on Twisted's reactor.

    @return: its result.
    """
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    outcome = []

    def main():
        d = ensureDeferred(run())
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(main)
    reactor.run()
    if not isinstance(outcome[0], tuple):
        outcome[0].raiseException()
    return outcome[0]


def txscalesClient(port, command, value, outstanding, warmup, count):
    """
    txscales' C{RedisClient} on Twisted's reactor, with its defaults
    (RESP2, no timeout, metrics on).
    """
    from twisted.internet import reactor

    from txscales.redis import Redis

    client = Redis.newClient("tcp://127.0.0.1:%d" % (port,), reactor=reactor)
    send = (lambda: client.get(KEY)) if command == "GET" else (lambda: client.set(KEY, value))

    async def run():
        try:
            return await timedAsync(lambda n: window(send, n, outstanding), warmup, count)
        finally:
            await client.close()

    return onReactor(run)


def txredisapiClient(port, command, value, outstanding, warmup, count):
    """
    txredisapi's C{Connection} (one connection) on Twisted's reactor.
    """
    from twisted.internet import reactor

    import txredisapi

    async def run():
        connection = await txredisapi.Connection("127.0.0.1", port, reconnect=False)
        send = (lambda: connection.get(KEY)) if command == "GET" else (lambda: connection.set(KEY, value))
        try:
            return await timedAsync(lambda n: window(send, n, outstanding), warmup, count)
        finally:
            await connection.disconnect()

    del reactor
    return onReactor(run)


def redisAsyncio(port, command, value, outstanding, warmup, count):
    """
    redis-py's asyncio client (with hiredis), C{OUTSTANDING} tasks.
    """
    import asyncio

    import redis.asyncio

    async def main():
        client = redis.asyncio.Redis(host="127.0.0.1", port=port)
        call = (lambda: client.get(KEY)) if command == "GET" else (lambda: client.set(KEY, value))

        async def worker(n):
            ok = 0
            for _ in range(n):
                try:
                    await call()
                    ok += 1
                except Exception:
                    pass
            return ok

        async def run(n):
            shares = [n // outstanding + (1 if i < n % outstanding else 0) for i in range(outstanding)]
            return sum(await asyncio.gather(*[worker(s) for s in shares if s]))

        try:
            return await timedAsync(run, warmup, count)
        finally:
            await client.aclose()

    return asyncio.run(main())


def redisSync(port, command, value, outstanding, warmup, count):
    """
    redis-py's synchronous client (with hiredis): one command at a time,
    or pipelines of C{OUTSTANDING} commands.
    """
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)

    def run(n):
        ok = 0
        if outstanding == 1:
            for _ in range(n):
                client.get(KEY) if command == "GET" else client.set(KEY, value)
                ok += 1
            return ok
        while ok < n:
            pipe = client.pipeline(transaction=False)
            for _ in range(min(outstanding, n - ok)):
                pipe.get(KEY) if command == "GET" else pipe.set(KEY, value)
            ok += len(pipe.execute())
        return ok

    try:
        return timed(run, warmup, count)
    finally:
        client.close()


def redisBenchmark(port, command, value, outstanding, warmup, count):
    """
    redis-benchmark (C): one connection, pipelines of C{OUTSTANDING}.  Its
    own figure of requests per second is taken; its CPU is its process'.
    """
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "1", "-P", str(outstanding),
            "-n", str(count), "-d", str(len(value)), "-t", command.lower(), "-q", "--csv"]
    before = os.times()
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    after = os.times()
    rate = float(re.findall(r'"([\d.]+)"', done.stdout.strip().splitlines()[-1])[0])
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return count, count / rate, cpu


# name: (python, function); see the module's docstring.
CLIENTS = {
    "txscales": ("txscales", txscalesClient),
    "txredisapi": ("bench", txredisapiClient),
    "redis.asyncio": ("bench", redisAsyncio),
    "redis-sync": ("bench", redisSync),
    "redis-benchmark": ("bench", redisBenchmark),
}


def prepare(port, size):
    """
    Give L{KEY} a value of C{size} bytes, with a connection of this
    process' own (hiredis only).
    """
    import socket

    import hiredis

    value = b"v" * size
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(hiredis.pack_command(("SET", KEY, value)))
        reader = hiredis.Reader()
        while True:
            reader.feed(s.recv(65536))
            reply = reader.gets()
            if reply is not False:
                break
    if reply != b"OK":
        raise SystemExit("SET %s failed: %r" % (KEY, reply))
    return value


def measure(name, port, command, size, outstanding, count):
    """
    Warm up, then time C{count} commands through client C{name}.

    @return: the result dictionary this module prints.
    """
    value = prepare(port, size)
    ok, seconds, cpuSeconds = CLIENTS[name][1](port, command, value, outstanding, WARMUP, count)
    return {
        "client": name,
        "command": command,
        "size": size,
        "outstanding": outstanding,
        "count": count,
        "ok": ok,
        "seconds": seconds,
        "commandsPerSecond": ok / seconds,
        "cpuMicrosecondsPerCommand": cpuSeconds / max(ok, 1) * 1e6,
    }


def main(argv):
    name, port, command, size, outstanding, count = argv
    result = measure(name, int(port), command.upper(), int(size), int(outstanding), int(count))
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0 if result["ok"] == result["count"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
