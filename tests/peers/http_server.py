"""
An HTTP server built on Python's own http.server, independent of Twisted,
for the HTTP client's tests.  Prints "listening on PORT" when ready.

    /echo         answers JSON {method, path, headers, body}
    /status/N     answers status N
    /slow?ms=N    answers after N milliseconds
With --thrift it runs Apache Thrift's own THttpServer for the demo
TestService (binary protocol, any path) instead.
"""

import argparse
import json
import os
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, code, body, contentType="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", contentType)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        url = urlparse(self.path)
        body = self._body()
        if url.path.startswith("/status/"):
            self._answer(int(url.path.rpartition("/")[2]), b'{"error": true}')
        elif url.path == "/slow":
            time.sleep(int(parse_qs(url.query).get("ms", ["0"])[0]) / 1000.0)
            self._answer(200, b'{"slow": true}')
        else:
            echo = {
                "server": "python-http.server",
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
            self._answer(200, json.dumps(echo).encode("utf-8"))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


def thriftServer(repo):
    """
    @return: Apache Thrift's THttpServer serving the demo service.
    """
    sys.path.insert(0, repo)
    from thrift.protocol import TBinaryProtocol
    from thrift.server import THttpServer

    from txscales.demo.gen import TestService
    from txscales.demo.gen.ttypes import InvalidQueryException

    class Demo:
        def query(self, x):
            return x + x

        def delayedQuery(self, x, delayMs):
            time.sleep(delayMs / 1000.0)
            return x + x

        def raiseError(self, code):
            raise InvalidQueryException(errorCode=code)

        def log(self, message):
            pass

    return THttpServer.THttpServer(
        TestService.Processor(Demo()), ("127.0.0.1", 0), TBinaryProtocol.TBinaryProtocolFactory(), server_class=ThreadingHTTPServer
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--thrift", action="store_true")
    args = parser.parse_args()
    if args.thrift:
        thrift = thriftServer(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        print("listening on %d" % (thrift.httpd.server_address[1],), flush=True)
        thrift.serve()
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print("listening on %d" % (server.server_address[1],), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
