"""
Use a Redis client through txscales' blocking API from plain threads, as a
script would.  Prints one JSON line with what happened.

Usage: blocking_redis.py DEST
"""

import json
import queue
import sys
import threading

from txscales.blocking import BlockingClient
from txscales.errors import ClientClosedError
from txscales.redis import Redis, WrongTypeError


def main(dest):
    redis = BlockingClient(lambda: Redis.newClient(dest, decodeResponses=True, timeout=5.0), timeout=10)
    out = {}
    out["set"] = redis.set("k", "v")
    out["get"] = redis.get("k")
    out["pipeline"] = redis.pipeline().set("n", 1).incr("n").get("n").execute()
    try:
        redis.lpush("k", "x")
    except WrongTypeError as e:
        out["wrongType"] = type(e).__name__
    # A BLPOP served by another thread's LPUSH, while this one waits.
    pusher = threading.Timer(0.2, lambda: redis.lpush("q", "pushed"))
    pusher.start()
    out["blpop"] = list(redis.blpop("q", timeout=5))
    pusher.join()
    messages = queue.Queue()
    subscription = redis.subscribe("news", onMessage=lambda channel, message: messages.put([channel, message]))
    out["active"] = subscription.active
    out["receivers"] = redis.publish("news", "hello")
    out["message"] = messages.get(timeout=5)
    subscription.unsubscribe()
    out["afterUnsubscribe"] = [subscription.active, redis.publish("news", "again")]
    redis.close()
    try:
        redis.get("k")
    except ClientClosedError as e:
        out["afterClose"] = type(e).__name__
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main(*sys.argv[1:])
