"""
Tests for the C{txscales} command's parts: the JSON
mapping of Thrift values, C{txscales list}'s lines, C{txscales call}'s
options, usage errors and exit statuses (with fake clients), and calls to
servers of this process.
"""

import io
import json
import os

from twisted.internet import reactor
from twisted.internet.defer import fail, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from txscales.errors import ApplicationError, ConnectError, RequestTimeoutError

SHAPES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "Shapes.thrift")

try:
    import thriftpy2
except ImportError:
    thriftpy2 = None

if thriftpy2 is not None:
    from txscales._cli._call import CALL_FAILED, DECLARED_EXCEPTION, INTERNAL_ERROR, OK, USAGE, makeClient, run
    from txscales._cli._idl import loadIdl
    from txscales._cli._json import (
        BINARY,
        BOOL,
        BYTE,
        DOUBLE,
        I16,
        I32,
        I64,
        LIST,
        MAP,
        SET,
        STRING,
        STRUCT,
        argumentsFromJson,
        fromJson,
        toJson,
    )

    shapes = loadIdl(SHAPES)


def needThriftpy2(testCase):
    """
    Skip C{testCase} without thriftpy2 (C{txscales[idl]}).
    """
    if thriftpy2 is None:
        raise SkipTest("txscales call needs thriftpy2 (txscales[idl])")


class JsonTests(SynchronousTestCase):
    """
    JSON values map to the Thrift values thriftpy2 takes by the IDL's
    types, and back.
    """

    def setUp(self):
        needThriftpy2(self)

    def assertRoundTrip(self, kind, value, python, back=None):
        """
        C{value} reads as C{python}, which writes as C{back} (default:
        C{value}).
        """
        self.assertEqual(fromJson(kind, value, "v"), python)
        self.assertEqual(toJson(kind, python), value if back is None else back)

    def assertRefused(self, kind, value, message):
        """
        C{value} does not fit C{kind}: a usage error containing C{message}.
        """
        error = self.assertRaises(UsageError, fromJson, kind, value, "f.x")
        self.assertIn(message, str(error))

    def test_scalars(self):
        """
        Booleans, integers, doubles and strings are JSON's own; a double
        also reads a JSON integer.
        """
        self.assertRoundTrip((BOOL, None), True, True)
        self.assertRoundTrip((BYTE, None), -128, -128)
        self.assertRoundTrip((I16, None), 32767, 32767)
        self.assertRoundTrip((I32, None), -(2**31), -(2**31))
        self.assertRoundTrip((I64, None), 2**63 - 1, 2**63 - 1)
        self.assertRoundTrip((DOUBLE, None), 1.5, 1.5)
        self.assertRoundTrip((DOUBLE, None), 2, 2.0, 2.0)
        self.assertRoundTrip((STRING, None), "h\u00e9", "h\u00e9")

    def test_scalarsRefused(self):
        """
        A value of the wrong JSON type or out of the integer's range is a
        usage error naming where it is and what was expected.
        """
        self.assertRefused((BYTE, None), 128, "f.x: expected an integer of 8 bits (i8), not 128")
        self.assertRefused((I32, None), True, "expected an integer of 32 bits (i32), not true")
        self.assertRefused((I64, None), 1.5, "not 1.5")
        self.assertRefused((BOOL, None), 1, "expected true or false")
        self.assertRefused((DOUBLE, None), "1", "expected a number (double)")
        self.assertRefused((STRING, None), 1, "expected a string")

    def test_binary(self):
        """
        Binary is base64; anything else is refused.
        """
        self.assertRoundTrip((BINARY, None), "AAH/", b"\x00\x01\xff")
        self.assertRefused((BINARY, None), "AAH", "expected base64 (binary)")
        self.assertRefused((BINARY, None), "\u00e9", "expected base64 (binary)")

    def test_stringBytes(self):
        """
        A string thriftpy2 could not decode as UTF-8 prints with its bad
        bytes escaped.
        """
        self.assertEqual(toJson((STRING, None), b"a\xff"), "a\\xff")

    def test_enum(self):
        """
        An enum reads its name or number and writes its name (or an
        unknown number as it is).
        """
        kind = (I32, shapes.Color)
        self.assertRoundTrip(kind, "GREEN", 2)
        self.assertEqual(fromJson(kind, 3, "v"), 3)
        self.assertEqual(toJson(kind, 9), 9)
        self.assertRefused(kind, "PURPLE", "expected Color: one of RED, GREEN, BLUE")
        self.assertRefused(kind, 7, "expected Color")

    def test_struct(self):
        """
        A struct is an object by field name; unset fields are left out,
        and a field's default applies.
        """
        point = fromJson((STRUCT, shapes.Point), {"x": 1, "label": None}, "v")
        self.assertEqual(point, shapes.Point(x=1, y=5))
        self.assertEqual(toJson((STRUCT, shapes.Point), point), {"x": 1, "y": 5})

    def test_structRefused(self):
        """
        An unknown field, a missing required one, or a bad field value is a
        usage error.
        """
        kind = (STRUCT, shapes.Point)
        self.assertRefused(kind, [1], "f.x: expected an object (Point)")
        self.assertRefused(kind, {"x": 1, "z": 2}, "f.x: Point has no field z (its fields: x, y, label)")
        self.assertRefused(kind, {"y": 2}, "f.x: Point's required field x is missing")
        self.assertRefused(kind, {"x": "1"}, "f.x.x: expected an integer of 32 bits")

    def test_containers(self):
        """
        Lists and sets are arrays (a set's elements sorted, duplicates
        gone), checked element by element.
        """
        self.assertRoundTrip((LIST, (LIST, DOUBLE)), [[1.5], []], [[1.5], []])
        self.assertRoundTrip((SET, (I32, shapes.Color)), ["RED", "BLUE"], {1, 3}, ["BLUE", "RED"])
        self.assertEqual(fromJson((SET, I32), [2, 2, 1], "v"), {1, 2})
        self.assertRefused((LIST, I32), {"a": 1}, "expected an array (list<i32>)")
        self.assertRefused((LIST, I32), [1, "2"], "f.x[1]: expected an integer")

    def test_mapObjects(self):
        """
        A map whose keys are not structs or containers is an object: its
        member names are numbers' and booleans' JSON text, strings, base64
        (binary) and enum names (or numbers).
        """
        self.assertRoundTrip((MAP, (I32, STRING)), {"1": "a", "-2": "b"}, {1: "a", -2: "b"})
        self.assertRoundTrip((MAP, (BOOL, I32)), {"true": 1}, {True: 1})
        self.assertRoundTrip((MAP, (BINARY, I32)), {"AAE=": 1}, {b"\x00\x01": 1})
        kind = (MAP, ((I32, shapes.Color), (LIST, (STRUCT, shapes.Point))))
        self.assertRoundTrip(kind, {"RED": [{"x": 1, "y": 5}]}, {1: [shapes.Point(x=1)]})
        self.assertEqual(fromJson(kind, {"3": []}, "v"), {3: []})
        self.assertRefused((MAP, (I32, STRING)), {"one": "a"}, 'f.x key "one": expected the JSON text of a i32')

    def test_mapPairs(self):
        """
        A map whose keys are structs is an array of [key, value] pairs;
        any map also reads that form.
        """
        kind = (MAP, ((STRUCT, shapes.Point), BOOL))
        self.assertRoundTrip(kind, [[{"x": 1, "y": 2}, True]], {shapes.Point(x=1, y=2): True})
        self.assertEqual(fromJson((MAP, (I32, STRING)), [[1, "a"]], "v"), {1: "a"})
        self.assertRefused(kind, [[{"x": 1}]], "expected an object, or an array of [key, value] pairs")

    def test_arguments(self):
        """
        Arguments are an object by name or an array in order; none, null
        or a shorter array leave arguments unset.
        """
        args = shapes.Shapes.move_args
        self.assertEqual(argumentsFromJson(args, {"p": {"x": 1}}, "m"), {"p": shapes.Point(x=1)})
        self.assertEqual(argumentsFromJson(args, [{"x": 1}, 3], "m"), {"p": shapes.Point(x=1), "dx": 3})
        self.assertEqual(argumentsFromJson(args, [None, 3], "m"), {"dx": 3})
        self.assertEqual(argumentsFromJson(args, None, "m"), {})
        error = self.assertRaises(UsageError, argumentsFromJson, args, {"q": 1}, "Shapes.move")
        self.assertEqual(str(error), "Shapes.move has no argument q (its arguments: p, dx)")
        error = self.assertRaises(UsageError, argumentsFromJson, args, [1, 2, 3], "Shapes.move")
        self.assertEqual(str(error), "Shapes.move takes 2 arguments (p, dx), not 3")
        error = self.assertRaises(UsageError, argumentsFromJson, args, "x", "Shapes.move")
        self.assertIn("expected arguments as an object by name or an array in order", str(error))


class FakeClient:
    """
    A client whose every method answers with C{outcome}.

    @ivar calls: (method, keyword arguments) of each call.
    @ivar closed: whether it was closed.
    """

    def __init__(self, outcome):
        self.outcome = outcome
        self.calls = []
        self.closed = False

    def __getattr__(self, name):
        def method(**kwargs):
            self.calls.append((name, kwargs))
            if isinstance(self.outcome, Exception):
                return fail(self.outcome)
            return succeed(self.outcome)

        return method

    def close(self):
        self.closed = True
        return succeed(None)


class CommandTests(SynchronousTestCase):
    """
    L{run}: the command's output and exit status.
    """

    def setUp(self):
        needThriftpy2(self)
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.made = []

    def command(self, *argv, outcome=None, stdin=None):
        """
        Run the command with a L{FakeClient} answering C{outcome}.

        @return: its exit status.
        """

        def factory(options, reactor):
            self.made.append(options)
            client = self.client = FakeClient(outcome)
            return client

        return self.successResultOf(run(Clock(), list(argv), self.out, self.err, stdin, factory))

    def call(self, method, *argv, **kwargs):
        return self.command("call", "tcp://127.0.0.1:1", method, *argv, "--idl", SHAPES, **kwargs)

    def test_list(self):
        """
        list prints each method of each service on one line, as the IDL
        declares it, its inherited methods too.
        """
        self.assertEqual(self.command("list", "--idl", SHAPES), OK)
        self.assertEqual(
            self.out.getvalue().splitlines(),
            [
                "void Base.ping()",
                "Point Shapes.move(1: Point p, 2: i32 dx = 1) throws (1: Oops oops)",
                "map<i32, string> Shapes.names(1: map<i32, string> byId, 2: map<Color, list<Point>> byColor,"
                " 3: map<Point, bool> flags)",
                "set<Color> Shapes.colors(1: set<Color> cs, 2: list<binary> blobs, 3: double d, 4: bool b,"
                " 5: i8 small, 6: i64 big, 7: i16 medium)",
                "oneway void Shapes.fire(1: i16 n)",
                "void Shapes.ping()",
            ],
        )

    def test_listService(self):
        """
        list SERVICE prints only that service's methods.
        """
        self.assertEqual(self.command("list", "Base", "--idl", SHAPES), OK)
        self.assertEqual(self.out.getvalue(), "void Base.ping()\n")

    def test_result(self):
        """
        call prints the result as JSON and exits 0, having called the
        method with the arguments by name and closed the client.
        """
        status = self.call("Shapes.move", '[{"x": 1}]', outcome=shapes.Point(x=2, label="p"))
        self.assertEqual(status, OK, self.err.getvalue())
        self.assertEqual(json.loads(self.out.getvalue()), {"x": 2, "y": 5, "label": "p"})
        self.assertEqual(self.client.calls, [("move", {"p": shapes.Point(x=1)})])
        self.assertTrue(self.client.closed)
        self.assertEqual(self.err.getvalue(), "")

    def test_optionsAnywhere(self):
        """
        Options may come before, between or after the positional arguments.
        """
        status = self.command(
            "call", "--timeout", "2", "tcp://127.0.0.1:1", "-p", "thrift", "Shapes.colors", "--compact", "--idl", SHAPES,
            '{"blobs": ["AA=="]}', outcome={2},
        )
        self.assertEqual(status, OK, self.err.getvalue())
        self.assertEqual(json.loads(self.out.getvalue()), ["GREEN"])
        self.assertEqual(self.client.calls, [("colors", {"blobs": [b"\x00"]})])
        self.assertEqual(self.made[0]["timeout"], 2.0)
        self.assertEqual(self.made[0].client, {"transport": "framed", "protocol": "compact"})

    def test_argumentsFromStdin(self):
        """
        A JSON-ARGS of - is read from standard input.
        """
        status = self.call("Shapes.fire", "-", "-p", "thrift", stdin=io.StringIO('{"n": 7}\n'))
        self.assertEqual(status, OK, self.err.getvalue())
        self.assertEqual(self.client.calls, [("fire", {"n": 7})])
        self.assertEqual(self.out.getvalue(), "null\n")

    def test_void(self):
        """
        A void method prints null.
        """
        self.assertEqual(self.call("Shapes.ping"), OK)
        self.assertEqual(self.out.getvalue(), "null\n")

    def test_declaredException(self):
        """
        A declared exception prints as JSON on standard output, exit status
        1.
        """
        status = self.call("Shapes.move", '{"p": {"x": 1}}', outcome=shapes.Oops(message="no", code=3))
        self.assertEqual(status, DECLARED_EXCEPTION)
        self.assertEqual(json.loads(self.out.getvalue()), {"exception": "Oops", "fields": {"message": "no", "code": 3}})
        self.assertTrue(self.client.closed)

    def test_applicationException(self):
        """
        The server's TApplicationException prints as JSON on standard
        output, as a declared exception does, exit status 1.
        """
        status = self.call("Shapes.ping", outcome=ApplicationError("unknown method", 1))
        self.assertEqual(status, DECLARED_EXCEPTION)
        self.assertEqual(json.loads(self.out.getvalue()),
                         {"exception": "TApplicationException", "fields": {"message": "unknown method", "type": 1}})
        self.assertEqual(self.err.getvalue(), "")
        self.assertTrue(self.client.closed)

    def test_callFailed(self):
        """
        A call failing with a txscales error (no connection, a timeout)
        prints the typed error and whether the request may have reached
        the server, exit status 2.
        """
        cases = [
            (ConnectError("cannot connect to 127.0.0.1:1"), "txscales.errors.ConnectError: cannot connect to 127.0.0.1:1"
             " [mayHaveReachedServer=False]"),
            (RequestTimeoutError(2.0), "txscales.errors.RequestTimeoutError: call timed out after 2 s"
             " [mayHaveReachedServer=True]"),
        ]
        for error, message in cases:
            self.err = io.StringIO()
            self.assertEqual(self.call("Shapes.ping", outcome=error), CALL_FAILED)
            self.assertEqual(self.err.getvalue(), "txscales call: %s\n" % (message,))
            self.assertTrue(self.client.closed)
        self.assertEqual(self.out.getvalue(), "")

    def test_internalError(self):
        """
        Any other failure is a bug: its traceback is printed, exit status
        70.
        """
        self.assertEqual(self.call("Shapes.ping", outcome=RuntimeError("bug")), INTERNAL_ERROR)
        self.assertIn("txscales call: internal error:\nTraceback", self.err.getvalue())
        self.assertIn("RuntimeError: bug", self.err.getvalue())

    def test_usageErrors(self):
        """
        A wrong command line prints an error and exits 64 without making a
        client.
        """
        idl = ("--idl", SHAPES)
        dest = "tcp://127.0.0.1:1"
        cases = [
            ((), "txscales: error: a subcommand is required: call or list"),
            (("call", dest), "txscales call: error: Wrong number of arguments."),
            (("call", dest, "Shapes.ping"), "txscales call: error: --idl FILE is required"),
            (("call", dest, "Shapes.ping", "--idl", SHAPES + ".nope"), "txscales call: error: --idl: %s.nope: " % (SHAPES,)),
            (("call", dest, "Shapes.nope") + idl, "Shapes has no method nope (methods: move, names, colors, fire, ping)"),
            (("call", dest, "Other.ping") + idl, "defines no service 'Other' (services: Base, Shapes)"),
            (("call", dest, "ping") + idl, "ping: name the service too, SERVICE.METHOD (services: Base, Shapes)"),
            (("call", dest, "Shapes.move", "{") + idl, "JSON-ARGS is not JSON ("),
            (("call", dest, "Shapes.move", '{"p": {}}') + idl, "Shapes.move.p: Point's required field x is missing"),
            (("call", dest, "Shapes.fire") + idl, "Shapes.fire is one-way, which ThriftMux does not carry"),
            (("call", dest, "Shapes.ping", "-p", "redis") + idl, "unsupported --protocol 'redis'"),
            (("call", dest, "Shapes.ping", "--compact") + idl, "--compact applies to --protocol thrift only"),
            (("call", dest, "Shapes.ping", "--transport", "buffered") + idl, "--transport applies to --protocol thrift"),
            (("call", dest, "Shapes.ping", "--path", "/x") + idl, "--path applies to --protocol http only"),
            (("call", dest, "Shapes.ping", "--timeout", "0") + idl, "--timeout must be a number of seconds over 0"),
            (("call", dest, "Shapes.ping", "--tls-ca", "ca.pem") + idl, "need --tls or a tls:// destination"),
            (("call", dest, "Shapes.ping", "--tls", "--tls-ca", "/nope.pem") + idl, "--tls-ca/--tls-cert/--tls-key: "),
            (("call", dest, "Shapes.ping", "-p", "http", "--tls", "--tls-cert", "c.pem") + idl, "takes --tls-ca only"),
            (("call", dest, "Shapes.ping", "--opportunistic-tls", "maybe") + idl, "must be desired or required"),
            (("call", dest, "Shapes.ping", "--nope") + idl, "txscales call: error: option --nope not recognized"),
            (("list",), "txscales list: error: --idl FILE is required"),
            (("list", "Other") + idl, "defines no service 'Other' (services: Base, Shapes)"),
        ]
        for argv, message in cases:
            self.err = io.StringIO()
            self.assertEqual(self.command(*argv), USAGE, argv)
            self.assertIn(message, self.err.getvalue(), argv)
            self.assertIn("Run 'txscales", self.err.getvalue())
        self.assertEqual(self.made, [])
        self.assertEqual(self.out.getvalue(), "")

    def test_badDestination(self):
        """
        A destination the client cannot parse is a usage error, found
        before anything is sent.
        """
        err = io.StringIO()
        argv = ["call", "tcp://nowhere", "Shapes.ping", "--idl", SHAPES]
        status = self.successResultOf(run(Clock(), argv, io.StringIO(), err, None, makeClient))
        self.assertEqual(status, USAGE, err.getvalue())
        self.assertIn("txscales call: error: bad host:port 'nowhere'", err.getvalue())


class ClientOptionsTests(SynchronousTestCase):
    """
    C{txscales call}'s options become the options of txscales' clients.
    """

    def setUp(self):
        needThriftpy2(self)
        from tests._tls import Authorities

        self.ca = Authorities.get()[0]

    def clientOptions(self, *argv):
        from txscales._cli._options import Options

        options = Options()
        options.parseOptions(["call", "tls://127.0.0.1:1", "Shapes.ping", "--idl", SHAPES] + list(argv))
        self.dest = options.subOptions["dest"]
        return options.subOptions.client

    def test_tls(self):
        """
        The TLS options of a ThriftMux or Thrift client are the client's
        own keyword arguments.
        """
        ca, cert, key = self.ca.path("ca.pem"), self.ca.path("client.pem"), self.ca.path("client.key")
        self.assertEqual(
            self.clientOptions("--tls-ca", ca, "--tls-cert", cert, "--tls-key", key, "--tls-hostname", "localhost"),
            {"tls": True, "tlsCa": ca, "tlsClientCert": cert, "tlsClientKey": key, "tlsHostname": "localhost"},
        )
        self.assertEqual(
            self.clientOptions("--opportunistic-tls", "desired"), {"tls": True, "opportunisticTls": "desired"}
        )

    def test_demoClientTls(self):
        """
        twistd txscales demo-client takes the same TLS options, read the
        same way.
        """
        from txscales._tls import clientTlsKeywords
        from txscales.tap import DemoClientOptions

        options = DemoClientOptions()
        options.parseOptions(["--dest", "tls://127.0.0.1:1", "--tls-ca", "ca.pem", "--tls-hostname", "example.com"])
        self.assertEqual(clientTlsKeywords(options), {"tlsCa": "ca.pem", "tlsHostname": "example.com"})

    def test_httpTls(self):
        """
        Thrift over HTTPS trusts --tls-ca's certificate; a tls://
        destination is the HTTP client's tcp:// one with tls=True.
        """
        options = self.clientOptions("-p", "http", "--tls-ca", self.ca.path("ca.pem"))
        self.assertEqual(self.dest, "tcp://127.0.0.1:1")
        self.assertEqual(options["tls"], True)
        self.assertEqual(options["trustRoot"], self.ca.trustRoot())
        self.assertEqual(options["path"], "/")


class ShapesHandler:
    """
    A handler of the Shapes service that answers with what it was given.
    """

    def __init__(self):
        self.fired = []

    def ping(self):
        pass

    def move(self, p, dx):
        if dx == 0:
            raise shapes.Oops(message="no move", code=0)
        return shapes.Point(x=p.x + dx, y=p.y, label=p.label)

    def names(self, byId, byColor, flags):
        return {len(byId): "byId", len(byColor): "byColor", len(flags): "flags"}

    def colors(self, cs, blobs, d, b, small, big, medium):
        assert blobs == [b"\x00\xff"] and d == 0.5 and b is True and (small, big, medium) == (-1, 2**40, 7), (
            blobs, d, b, small, big, medium,
        )
        return cs

    def fire(self, n):
        self.fired.append(n)


class RoundTripTests(TestCase):
    """
    C{txscales call} (in this process) against servers of the Shapes IDL:
    what it reads from JSON reaches the handler, and the handler's answers
    print back as JSON.
    """

    def setUp(self):
        needThriftpy2(self)

    @inlineCallbacks
    def serve(self, facade, **options):
        """
        Serve a L{ShapesHandler} on a free port of 127.0.0.1.

        @return: a Deferred firing with its C{tcp://} destination.
        """
        self.handler = ShapesHandler()
        server = facade.newServer(shapes.Shapes, self.handler, "tcp:0:interface=127.0.0.1", reactor=reactor, **options)
        server.startService()
        self.addCleanup(server.stopService)
        port = yield server.listening
        return "tcp://127.0.0.1:%d" % (port.getHost().port,)

    @inlineCallbacks
    def command(self, *argv):
        """
        Run C{txscales call ARGV... --idl Shapes.thrift}.

        @return: a Deferred firing with (exit status, JSON printed).
        """
        out, err = io.StringIO(), io.StringIO()
        status = yield run(reactor, ["call"] + list(argv) + ["--idl", SHAPES], out, err)
        self.assertEqual(err.getvalue(), "")
        return status, json.loads(out.getvalue())

    @inlineCallbacks
    def test_thriftMux(self):
        """
        Structs, maps in both forms, enums, sets, binary and every number
        type make the round trip over ThriftMux; a declared exception exits
        1.
        """
        from txscales.thriftmux import ThriftMux

        dest = yield self.serve(ThriftMux)
        moved = yield self.command(dest, "Shapes.move", '{"p": {"x": 1, "label": "a"}, "dx": 2}')
        self.assertEqual(moved, (OK, {"x": 3, "y": 5, "label": "a"}))
        names = yield self.command(
            dest, "Shapes.names", '[{"1": "a", "2": "b"}, {"RED": [{"x": 1}], "3": []}, [[{"x": 1}, true]]]'
        )
        self.assertEqual(names, (OK, {"2": "byColor", "1": "flags"}))
        colors = yield self.command(
            dest, "Shapes.colors",
            '{"cs": ["BLUE", "RED", 1], "blobs": ["AP8="], "d": 0.5, "b": true, "small": -1, "big": 1099511627776,'
            ' "medium": 7}',
        )
        self.assertEqual(colors, (OK, ["BLUE", "RED"]))
        failed = yield self.command(dest, "Shapes.move", '[{"x": 1}, 0]')
        self.assertEqual(failed, (DECLARED_EXCEPTION, {"exception": "Oops", "fields": {"message": "no move", "code": 0}}))

    @inlineCallbacks
    def test_thriftCompact(self):
        """
        Plain Thrift, compact and buffered, carries calls and one-way calls.
        """
        from txscales.thrift import Thrift

        dest = yield self.serve(Thrift, transport="buffered")
        thrift = ("-p", "thrift", "--compact", "--transport", "buffered")
        moved = yield self.command(dest, "Shapes.move", '[{"x": 1}]', *thrift)
        self.assertEqual(moved, (OK, {"x": 2, "y": 5}))
        fired = yield self.command(dest, "Shapes.fire", "[3]", *thrift)
        self.assertEqual(fired, (OK, None))
