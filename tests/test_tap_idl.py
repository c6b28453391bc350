"""
C{twistd txscales serve --idl FILE --service NAME}: a service loaded from its
IDL at run time by thriftpy2, instead of a generated C{--iface}, and its usage
errors (those of real C{twistd} processes are in C{tests/test_idl_interop.py}).
"""

import os
import shutil
import sys
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txscales.demo.handler import IDL
from txscales.tap import Options, makeService
from txscales.thrift import Thrift

HANDLER = "txscales.demo.handler:makeIdlHandler"


def parse(*argv):
    options = Options()
    options.parseOptions(["serve"] + list(argv))
    return options.subOptions


def writeFile(case, name, text):
    """
    @return: the path of a new file C{name} holding C{text}, in a folder
        removed after C{case}.
    """
    folder = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, folder)
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


class IdlOptionsTests(SynchronousTestCase):
    """
    serve takes --idl and --service instead of --iface.
    """

    def test_serveIdl(self):
        """
        --idl loads the file as the module C{<name>_thrift}; the handler,
        loading it under that name, raises the service's own declared
        exception.
        """
        sub = parse("--idl", IDL, "--service", "TestService", "--handler", HANDLER)
        module = sys.modules["TestService_thrift"]
        self.assertIs(sub.iface, module.TestService)
        self.assertRaises(module.InvalidQueryException, sub.handler.raiseError, 3)
        self.assertEqual(sub.handler.query("a"), "aa")

    def test_onlyService(self):
        """
        Without --service, the file's only service is served.
        """
        self.assertIs(parse("--idl", IDL, "--handler", HANDLER).iface, sys.modules["TestService_thrift"].TestService)

    def test_serviceRequiredAmongSeveral(self):
        """
        Without --service, a file of several services is a usage error
        naming them.
        """
        path = writeFile(self, "Two.thrift", "service A { void f() }\nservice B { void g() }\n")
        e = self.assertRaises(usage.UsageError, parse, "--idl", path, "--handler", HANDLER)
        self.assertIn("--service is required (services: A, B)", str(e))

    def test_usageErrors(self):
        """
        A missing file, a file that is not Thrift, an unknown service, a
        --service without --idl, both --iface and --idl, and a handler
        lacking methods are one-line usage errors naming the cause.
        """
        bad = writeFile(self, "Bad.thrift", "service Bad {\n  string f(1: nosuchtype x)\n}\n")
        missing = os.path.join(os.path.dirname(bad), "Missing.thrift")
        cases = [
            (("--idl", missing, "--handler", HANDLER), "--idl %s: %s: " % (missing, missing)),
            (("--idl", bad, "--handler", HANDLER), "--idl %s: %s: " % (bad, bad)),
            (("--idl", IDL, "--service", "Nope", "--handler", HANDLER), "--service Nope: %s defines no service 'Nope' (services: TestService)" % (IDL,)),
            (("--iface", "txscales.demo.gen.TestService.Iface", "--service", "TestService", "--handler", HANDLER), "--service goes with --idl"),
            (("--iface", "txscales.demo.gen.TestService.Iface", "--idl", IDL, "--handler", HANDLER), "one of --iface or --idl"),
            (("--handler", HANDLER), "one of --iface or --idl"),
            (("--idl", IDL, "--handler", "tests.test_tap:makePartialHandler"), "lacks methods of %s.TestService: delayedQuery, raiseError" % (IDL,)),
        ]
        for argv, message in cases:
            e = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertIn(message, str(e))
            self.assertNotIn("\n", str(e))

    def test_withoutThriftpy2(self):
        """
        Without thriftpy2, --idl is a usage error naming the extra to
        install.
        """
        self.addCleanup(sys.modules.__setitem__, "thriftpy2", sys.modules["thriftpy2"])
        sys.modules["thriftpy2"] = None
        e = self.assertRaises(usage.UsageError, parse, "--idl", IDL, "--handler", HANDLER)
        self.assertIn("--idl %s: loading a Thrift IDL file needs thriftpy2" % (IDL,), str(e))
        self.assertIn("(install txscales[idl])", str(e))


class ServeIdlTests(TestCase):
    """
    serve --idl serves the loaded service with any protocol.
    """

    @inlineCallbacks
    def test_serveThrift(self):
        """
        A plain Thrift server of the loaded service answers a client of the
        generated code, in both protocols.
        """
        from txscales.demo.gen import TestService
        from txscales.demo.gen.ttypes import InvalidQueryException

        options = Options()
        options.parseOptions(["serve", "--listen", "tcp:0:interface=127.0.0.1", "--idl", IDL, "--handler", HANDLER, "--protocol", "thrift"])
        service = makeService(options, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port = (yield service.listening).getHost().port
        for protocol in ("binary", "compact"):
            client = Thrift.newClient(TestService.Iface, "tcp://127.0.0.1:%d" % (port,), protocol=protocol, timeout=5, stats=False)
            self.addCleanup(client.close)
            self.assertEqual((yield client.query("abc")), "abcabc")
            error = yield self.assertFailure(client.raiseError(4), InvalidQueryException)
            self.assertEqual(error.errorCode, 4)
