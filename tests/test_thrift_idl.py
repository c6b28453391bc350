"""
Thrift services loaded at run time by thriftpy2 (C{txscales.thrift.loadIdl}):
the same bytes, values and outcomes as the code Apache Thrift's compiler
generated from the same IDL (C{tests/data/Everything.thrift}, generated into
C{tests/idlgen/}), in both protocols, in the codec and through clients and
servers in memory.
"""

import os
import shutil
import sys
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site

from tests.idlgen import Everything as GeneratedEverything, ttypes as generated
from txscales.errors import ApplicationError, IdlError, MissingExtraError, TxScalesError, UnsupportedError
from txscales.http import ThriftHttp
from txscales.testing import MemoryNetwork
from txscales.thrift import BINARY, COMPACT, idlService, idlServices, loadIdl, missingMethods
from txscales.thrift._codec import (
    decodeArgs,
    decodeReply,
    describeService,
    encodeArgs,
    encodeResult,
    readMessageBegin,
)
from txscales.thrift._idl import isRuntimeService

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
IDL = os.path.join(DATA, "Everything.thrift")
DEMO_IDL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "txscales", "demo", "TestService.thrift")
runtime = loadIdl(IDL)
RUNTIME = runtime.Everything
GENERATED = GeneratedEverything.Iface
DEST = "tcp://127.0.0.1:9090"


def shape(types, **fields):
    """
    @return: a C{Shape} of C{types} (the thriftpy2 module or the generated
        C{ttypes}) with every field set, but those given.
    """
    values = dict(
        name="square",
        data=b"\x00\xff\x80",
        color=types.Color.BLUE,
        points=[types.Point(x=1, y=2), types.Point(x=-3)],
        tags={"a", "b\u00e9"},
        groups={"g": [types.Point(x=4, y=5)], "empty": []},
        origin=types.Point(x=0, y=0),
        filled=False,
        weight=2.5,
        tiny=-128,
        small=32767,
        big=-(2**63),
        nested=[{types.Color.RED: {1, 2**40}}, {}],
    )
    values.update(fields)
    return types.Shape(**values)


def calls(types):
    """
    @return: (method, positional arguments) of calls with values of
        C{types}.
    """
    return [
        ("echoShape", [shape(types)]),
        ("echoShape", [types.Shape()]),
        ("containers", [[1, 2, 3], {"x": {7}, "y": set()}, True]),
        ("bytesOf", ["caf\u00e9"]),
        ("textOf", [b"caf\xc3\xa9"]),
        ("pick", [[types.Color.RED, types.Color.BLUE]]),
        ("grow", [types.Tree(label="root", children=[types.Tree(label="leaf", children=[])]), types.Value(text="t")]),
        ("withDefaults", []),
        ("nothing", []),
        ("fire", ["event"]),
    ]


def results(types):
    """
    @return: (method, value) of replies with values of C{types}.
    """
    return [
        ("echoShape", shape(types)),
        ("echoShape", types.Shape()),
        ("containers", {"x": [{1, 2}, set()], "": []}),
        ("bytesOf", b"\xff"),
        ("textOf", "\u2603"),
        ("pick", types.Color.GREEN),
        ("grow", types.Tree(label="t", children=[types.Tree(label="u")])),
        ("withDefaults", 2**40),
        ("nothing", None),
    ]


def exceptions(types):
    """
    @return: (method, declared exception) of replies with exceptions of
        C{types}.
    """
    return [
        ("echoShape", types.NotFound(key="k")),
        ("echoShape", types.Invalid(code=3)),
        ("echoShape", types.Invalid(code=4, reason=None)),
    ]


def writeIdl(case, text):
    """
    @return: the path of a new IDL file holding C{text}, removed after
        C{case}.
    """
    folder = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, folder)
    path = os.path.join(folder, "Test.thrift")
    with open(path, "w") as f:
        f.write(text)
    return path


class EverythingHandler:
    """
    Serve C{Everything} with the classes of C{types}.

    @ivar events: what C{fire} received, in order.
    """

    def __init__(self, types):
        self.types = types
        self.events = []

    def echoShape(self, shape):
        if not shape.name:
            raise self.types.NotFound(key="name")
        if not shape.points:
            raise self.types.Invalid(code=len(shape.tags or ()))
        return shape

    def containers(self, numbers, groups, flag):
        return {key: [value, set(numbers)] for key, value in groups.items()} if flag else {}

    def bytesOf(self, text):
        return text.encode("utf-8")

    def textOf(self, data):
        return data.decode("utf-8")

    def pick(self, colors):
        return max(colors)

    def grow(self, seed, value):
        return self.types.Tree(label="%s/%s" % (seed.label, value.text or value.number), children=[seed])

    def withDefaults(self, a, b):
        return a * len(b)

    def nothing(self):
        return None

    def fire(self, event):
        self.events.append(event)


def fields(value):
    """
    @return: C{value} with each struct replaced by (class name, its fields),
        recursively: what a generated and a thriftpy2 value have in common,
        hashable (lists as tuples, sets as frozensets, maps as frozensets
        of their items), so that it compares whatever order a set or a map
        was filled in.
    """
    if isinstance(value, (list, tuple)):
        return tuple(fields(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(fields(v) for v in value)
    if isinstance(value, dict):
        return frozenset((fields(k), fields(v)) for k, v in value.items())
    if hasattr(value, "thrift_spec"):
        return (type(value).__name__, tuple(sorted((k, fields(v)) for k, v in vars(value).items())))
    return value


class CodecTests(SynchronousTestCase):
    """
    The codec makes the bytes of generated code from thriftpy2's classes,
    and reads those bytes back into them.
    """

    def setUp(self):
        self.runtime = describeService(RUNTIME)
        self.generated = describeService(GENERATED)

    def test_recognised(self):
        """
        A thriftpy2 service class is told apart from a generated Iface, and
        has the generated service's methods.
        """
        self.assertTrue(isRuntimeService(RUNTIME))
        self.assertFalse(isRuntimeService(GENERATED))
        self.assertFalse(isRuntimeService(runtime))
        self.assertEqual(sorted(self.runtime), sorted(self.generated))
        for name, method in self.runtime.items():
            other = self.generated[name]
            self.assertEqual(
                (method.oneway, method.hasSuccess, [f for f, _ in method.exceptions]),
                (other.oneway, other.hasSuccess, [f for f, _ in other.exceptions]),
                name,
            )

    def test_notAService(self):
        """
        A loaded module, rather than one of its services, is refused with a
        message saying what is expected.
        """
        error = self.assertRaises(TypeError, describeService, runtime)
        self.assertIn("not a generated Iface class nor a service class of a loaded IDL", str(error))

    def test_argumentNames(self):
        """
        The arguments are named in IDL order, not in field id order, for
        generated code too: a handler takes them in that order.
        """
        self.assertEqual(self.generated["containers"].argNames, ["numbers", "groups", "flag"])
        self.assertEqual(self.runtime["containers"].argNames, ["numbers", "groups", "flag"])
        self.assertEqual(self.runtime["withDefaults"].argNames, ["a", "b"])

    def test_calls(self):
        """
        Calls made with thriftpy2's values are byte for byte those made
        with the generated ones, in both protocols, and decode back into
        values of thriftpy2's classes equal to those sent.
        """
        for protocol in (BINARY, COMPACT):
            for (name, args), (_, generatedArgs) in zip(calls(runtime), calls(generated)):
                method = self.runtime[name]
                data = encodeArgs(method, args, {}, protocol)
                self.assertEqual(data, encodeArgs(self.generated[name], generatedArgs, {}, protocol), (protocol, name))
                self.assertEqual(method.callHeader(5, protocol), self.generated[name].callHeader(5, protocol))
                _, _, _, _, reader = readMessageBegin(method.callHeader(5, protocol) + data)
                decoded = decodeArgs(method, reader, protocol)
                # The defaults the call left out are sent, and read back.
                expected = args or [method.argsClass().__dict__[n] for n in method.argNames]
                self.assertEqual(decoded, expected, (protocol, name))

    def test_replies(self):
        """
        Replies made with thriftpy2's values are byte for byte those made
        with the generated ones, and decode into equal values.
        """
        for protocol in (BINARY, COMPACT):
            for (name, value), (_, generatedValue) in zip(results(runtime), results(generated)):
                method = self.runtime[name]
                data = encodeResult(method, 9, protocol, value)
                self.assertEqual(data, encodeResult(self.generated[name], 9, protocol, generatedValue), (protocol, name))
                self.assertEqual(decodeReply(method, data), value, (protocol, name))
                self.assertEqual(fields(decodeReply(self.generated[name], data)), fields(value))

    def test_declaredExceptions(self):
        """
        A declared exception of thriftpy2's classes makes the bytes of the
        generated one, and a reply carrying it raises it as thriftpy2's
        class.
        """
        for protocol in (BINARY, COMPACT):
            for (name, error), (_, generatedError) in zip(exceptions(runtime), exceptions(generated)):
                method = self.runtime[name]
                data = encodeResult(method, 9, protocol, exception=error)
                self.assertEqual(data, encodeResult(self.generated[name], 9, protocol, exception=generatedError))
                raised = self.assertRaises(type(error), decodeReply, method, data)
                # A field left out is read as its default.
                expected = type(error)(**{k: v for k, v in vars(error).items() if v is not None})
                self.assertEqual(vars(raised), vars(expected))

    def test_undeclaredException(self):
        """
        An exception the method does not declare cannot be encoded as its
        result, as with generated code.
        """
        for error in [ValueError(), generated.NotFound()]:
            self.assertRaises(TypeError, lambda: encodeResult(self.runtime["echoShape"], 1, BINARY, exception=error))

    def test_defaults(self):
        """
        Fields left out take the IDL's defaults on both sides: on a struct
        made with no fields, and on a nested struct read without them.
        """
        point = runtime.Point(x=1, y=None)
        data = encodeResult(self.runtime["echoShape"], 0, BINARY, runtime.Shape(origin=point))
        self.assertEqual(data, encodeResult(self.generated["echoShape"], 0, BINARY, generated.Shape(origin=generated.Point(x=1, y=None))))
        decoded = decodeReply(self.runtime["echoShape"], data)
        self.assertEqual((decoded.name, decoded.color, decoded.filled), ("shape", runtime.Color.GREEN, True))
        self.assertEqual(decoded.origin, runtime.Point(x=1, y=7))
        self.assertEqual(fields(decodeReply(self.generated["echoShape"], data)), fields(decoded))

    def test_binaryAndString(self):
        """
        A binary field reads as bytes and a string as text; a string that
        is not UTF-8 reads as generated code reads it.
        """
        self.assertIsInstance(decodeReply(self.runtime["bytesOf"], encodeResult(self.runtime["bytesOf"], 0, BINARY, b"x")), bytes)
        self.assertIsInstance(decodeReply(self.runtime["textOf"], encodeResult(self.runtime["textOf"], 0, BINARY, "x")), str)
        notText = encodeResult(self.runtime["bytesOf"], 0, BINARY, b"\xff")
        notText = self.runtime["textOf"].replyHeader + notText[len(self.runtime["bytesOf"].replyHeader) :]
        self.assertEqual(decodeReply(self.runtime["textOf"], notText), "\ufffd")
        self.assertEqual(decodeReply(self.generated["textOf"], notText), "\ufffd")

    def test_oneway(self):
        """
        A one-way method has no result and calls with the ONEWAY message
        type.
        """
        method = self.runtime["fire"]
        self.assertTrue(method.oneway)
        self.assertIsNone(method.resultClass)
        self.assertEqual(method.callHeaderZero, self.generated["fire"].callHeaderZero)

    def test_extends(self):
        """
        A service extending another has the other's methods too.
        """
        module = loadIdl(self.writeIdl("service A { i32 f(1: i32 x) }\nservice B extends A { oneway void g() }"))
        methods = describeService(module.B)
        self.assertEqual(sorted(methods), ["f", "g"])
        self.assertEqual((methods["f"].argNames, methods["f"].oneway, methods["g"].oneway), (["x"], False, True))

    def test_negativeFieldId(self):
        """
        A negative field id, which Apache Thrift's encoder cannot take, is
        refused when the service is described.
        """
        module = loadIdl(self.writeIdl("service Odd { void f(-1: i32 x) }"))
        self.assertRaises(UnsupportedError, describeService, module.Odd)

    def writeIdl(self, text):
        return writeIdl(self, text)


class LoadIdlTests(SynchronousTestCase):
    """
    L{loadIdl}, L{idlServices} and L{idlService}: their errors are typed.
    """

    def writeIdl(self, text):
        return writeIdl(self, text)

    def test_services(self):
        """
        The services of a loaded IDL file are found by name.
        """
        self.assertEqual(idlServices(runtime), {"Everything": RUNTIME})
        self.assertIs(idlService(runtime, "Everything"), RUNTIME)

    def test_unknownService(self):
        """
        Asking for a service the file does not define names those it
        defines.
        """
        error = self.assertRaises(IdlError, idlService, runtime, "Nothing")
        self.assertIn("'Nothing'", str(error))
        self.assertIn("Everything", str(error))
        self.assertIsInstance(error, TxScalesError)
        self.assertFalse(error.mayHaveReachedServer)

    def test_missingFile(self):
        """
        A file that does not exist is an L{IdlError} naming it.
        """
        path = os.path.join(DATA, "NoSuchFile.thrift")
        error = self.assertRaises(IdlError, loadIdl, path)
        self.assertIn(path, str(error))

    def test_badFile(self):
        """
        A file that is not valid Thrift is an L{IdlError} saying where.
        """
        path = self.writeIdl("service Broken {\n  string f(1: nosuchtype x)\n}\n")
        error = self.assertRaises(IdlError, loadIdl, path)
        self.assertIn(path, str(error))

    def test_moduleName(self):
        """
        A module name registers the module, whose objects can then be
        pickled.
        """
        import pickle

        module = loadIdl(DEMO_IDL, moduleName="idl_test_demo_thrift")
        self.addCleanup(sys.modules.pop, "idl_test_demo_thrift", None)
        self.assertIs(sys.modules["idl_test_demo_thrift"], module)
        error = module.InvalidQueryException(errorCode=3)
        self.assertEqual(vars(pickle.loads(pickle.dumps(error))), vars(error))

    def test_withoutThriftpy2(self):
        """
        Without thriftpy2, loading an IDL file is a L{MissingExtraError}
        naming the extra to install.
        """
        self.addCleanup(sys.modules.__setitem__, "thriftpy2", sys.modules["thriftpy2"])
        sys.modules["thriftpy2"] = None
        error = self.assertRaises(MissingExtraError, loadIdl, IDL)
        self.assertEqual(error.extra, "idl")
        self.assertIn("txscales[idl]", str(error))
        self.assertIsInstance(error, ImportError)


class ClientServerTests(SynchronousTestCase):
    """
    Clients and servers built from the thriftpy2 service talk to those
    built from generated code as generated ones talk to each other.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock

    def check(self, client, types, serverHandler, oneway):
        """
        Call every method of C{client} (whose values are of C{types}) and
        check the answers.
        """
        answer = self.successResultOf(client.echoShape(shape(types)))
        self.assertEqual(fields(answer), fields(shape(types)))
        self.assertIsInstance(answer, types.Shape)
        error = self.failureResultOf(client.echoShape(types.Shape(name="")), types.NotFound).value
        self.assertEqual(error.key, "name")
        error = self.failureResultOf(client.echoShape(types.Shape(tags={"a", "b"})), types.Invalid).value
        self.assertEqual((error.code, error.reason), (2, "invalid"))
        self.assertEqual(self.successResultOf(client.containers([1, 2], {"k": {3}}, True)), {"k": [{3}, {1, 2}]})
        self.assertEqual(self.successResultOf(client.bytesOf("\u00e9")), b"\xc3\xa9")
        self.assertEqual(self.successResultOf(client.textOf(b"\xc3\xa9")), "\u00e9")
        self.assertEqual(self.successResultOf(client.pick([types.Color.BLUE, types.Color.RED])), types.Color.BLUE)
        tree = self.successResultOf(client.grow(types.Tree(label="a", children=[]), types.Value(number=2)))
        self.assertEqual(fields(tree), fields(types.Tree(label="a/2", children=[types.Tree(label="a", children=[])])))
        self.assertEqual(self.successResultOf(client.withDefaults()), 9)
        self.assertEqual(self.successResultOf(client.withDefaults(2, b="xy")), 4)
        self.assertIsNone(self.successResultOf(client.nothing()))
        if oneway:
            self.assertIsNone(self.successResultOf(client.fire("e")))
            self.assertEqual(serverHandler.events, ["e"])
        # A failure the method does not declare.
        self.failureResultOf(client.pick([]), ApplicationError)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.successResultOf(client.close())

    def pairs(self):
        """
        @return: (client service, its types, server service, its types).
        """
        return [
            (RUNTIME, runtime, GENERATED, generated),
            (GENERATED, generated, RUNTIME, runtime),
            (RUNTIME, runtime, RUNTIME, runtime),
        ]

    def test_thriftMux(self):
        """
        ThriftMux clients and servers of either kind agree.
        """
        for port, (clientService, clientTypes, serverService, serverTypes) in enumerate(self.pairs(), 9090):
            handler = EverythingHandler(serverTypes)
            self.network.serveThriftMux(serverService, handler, port)
            client = self.network.thriftMuxClient(clientService, "tcp://127.0.0.1:%d" % (port,), stats=False)
            self.check(client, clientTypes, handler, oneway=False)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_thrift(self):
        """
        Plain Thrift clients and servers of either kind agree, in both
        protocols, one-way calls included.
        """
        port = 9090
        for protocol in (BINARY, COMPACT):
            for clientService, clientTypes, serverService, serverTypes in self.pairs():
                handler = EverythingHandler(serverTypes)
                self.network.serveThrift(serverService, handler, port)
                client = self.network.thriftClient(clientService, "tcp://127.0.0.1:%d" % (port,), protocol=protocol, stats=False)
                self.check(client, clientTypes, handler, oneway=True)
                port += 1
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_proxy(self):
        """
        A client of a thriftpy2 service is named after the service and
        documents its methods; a handler lacking methods is found out.
        """
        client = self.network.thriftMuxClient(RUNTIME, DEST, stats=False)
        self.addCleanup(client.close)
        self.assertEqual(type(client).__name__, "EverythingClient")
        self.assertIn("numbers, groups, flag", type(client).containers.__doc__)
        self.assertEqual(missingMethods(RUNTIME, EverythingHandler(runtime)), [])
        self.assertEqual(missingMethods(RUNTIME, object())[:2], ["bytesOf", "containers"])


class ThriftHttpTests(TestCase):
    """
    Thrift over HTTP serves and calls a thriftpy2 service.
    """

    timeout = 30

    @inlineCallbacks
    def test_resourceAndClient(self):
        """
        A resource of the thriftpy2 service answers clients of it and of the
        generated code.
        """
        site = Site(ThriftHttp.newResource(RUNTIME, EverythingHandler(runtime)))
        site.noisy = False
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        for service, types in [(RUNTIME, runtime), (GENERATED, generated)]:
            client = ThriftHttp.newClient(service, "tcp://127.0.0.1:%d" % (port.getHost().port,), timeout=5, stats=False)
            self.addCleanup(client.close)
            answer = yield client.echoShape(shape(types))
            self.assertIsInstance(answer, types.Shape)
            self.assertEqual(fields(answer), fields(shape(types)))
            error = yield self.assertFailure(client.echoShape(types.Shape()), types.Invalid)
            self.assertEqual(error.code, 0)
            self.assertEqual((yield client.containers([1], {"k": set()}, True)), {"k": [set(), {1}]})
