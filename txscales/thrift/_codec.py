"""
Thrift messages for generated services (and for those thriftpy2 loads, see
L{txscales.thrift._idl}): plain Python, no Twisted.

Calls and replies are one Thrift message each (C{TMessage} header, then the
args or result struct), in the binary or the compact protocol.  Structs go
through Apache Thrift's C extension (C{fastbinary}) directly, without
building a protocol object per message.
"""

import sys
from io import BytesIO
from operator import attrgetter
from struct import Struct
from typing import Any, Dict, Sequence

from thrift.protocol import fastbinary
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport.TTransport import TMemoryBuffer

from txscales.errors import ApplicationError, BadMessageError
from txscales.thrift._idl import isRuntimeService, runtimeMethods

BINARY = "binary"
COMPACT = "compact"
PROTOCOLS = (BINARY, COMPACT)

_VERSION_1 = 0x80010000
_COMPACT_ID = 0x82
_COMPACT_VERSION = 1
_int = Struct(">i")
_uint = Struct(">I")
_ZERO = _int.pack(0)
_SCALARS = frozenset([type(None), bool, int, float, str, bytes])


class _Reader:
    """
    A read-only reader over one message, its own transport: what
    C{fastbinary}'s decoders read from a protocol (C{trans} and the length
    limits) and from a transport (C{cstringio_buf}, C{cstringio_refill}),
    and what Apache Thrift's protocol classes read (C{read}, C{readAll}),
    without the cost of a C{TMemoryBuffer} per message.
    """

    __slots__ = ("cstringio_buf",)

    # Integers: C{fastbinary} reads a None limit through an exception.
    string_length_limit = 0x7FFFFFFF
    container_length_limit = 0x7FFFFFFF

    def __init__(self, data, offset=0) -> None:
        self.cstringio_buf = BytesIO(data)
        if offset:
            self.cstringio_buf.seek(offset)

    @property
    def trans(self):
        # Not an attribute: a reader pointing at itself would be a cycle,
        # left for the garbage collector.
        return self

    def cstringio_refill(self, partial, reqlen):
        raise EOFError()

    def read(self, size):
        return self.cstringio_buf.read(size)

    def readAll(self, size):
        data = self.cstringio_buf.read(size)
        if len(data) != size:
            raise EOFError()
        return data


class _Success:
    """
    A result struct with only its C{success} field set, which is all a
    successful reply encodes.
    """

    __slots__ = ("success",)
    success: Any


class Method:
    """
    What txscales needs to know about one method of a generated service.

    @ivar name: the method name.
    @ivar argsClass: the generated C{<name>_args} struct (or thriftpy2's).
    @ivar resultClass: the generated C{<name>_result} struct (or
        thriftpy2's), or None for a one-way method.
    @ivar argNames: the argument names, in IDL order.
    @ivar exceptions: (field name, exception class) for each declared
        exception.
    @ivar hasSuccess: whether the method returns a value.
    @ivar replyHeader: the binary TMessage header of a reply, without its
        seqid.
    @ivar callHeaderZero: the binary TMessage header of a call with seqid 0.
    @ivar callType: the C{TMessageType} of its calls, C{CALL} or C{ONEWAY}.
    """

    def __init__(self, name, argsClass, resultClass, argsThriftSpec=None, resultThriftSpec=None, argNames=None) -> None:
        """
        @param argsThriftSpec: the Apache Thrift C{thrift_spec} of
            C{argsClass} when it has another (a thriftpy2 class).
        @param resultThriftSpec: that of C{resultClass}.
        @param argNames: the argument names in IDL order (default: those of
            the generated C{argsClass.__init__}, else of C{argsThriftSpec}).
        """
        if argsThriftSpec is None:
            argsThriftSpec = argsClass.thrift_spec
        if resultThriftSpec is None and resultClass is not None:
            resultThriftSpec = resultClass.thrift_spec
        self.name = name
        self.nameBytes = name.encode("utf-8")
        self.argsClass = argsClass
        self.argsSpec = [argsClass, argsThriftSpec]
        self.resultClass = resultClass
        self.oneway = resultClass is None
        if argNames is None:
            argNames = _declaredOrder(argsClass, [f[2] for f in argsThriftSpec if f is not None])
        self.argNames = argNames
        defaults = argsClass()
        defaults = {name: getattr(defaults, name) for name in self.argNames}
        if all(type(value) in _SCALARS for value in defaults.values()):
            # Decode into an object whose class holds the defaults: no
            # generated __init__ to run per call.
            self._argsTarget = type(argsClass.__name__, (), defaults)
        else:
            self._argsTarget = argsClass
        self._argsTargetSpec = [self._argsTarget, argsThriftSpec]
        self._argValues = attrgetter(*self.argNames) if self.argNames else None
        self.exceptions = []
        self.hasSuccess = False
        self.successSpec = None
        if resultClass is not None:
            self.resultSpec = [resultClass, resultThriftSpec]
            # A reply decodes into an object whose class holds the result's
            # defaults (all None): no generated __init__ to run per reply.
            fields = [f[2] for f in resultThriftSpec if f is not None]
            self._resultTarget = type(resultClass.__name__, (), dict.fromkeys(fields))
            self._resultTargetSpec = [self._resultTarget, resultThriftSpec]
            for field in resultThriftSpec:
                if field is None:
                    continue
                if field[0] == 0:
                    self.hasSuccess = True
                    self.successSpec = [_Success, (field,)]
                elif field[1] == TType.STRUCT:
                    self.exceptions.append((field[2], field[3][0]))
        self.callType = TMessageType.ONEWAY if self.oneway else TMessageType.CALL
        # The binary header of each message type, but its seqid: at most
        # four, made once per method.  Saves ~0.24 us per plain Thrift call
        # and binary exception reply (timeit); hotpath.py's ThriftMux calls
        # and replies use callHeaderZero and replyHeader instead.
        self._binaryPrefixes: Dict[int, bytes] = {}
        self.replyHeader = self._binaryPrefix(TMessageType.REPLY)
        self.callHeaderZero = self.callHeader(0)

    def _binaryPrefix(self, messageType):
        prefix = self._binaryPrefixes.get(messageType)
        if prefix is None:
            prefix = self._binaryPrefixes[messageType] = _binaryPrefix(self.nameBytes, messageType)
        return prefix

    def messageHeader(self, protocol: str, messageType: int, seqid: int) -> bytes:
        """
        @return: the TMessage header of a message of this method, as
            L{encodeMessageHeader} makes it.
        """
        if protocol != BINARY:
            return encodeMessageHeader(protocol, self.nameBytes, messageType, seqid)
        return self._binaryPrefix(messageType) + (_ZERO if seqid == 0 else _int.pack(seqid))

    def callHeader(self, seqid: int, protocol: str = BINARY) -> bytes:
        """
        @return: the TMessage header of a call (or one-way call) to this
            method.
        """
        return self.messageHeader(protocol, self.callType, seqid)


def _declaredOrder(argsClass, names):
    """
    @param names: the argument names of a generated args struct, in field id
        order.
    @return: C{names} in IDL order (that of the handler's parameters), which
        is that of the generated C{__init__}'s.
    """
    code = getattr(argsClass.__init__, "__code__", None)
    if code is None:
        return names
    declared = list(code.co_varnames[1 : code.co_argcount])
    return declared if sorted(declared) == sorted(names) else names


def _binaryPrefix(nameBytes, messageType):
    """
    @return: a binary TMessage header without its seqid.
    """
    return _uint.pack(_VERSION_1 | messageType) + _uint.pack(len(nameBytes)) + nameBytes


def _varint(value):
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encodeMessageHeader(protocol: str, nameBytes: bytes, messageType: int, seqid: int) -> bytes:
    """
    Encode a TMessage header, as Apache Thrift's C{writeMessageBegin} does.

    @param protocol: L{BINARY} (strict) or L{COMPACT}.
    @param nameBytes: the method name, UTF-8.
    @param messageType: a C{TMessageType}.
    @param seqid: the sequence id, a signed 32-bit integer.
    @return: the header bytes.
    """
    if protocol == BINARY:
        return _binaryPrefix(nameBytes, messageType) + _int.pack(seqid)
    if seqid < 0:
        # The compact protocol writes the seqid as an unsigned varint.
        seqid += 0x100000000
    return (
        bytes((_COMPACT_ID, _COMPACT_VERSION | (messageType << 5)))
        + _varint(seqid)
        + _varint(len(nameBytes))
        + nameBytes
    )


def describeService(iface):
    """
    Describe the methods of a generated service, or of one thriftpy2 loaded.

    @param iface: the generated C{Iface} class (its module holds the
        C{<method>_args} and C{<method>_result} classes), or a service class
        of a module C{thriftpy2.load()} made.
    @return: a dict from method name to L{Method}.
    @raise TypeError: when C{iface} is not a class (a module, say).
    """
    if not isinstance(iface, type):
        raise TypeError("%r is not a generated Iface class nor a service class of a loaded IDL" % (iface,))
    if isRuntimeService(iface):
        return {
            name: Method(name, argsClass, resultClass, argsSpec, resultSpec, argNames)
            for name, argsClass, argsSpec, resultClass, resultSpec, argNames in runtimeMethods(iface)
        }
    module = sys.modules[iface.__module__]
    methods = {}
    for name in dir(iface):
        if name.startswith("_") or not callable(getattr(iface, name)):
            continue
        argsClass = getattr(module, name + "_args", None)
        if argsClass is None:
            continue
        methods[name] = Method(name, argsClass, getattr(module, name + "_result", None))
    return methods


def encodeCall(method, args, kwargs, seqid=0):
    """
    Encode a binary-protocol call of C{method}.

    @raise TypeError: for arguments that do not match the method.
    """
    argsObject = method.argsClass(*args, **kwargs)
    header = method.callHeaderZero if seqid == 0 else method.callHeader(seqid)
    return header + fastbinary.encode_binary(argsObject, method.argsSpec)


def encodeArgs(method: Method, args: Sequence[Any], kwargs: Dict[str, Any], protocol: str) -> bytes:
    """
    Encode the args struct of a call of C{method}.

    @raise TypeError: for arguments that do not match the method.
    """
    argsObject = method.argsClass(*args, **kwargs)
    if protocol == BINARY:
        return fastbinary.encode_binary(argsObject, method.argsSpec)
    return fastbinary.encode_compact(argsObject, method.argsSpec)


def readMessageBegin(data):
    """
    Read a Thrift message header.

    @return: (protocol name, method name, message type, seqid, reader)
        where C{reader} is positioned at the struct.
    @raise BadMessageError: when C{data} is not a Thrift message.
    """
    try:
        if data[:1] == b"\x82":
            reader = _Reader(data)
            name, messageType, seqid = TCompactProtocol(reader).readMessageBegin()
            return COMPACT, name, messageType, seqid, reader
        if len(data) < 8:
            raise BadMessageError("Thrift message of %d bytes" % (len(data),))
        first = _uint.unpack_from(data)[0]
        if first & 0x80000000:
            if first & 0xFFFF0000 != _VERSION_1:
                raise BadMessageError("bad Thrift binary version %#x" % (first,))
            size = _uint.unpack_from(data, 4)[0]
            end = 8 + size
            if end + 4 > len(data):
                raise BadMessageError("truncated Thrift message header")
            name = data[8:end].decode("utf-8")
            seqid = _int.unpack_from(data, end)[0]
            return BINARY, name, first & 0xFF, seqid, _Reader(data, end + 4)
        else:
            # Old, non-strict binary: no version word.
            reader = _Reader(data)
            name, messageType, seqid = TBinaryProtocol(reader, strictRead=False).readMessageBegin()
    except BadMessageError:
        raise
    except Exception as e:
        raise BadMessageError("undecodable Thrift message header: %s" % (e,))
    return BINARY, name, messageType, seqid, reader


def _decodeStruct(obj, reader, spec, protocol):
    try:
        if protocol == BINARY:
            fastbinary.decode_binary(obj, reader, spec)
        else:
            fastbinary.decode_compact(obj, reader, spec)
    except Exception as e:
        raise BadMessageError("undecodable Thrift struct %s: %s" % (spec[0].__name__, e))
    return obj


def _encodeStruct(obj, spec, protocol):
    if protocol == BINARY:
        return fastbinary.encode_binary(obj, spec)
    return fastbinary.encode_compact(obj, spec)


def decodeReply(method, data):
    """
    Decode the reply to a call of C{method}.

    @return: the returned value (None for void methods).
    @raise Exception: a declared Thrift exception, as itself.
    @raise ApplicationError: for a C{TApplicationException} reply.
    @raise BadMessageError: for bytes that are not a reply to C{method}.
    """
    if data.startswith(method.replyHeader) and len(data) >= len(method.replyHeader) + 4:
        # The common reply: binary, strict, to this method.
        reader = _Reader(data, len(method.replyHeader) + 4)
        return _resultValue(method, _decodeStruct(method._resultTarget(), reader, method._resultTargetSpec, BINARY))
    protocol, name, messageType, _, reader = readMessageBegin(data)
    if messageType == TMessageType.EXCEPTION:
        exc = TApplicationException()
        try:
            exc.read(_protocolFor(protocol, reader.trans))
        except Exception as e:
            raise BadMessageError("undecodable TApplicationException: %s" % (e,))
        raise ApplicationError(exc.message or "TApplicationException", exc.type)
    if messageType != TMessageType.REPLY:
        raise BadMessageError("expected a Thrift REPLY, got message type %d" % (messageType,))
    if name != method.name:
        raise BadMessageError("reply for %r to a call of %r" % (name, method.name))
    return _resultValue(method, _decodeStruct(method.resultClass(), reader, method.resultSpec, protocol))


def _resultValue(method, result):
    """
    @return: the value of a decoded result struct.
    @raise Exception: the declared exception it carries.
    """
    for field, _ in method.exceptions:
        value = getattr(result, field)
        if value is not None:
            raise value
    if method.hasSuccess:
        if result.success is None:
            raise ApplicationError(
                "%s failed: unknown result" % (method.name,), TApplicationException.MISSING_RESULT
            )
        return result.success
    return None


def _protocolFor(protocol, trans):
    return TBinaryProtocol(trans) if protocol == BINARY else TCompactProtocol(trans)


def decodeArgs(method, reader, protocol):
    """
    Decode the args struct of a call, the reader being past its header.

    @return: the list of argument values, in IDL order.
    """
    args = _decodeStruct(method._argsTarget(), reader, method._argsTargetSpec, protocol)
    if len(method.argNames) == 1:
        return [method._argValues(args)]
    return list(method._argValues(args)) if method.argNames else []


def decodeBinaryArgs(method, data, offset):
    """
    Decode the binary args struct of a call, at C{offset} in C{data}.

    @return: the list of argument values, in IDL order.
    """
    # decodeArgs() and _decodeStruct(), inline.
    args = method._argsTarget()
    try:
        fastbinary.decode_binary(args, _Reader(data, offset), method._argsTargetSpec)
    except Exception as e:
        raise BadMessageError("undecodable Thrift struct %s: %s" % (method.argsClass.__name__, e))
    if len(method.argNames) == 1:
        return [method._argValues(args)]
    return list(method._argValues(args)) if method.argNames else []


def encodeResult(method, seqid, protocol, value=None, exception=None):
    """
    Encode the REPLY to a call: its value, or a declared exception.

    @return: the reply bytes.
    @raise TypeError: when C{exception} is not declared by the method.
    """
    if exception is None and not method.oneway:
        # Only the success field is set: encode just that one.
        if method.hasSuccess and value is not None:
            result = _Success()
            result.success = value
            body = _encodeStruct(result, method.successSpec, protocol)
        else:
            body = b"\x00"
        if protocol == BINARY:
            return method.replyHeader + (_ZERO if seqid == 0 else _int.pack(seqid)) + body
        return method.messageHeader(protocol, TMessageType.REPLY, seqid) + body
    result = method.resultClass()
    if exception is not None:
        for field, cls in method.exceptions:
            if isinstance(exception, cls):
                setattr(result, field, exception)
                break
        else:
            raise TypeError("%r is not declared by %s" % (exception, method.name))
    elif method.hasSuccess:
        result.success = value
    return method.messageHeader(protocol, TMessageType.REPLY, seqid) + _encodeStruct(
        result, method.resultSpec, protocol
    )


def encodeApplicationException(name, seqid, protocol, message, type):
    """
    Encode an EXCEPTION reply carrying a C{TApplicationException}.
    """
    buffer = TMemoryBuffer()
    TApplicationException(type, message).write(_protocolFor(protocol, buffer))
    header = encodeMessageHeader(protocol, name.encode("utf-8"), TMessageType.EXCEPTION, seqid)
    return header + buffer.getvalue()
