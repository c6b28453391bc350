"""
Use txscales' blocking API from plain threads, as a script or WSGI app
would: crochet runs the reactor in a background thread.  Prints one JSON
line with what happened.
"""

import json
import sys
import threading

import crochet

from txscales.blocking import BlockingClient, setup
from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.errors import RequestTimeoutError
from txscales.thriftmux import ThriftMux


def main():
    setup()
    from twisted.internet import reactor

    @crochet.wait_for(timeout=10)
    def startServer():
        from txscales.demo.handler import TestServiceHandler

        server = ThriftMux.newServer(TestService.Iface, TestServiceHandler(reactor), "tcp:0:interface=127.0.0.1")
        server.startService()
        return server.listening.addCallback(lambda port: port.getHost().port)

    port = startServer()
    client = BlockingClient(
        lambda: ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (port,)), timeout=0.5
    )
    out = {"mainThread": client.query("m")}
    answers = []
    threads = [threading.Thread(target=lambda i=i: answers.append(client.query("t%d" % i))) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["threads"] = sorted(answers)
    try:
        client.raiseError(4)
    except InvalidQueryException as e:
        out["declared"] = e.errorCode
    try:
        client.delayedQuery("slow", 5000)
    except RequestTimeoutError as e:
        out["timeout"] = e.timeout
    out["afterTimeout"] = client.query("a")
    client.close()
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
