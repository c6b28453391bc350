"""
Apache Thrift's own THttpClient calling the demo service over HTTP.
Prints one JSON line.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from thrift.protocol import TBinaryProtocol  # noqa: E402
from thrift.transport import THttpClient  # noqa: E402

from txscales.demo.gen import TestService  # noqa: E402
from txscales.demo.gen.ttypes import InvalidQueryException  # noqa: E402


def main(url):
    transport = THttpClient.THttpClient(url)
    client = TestService.Client(TBinaryProtocol.TBinaryProtocol(transport))
    out = {"query": client.query("xy")}
    try:
        client.raiseError(9)
    except InvalidQueryException as e:
        out["error"] = e.errorCode
    client.log("hello")
    out["oneway"] = True
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
