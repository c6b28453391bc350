"""
Serve a generated Thrift service from a handler object.

The handler's methods take the IDL arguments in order and return a value, a
Deferred, or a coroutine.  Declared exceptions travel as themselves; any
other failure becomes a C{TApplicationException} reply, as Finagle does.
A handler refuses a call by raising (or failing with) L{RequestNackedError}.
"""

from struct import Struct
from types import CoroutineType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from thrift.Thrift import TApplicationException, TMessageType
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txscales._ratelimit import RateLimitedLog, detached
from txscales.errors import ApplicationError, BadMessageError, RequestNackedError
from txscales.thrift._codec import (
    BINARY,
    decodeArgs,
    decodeBinaryArgs,
    describeService,
    encodeApplicationException,
    encodeResult,
    Method,
    _protocolFor as protocolFor,
    readMessageBegin,
)

_log = Logger()

_PLAIN = frozenset([str, bytes, int, float, bool, type(None), list, dict, set, tuple])
_BINARY_CALL = b"\x80\x01\x00\x01"
_uint = Struct(">I")
_int = Struct(">i")


def missingMethods(iface: type, handler: object) -> List[str]:
    """
    @param iface: a generated C{Iface} class, or a service class
        L{txscales.thrift.loadIdl} loaded.
    @param handler: a handler for it.
    @return: the names of C{iface}'s methods that C{handler} lacks, sorted
        (its calls would be answered "Invalid method name").
    """
    return sorted(name for name in describeService(iface) if not callable(getattr(handler, name, None)))


def _logCleaned(format: str, failure: Failure, **kwargs: Any) -> None:
    """
    Log C{failure} with its frames turned into text, so that a log event
    keeping it (when logging has not started, say) keeps none of the call's
    data.
    """
    if failure.value is not None:
        detached(failure.value)
    failure.cleanFailure()
    _log.failure(format, failure, **kwargs)


class ThriftProcessor:
    """
    Turn Thrift call bytes into reply bytes by calling a handler.

    @ivar methods: the service's methods, by name.
    """

    def __init__(self, iface: type, handler: object, clock: Any = None) -> None:
        """
        @param iface: a generated C{Iface} class, or a service class
            L{txscales.thrift.loadIdl} loaded.
        @param handler: a handler for it.
        @param clock: an C{IReactorTime}: when given, the handler's failures
            are logged through a L{RateLimitedLog} on it, since a peer can
            make them as often as it calls.
        """
        self._logFailure = RateLimitedLog(clock, _log).failure if clock is not None else _logCleaned
        self.methods = describeService(iface)
        self._bound: Dict[str, Callable[..., Any]] = {}
        self._calls: Dict[bytes, Tuple[Method, Callable[..., Any]]] = {}
        for name, method in self.methods.items():
            fn = getattr(handler, name, None)
            if callable(fn):
                self._bound[name] = fn
                self._calls[method.nameBytes] = (method, fn)

    def process(self, data: bytes) -> "Union[bytes, Deferred[bytes]]":
        """
        Process one Thrift call.

        The result is never a L{Failure}.  A refusal made at once is
        raised: that costs the usual answer (bytes) nothing, neither a
        Deferred nor another type check, and servers meet it where they
        already catch what C{process} raises.

        @return: the reply bytes (C{b""} for a one-way call), or a Deferred
            of them.  A Deferred fails only with C{CancelledError} (the call
            was discarded) or L{RequestNackedError} (the handler refused it).
        @raise RequestNackedError: when the handler refused the call at once
            (raised it synchronously).
        @raise BadMessageError: when C{data} is not a Thrift message.
        """
        if data[:4] == _BINARY_CALL and len(data) >= 12:
            # The usual call: binary, strict, of a known method.  Anything
            # else, and args that do not decode, take the general path.
            end = 8 + _uint.unpack_from(data, 4)[0]
            target = self._calls.get(data[8:end])
            if target is not None and end + 4 <= len(data):
                try:
                    args = decodeBinaryArgs(target[0], data, end + 4)
                except BadMessageError:
                    pass
                else:
                    return self._call(target[1], args, target[0], _int.unpack_from(data, end)[0], BINARY)
        protocol, name, messageType, seqid, reader = readMessageBegin(data)
        method = self.methods.get(name)
        fn = self._bound.get(name)
        if method is None or fn is None:
            return encodeApplicationException(
                name, seqid, protocol, "Invalid method name: '%s'" % (name,), TApplicationException.UNKNOWN_METHOD
            )
        if messageType not in (TMessageType.CALL, TMessageType.ONEWAY):
            return encodeApplicationException(
                name, seqid, protocol, "Invalid message type %d" % (messageType,), TApplicationException.INVALID_MESSAGE_TYPE
            )
        try:
            args = decodeArgs(method, reader, protocol)
        except BadMessageError as e:
            return encodeApplicationException(name, seqid, protocol, str(e), TApplicationException.PROTOCOL_ERROR)
        return self._call(fn, args, method, seqid, protocol)

    def _call(
        self, fn: Callable[..., Any], args: Sequence[Any], method: Method, seqid: int, protocol: str
    ) -> "Union[bytes, Deferred[bytes]]":
        try:
            result = fn(*args)
        except RequestNackedError:
            raise
        except Exception:
            # Even a CancelledError: nothing discarded this call.
            return self._encodeFailure(Failure(), method, seqid, protocol)
        # isinstance() against Deferred (a Generic, so an ABCMeta class) is
        # slow: values of the usual types are never Deferreds.
        kind = type(result)
        if kind in _PLAIN:
            # _succeeded(), inline.
            return b"" if method.oneway else encodeResult(method, seqid, protocol, result)
        return self._later(result, kind, method, seqid, protocol)

    def _later(
        self, result: Any, kind: type, method: Method, seqid: int, protocol: str
    ) -> "Union[bytes, Deferred[bytes]]":
        """
        Answer a handler's result that is not a plain value: a Deferred, a
        coroutine, or an object of another type.
        """
        if kind is CoroutineType:
            try:
                result = Deferred.fromCoroutine(result)
            except Exception:
                return self._encodeFailure(Failure(), method, seqid, protocol)
            kind = Deferred
        if kind is not Deferred and not isinstance(result, Deferred):
            return b"" if method.oneway else encodeResult(method, seqid, protocol, result)
        if (
            result.called
            and not result.paused
            and not getattr(result, "_runningCallbacks", False)
            and not isinstance(result.result, (Failure, Deferred))
        ):
            # Fired already, with a value, and done with its callbacks (not
            # waiting on another Deferred, nor in the middle of running
            # them): answered at once, as a plain value is, without a
            # callback chain (the Deferred keeps its result, for whoever
            # else holds it).
            return self._succeeded(result.result, method, seqid, protocol)
        return result.addCallbacks(
            self._succeeded,
            self._failed,
            callbackArgs=(method, seqid, protocol),
            errbackArgs=(method, seqid, protocol),
        )

    @staticmethod
    def _succeeded(value: object, method: Method, seqid: int, protocol: str) -> bytes:
        if method.oneway:
            return b""
        return encodeResult(method, seqid, protocol, value)

    def _failed(self, failure: Failure, method: Method, seqid: int, protocol: str) -> Union[bytes, Failure]:
        if failure.check(CancelledError, RequestNackedError):
            return failure
        return self._encodeFailure(failure, method, seqid, protocol)

    def _encodeFailure(self, failure: Failure, method: Method, seqid: int, protocol: str) -> bytes:
        """
        @return: the reply bytes for a handler's C{failure}: its declared
            exception, or a C{TApplicationException} (C{b""} for a one-way
            call, whose failure is logged).
        """
        if method.oneway:
            self._logFailure("one-way call {name} failed", failure, name=method.name)
            return b""
        for _, cls in method.exceptions:
            if failure.check(cls):
                return encodeResult(method, seqid, protocol, exception=failure.value)
        self._logFailure("{name} failed", failure, name=method.name)
        return encodeApplicationException(
            method.name,
            seqid,
            protocol,
            "Internal error processing %s: '%s: %s'" % (method.name, type(failure.value).__name__, failure.value),
            TApplicationException.INTERNAL_ERROR,
        )


def serviceName(iface: type) -> str:
    """
    @param iface: a generated C{Iface} class.
    @return: the service's name: that of the module Thrift generated it in.
    """
    return iface.__module__.rsplit(".", 1)[-1]


def methodName(data: bytes) -> str:
    """
    @return: the method a Thrift message names, or C{"unknown"} when
        C{data} is not a Thrift message.
    """
    try:
        return readMessageBegin(data)[1]
    except BadMessageError:
        return "unknown"


def replyFailure(data: bytes) -> Optional[ApplicationError]:
    """
    @return: the L{ApplicationError} a Thrift reply (binary or compact)
        carries when it is a C{TApplicationException}, else None.
    """
    if data[:4] != b"\x80\x01\x00\x03" and not (data[:1] == b"\x82" and len(data) > 1 and data[1] >> 5 == TMessageType.EXCEPTION):
        return None
    exc = TApplicationException()
    try:
        protocol, _, _, _, reader = readMessageBegin(data)
        exc.read(protocolFor(protocol, reader.trans))
    except Exception:
        pass
    return ApplicationError(exc.message or "TApplicationException", exc.type or 0)
