"""
Tests for the optional compiled hot path: the switch that forces the pure
path, and the equivalence of the modules in use with their pure-Python
twins on the codec tables, the golden vectors, the Finagle capture and
random input.

When txscales was built without its compiled modules the two sides are
both pure Python and the equivalence tests compare a module with a copy of
itself; scripts/test builds them, and under CI requires them
(C{TXSCALES_REQUIRE_COMPILED=1}).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.machinery import EXTENSION_SUFFIXES

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

import txscales
from tests._pcap import finagleConnections
from tests.test_mux_codec import FRAGMENTED, MALFORMED, VECTORS, dispatchFields
from txscales import _compiled
from txscales.demo.gen import TestService

PURE = _compiled.pureTwins()
USED = {name: sys.modules[name] for name in _compiled.MODULES}


def both(name):
    """
    @return: C{(module in use, its pure twin)} for the dotted C{name}.
    """
    return USED[name], PURE[name]


def outcome(f, *args):
    """
    @return: what C{f(*args)} gives, comparable across the two paths: the
        repr of its result, or the class and text of its exception.
    """
    try:
        return ("ok", repr(f(*args)))
    except Exception as e:
        return ("raised", type(e), str(e))


def feedChunks(framing, data, chunk):
    """
    @return: the outcome of feeding C{data} to a new Mux decoder of the
        C{framing} module, C{chunk} bytes at a time, message by message.
    """
    decoder = framing.FrameDecoder(maxFrameSize=4096)
    messages = []
    try:
        for i in range(0, len(data), chunk):
            messages.extend(repr(m) for m in decoder.feed(data[i : i + chunk]))
    except Exception as e:
        return messages, type(e), str(e), decoder.bufferedSize()
    return messages, decoder.bufferedSize(), decoder.fragmentBytes()


class SwitchTests(SynchronousTestCase):
    """
    C{TXSCALES_NO_EXTENSIONS} chooses the path, and C{txscales.compiled}
    says which one is in use.
    """

    def runPython(self, code, **environ):
        env = dict(os.environ, **environ)
        env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(txscales.__file__))] + sys.path)
        return subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        ).stdout.split()

    def test_pureForced(self):
        """
        The variable forces the pure path unless empty or C{0}.
        """
        self.assertEqual(
            [_compiled.pureForced(e) for e in ({}, {"TXSCALES_NO_EXTENSIONS": ""}, {"TXSCALES_NO_EXTENSIONS": "0"})],
            [False, False, False],
        )
        self.assertTrue(_compiled.pureForced({"TXSCALES_NO_EXTENSIONS": "1"}))

    def test_forcedPure(self):
        """
        With C{TXSCALES_NO_EXTENSIONS=1}, every module that may be compiled
        is loaded from its C{.py} and C{txscales.compiled} is False.
        """
        code = (
            "import importlib, txscales; from txscales._compiled import MODULES;"
            "print(txscales.compiled, *[importlib.import_module(m).__file__.endswith('.py') for m in MODULES])"
        )
        self.assertEqual(
            self.runPython(code, TXSCALES_NO_EXTENSIONS="1"), ["False"] + ["True"] * len(_compiled.MODULES)
        )

    def test_compiledSaysWhich(self):
        """
        C{txscales.compiled} is True exactly when every module that may be
        compiled is in use as an extension.
        """
        self.assertEqual(
            txscales.compiled, all(_compiled.isCompiled(m) for m in USED.values()) and bool(USED)
        )
        self.assertFalse(any(_compiled.isCompiled(m) for m in PURE.values()))

    def test_compiledWhenRequired(self):
        """
        With C{TXSCALES_NO_EXTENSIONS=1} no compiled module is in use;
        where the compiled modules must have been built
        (C{TXSCALES_REQUIRE_COMPILED=1}, as CI sets), all of them are;
        elsewhere all or none.
        """
        used = _compiled.compiledModules()
        if _compiled.pureForced():
            self.assertEqual(used, [])
        elif os.environ.get("TXSCALES_REQUIRE_COMPILED") == "1":
            self.assertEqual(used, list(_compiled.MODULES))
        else:
            self.assertIn(used, ([], list(_compiled.MODULES)))

    def checkout(self, sourceAge, extensionAge):
        """
        @return: a folder holding a C{txscales/mux/_messages.py} and an
            extension file (not a real one) beside it, with the given ages in
            seconds.
        """
        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root)
        folder = os.path.join(root, "txscales", "mux")
        os.makedirs(folder)
        now = time.time()
        for name, age in (("_messages.py", sourceAge), ("_messages" + EXTENSION_SUFFIXES[0], extensionAge)):
            path = os.path.join(folder, name)
            with open(path, "w"):
                pass
            os.utime(path, (now - age, now - age))
        return root

    def test_staleModules(self):
        """
        An extension older than its source is stale; one written at the
        same time (as a wheel's files are installed) or later is not.
        """
        self.assertEqual(_compiled.staleModules(self.checkout(50, 100)), ["txscales.mux._messages"])
        self.assertEqual(_compiled.staleModules(self.checkout(50, 50.5)), [])
        self.assertEqual(_compiled.staleModules(self.checkout(100, 50)), [])

    def test_staleMeansPure(self):
        """
        With a stale extension, or when forced, L{_compiled.install} puts
        the pure path in use (a stale one with a warning); otherwise it
        leaves the import system alone.
        """
        self.patch(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, _compiled.PureFinder)])
        before = list(sys.meta_path)
        self.assertFalse(_compiled.install({}, self.checkout(100, 50)))
        self.assertEqual(sys.meta_path, before)
        self.assertTrue(_compiled.install({"TXSCALES_NO_EXTENSIONS": "1"}, self.checkout(100, 50)))
        self.assertIsInstance(sys.meta_path[0], _compiled.PureFinder)
        self.assertEqual(self.flushWarnings(), [])
        sys.meta_path[:] = before
        self.assertTrue(_compiled.install({}, self.checkout(50, 100)))
        self.assertIsInstance(sys.meta_path[0], _compiled.PureFinder)
        [warning] = self.flushWarnings()
        self.assertIn("its compiled modules txscales.mux._messages are older than their sources", warning["message"])

    def test_twinsLeaveModulesAlone(self):
        """
        Making the pure twins leaves C{sys.modules} and the packages'
        attributes with the modules in use.
        """
        _compiled.pureTwins()
        import txscales.mux

        self.assertIs(sys.modules["txscales.mux._framing"], USED["txscales.mux._framing"])
        self.assertIs(txscales.mux._framing, USED["txscales.mux._framing"])


class MuxEquivalenceTests(SynchronousTestCase):
    """
    The Mux codec in use and its pure twin encode and decode alike.
    """

    def test_vectors(self):
        """
        Every codec vector encodes to the same bytes, and decodes (whole and
        byte by byte) to the same messages, on both paths.
        """
        messages = both("txscales.mux._messages")
        framings = both("txscales.mux._framing")
        for name, message, hexBytes in VECTORS:
            data = bytes.fromhex(hexBytes)
            self.assertEqual(
                [outcome(m.encodeMessage, message) for m in messages],
                [("ok", repr(data))] * 2,
                name,
            )
            for chunk in (len(data), 1):
                self.assertEqual(feedChunks(framings[0], data, chunk), feedChunks(framings[1], data, chunk), name)

    def test_fragments(self):
        """
        A fragmented message encodes and reassembles alike.
        """
        message, window, hexBytes = FRAGMENTED
        framings = both("txscales.mux._framing")
        self.assertEqual({f.encodeFrames(message, window).hex() for f in framings}, {hexBytes})
        data = bytes.fromhex(hexBytes)
        self.assertEqual(feedChunks(framings[0], data, 7), feedChunks(framings[1], data, 7))

    def test_malformed(self):
        """
        Each malformed frame raises the same error with the same text.
        """
        framings = both("txscales.mux._framing")
        for name, hexBytes, error in MALFORMED:
            data = bytes.fromhex(hexBytes)
            results = [feedChunks(f, data, len(data)) for f in framings]
            self.assertEqual(results[0], results[1], name)
            self.assertIs(results[0][1], error, name)

    def test_capture(self):
        """
        Both directions of every connection of the Finagle capture decode
        to the same messages on both paths.
        """
        framings = both("txscales.mux._framing")
        connections = finagleConnections(self)
        for connection in connections:
            for data in (connection.clientBytes, connection.serverBytes):
                for chunk in (len(data) or 1, 1000):
                    self.assertEqual(
                        feedChunks(framings[0], data, chunk), feedChunks(framings[1], data, chunk)
                    )

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300), st.integers(min_value=1, max_value=9))
    def test_randomBytes(self, data, chunk):
        """
        Any bytes, in any chunking, give the same messages or the same error.
        """
        framings = both("txscales.mux._framing")
        self.assertEqual(feedChunks(framings[0], data, chunk), feedChunks(framings[1], data, chunk))

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from([v[2] for v in VECTORS]), st.integers(min_value=4, max_value=300), st.integers(0, 255))
    def test_mutatedVectors(self, hexBytes, position, value):
        """
        A vector with one byte changed decodes alike, or fails alike.
        """
        data = bytearray(bytes.fromhex(hexBytes))
        data[position % len(data)] = value
        framings = both("txscales.mux._framing")
        self.assertEqual(feedChunks(framings[0], bytes(data), 3), feedChunks(framings[1], bytes(data), 3))

    @settings(max_examples=200, deadline=None)
    @given(*dispatchFields)
    def test_encodeDispatch(self, tag, contexts, dst, body, window):
        """
        The direct Tdispatch encoder and the message classes write the same
        bytes on both paths.
        """
        framings = both("txscales.mux._framing")
        messages = both("txscales.mux._messages")
        self.assertEqual(
            outcome(framings[0].encodeDispatch, tag, contexts, dst, (), body, window),
            outcome(framings[1].encodeDispatch, tag, contexts, dst, (), body, window),
        )
        self.assertEqual(
            outcome(lambda: framings[0].encodeFrames(messages[0].Tdispatch(tag, contexts, dst, [], body), window)),
            outcome(lambda: framings[1].encodeFrames(messages[1].Tdispatch(tag, contexts, dst, [], body), window)),
        )


class LengthPrefixEquivalenceTests(SynchronousTestCase):
    """
    The length-prefix framing in use and its pure twin cut alike.
    """

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.binary(max_size=40), max_size=8),
        st.integers(min_value=1, max_value=9),
        st.integers(0, 30),
        st.integers(0, 4),
    )
    def test_split(self, payloads, chunk, maxFrameSize, minFrameSize):
        """
        Frames, chunked anyhow, are cut (or refused) alike.
        """
        data = b"".join(len(p).to_bytes(4, "big") + p for p in payloads)

        def cut(module):
            decoder = module.LengthPrefixDecoder(maxFrameSize, minFrameSize)
            frames = []
            for i in range(0, len(data), chunk):
                result = outcome(decoder.feed, data[i : i + chunk])
                frames.append(result)
                if result[0] == "raised":
                    break
            return frames, decoder.bufferedSize()

        used, pure = both("txscales._framing")
        self.assertEqual(cut(used), cut(pure))


class ThriftEquivalenceTests(SynchronousTestCase):
    """
    The Thrift message codec in use and its pure twin encode and decode
    alike.
    """

    def roundTrip(self, codec, x, seqid, protocol):
        method = codec.describeService(TestService.Iface)["query"]
        call = codec.encodeCall(method, (x,), {}, seqid)
        name, messageType, readSeqid, reader = codec.readMessageBegin(call)[1:]
        args = codec.decodeArgs(method, reader, "binary")
        reply = codec.encodeResult(method, seqid, protocol, value=x + x)
        error = codec.encodeResult(
            method, seqid, protocol, exception=TestService.InvalidQueryException(errorCode=len(x))
        )
        appError = codec.encodeApplicationException("query", seqid, protocol, "no", 1)
        return [
            call,
            name,
            messageType,
            readSeqid,
            args,
            reply,
            error,
            appError,
            outcome(codec.decodeReply, method, reply) if protocol == "binary" else None,
            outcome(codec.decodeReply, method, error) if protocol == "binary" else None,
            outcome(codec.decodeReply, method, appError) if protocol == "binary" else None,
            outcome(codec.decodeReply, method, call[: len(call) // 2]),
        ]

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=40), st.integers(0, 2**31 - 1), st.sampled_from(["binary", "compact"]))
    def test_messages(self, x, seqid, protocol):
        """
        Calls, replies, exceptions and truncated messages give the same
        bytes and values on both paths.
        """
        used, pure = both("txscales.thrift._codec")
        self.assertEqual(self.roundTrip(used, x, seqid, protocol), self.roundTrip(pure, x, seqid, protocol))

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=80))
    def test_randomReplies(self, data):
        """
        Any bytes read as a reply give the same value or the same error.
        """
        used, pure = both("txscales.thrift._codec")
        results = [
            outcome(c.decodeReply, c.describeService(TestService.Iface)["query"], data) for c in (used, pure)
        ]
        self.assertEqual(results[0], results[1])
