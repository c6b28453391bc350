"""
Memory kept by aborted Mux client sessions, with Twisted logging not
started (as in a program that never calls C{beginLoggingTo}, whose log
events Twisted buffers).

A hostile server on 127.0.0.1 answers each session's handshake-less
dispatch with all but one byte of a frame just under the 16 MiB limit, then
a length prefix above it, which aborts the session.  The client makes
C{--sessions} such sessions one after the other; the script prints the RSS
growth per aborted session once they are gone and collected.

    python benchmarks/abuse/aborted.py [--sessions 20]

Measured on 2 cores, 20 sessions: 16.84 MB kept per aborted session before
the fix (RSS 98 -> 435 MB; the log events held the errors, whose tracebacks
held the received frame), 0.13 MB after (RSS 65 -> 68 MB).
"""

import argparse
import gc
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from twisted.internet import defer, endpoints, protocol, reactor  # noqa: E402

from txscales.mux.protocol import MuxClientProtocol  # noqa: E402

SIZE = 16 * 1024 * 1024 - 16
FRAME = struct.pack(">I", SIZE) + b"\x02\x00\x00\x01" + bytes(SIZE - 4)


class Hostile(protocol.Protocol):
    def dataReceived(self, data):
        if self.transport is not None and not getattr(self, "sent", False):
            self.sent = True
            self.transport.write(FRAME[:-1])
            self.transport.write(b"\x00" + struct.pack(">I", 0xFFFFFFFF))


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@defer.inlineCallbacks
def main(sessions):
    port = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        protocol.Factory.forProtocol(Hostile)
    )
    client = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)

    @defer.inlineCallbacks
    def once():
        p = yield client.connect(
            protocol.Factory.forProtocol(lambda: MuxClientProtocol(reactor, handshake=False, pingInterval=None))
        )
        d = p.dispatch(b"x")
        d.addErrback(lambda f: None)
        yield p.closed

    yield once()
    gc.collect()
    before = rss()
    for _ in range(sessions):
        yield once()
    gc.collect()
    after = rss()
    yield port.stopListening()
    print(
        json.dumps(
            {
                "sessions": sessions,
                "rssBeforeMB": round(before / 1e6, 1),
                "rssAfterMB": round(after / 1e6, 1),
                "perSessionMB": round((after - before) / sessions / 1e6, 2),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    options = parser.parse_args()
    result = []
    main(options.sessions).addBoth(result.append).addBoth(lambda _: reactor.stop())
    reactor.run()
    if result and hasattr(result[0], "raiseException"):
        result[0].raiseException()
