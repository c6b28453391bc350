"""
Finagle's broadcast contexts (MUX.md 2.2) and the request context a server
handler runs in.  Plain Python, no Twisted.
"""

from contextvars import ContextVar
from struct import Struct
from typing import Any, List, Optional, Sequence, Tuple

from txscales._tracing import DEBUG, SAMPLED, SAMPLING_KNOWN, TraceId
from txscales.mux import RETRIES_KEY, EncodedContexts

TRACE_KEY = b"com.twitter.finagle.tracing.TraceContext"
DEADLINE_KEY = b"com.twitter.finagle.Deadline"
CLIENT_ID_KEY = b"com.twitter.finagle.thrift.ClientIdContext"

NO_DEADLINE = 0x7FFFFFFFFFFFFFFF
_OWN_KEYS = frozenset([TRACE_KEY, DEADLINE_KEY, RETRIES_KEY, CLIENT_ID_KEY])

_trace = Struct(">QQQQ")
_DECIDING_FLAGS = DEBUG | SAMPLING_KNOWN | SAMPLED
_deadline = Struct(">QQ")
_short = Struct(">H")


def _pairPrefix(key: bytes, valueLength: int) -> bytes:
    return _short.pack(len(key)) + key + _short.pack(valueLength)


# The wire form of a root call's contexts, around its trace and deadline
# values: L{outgoingContexts} joins five pieces instead of encoding pairs.
# Saves ~0.9 us per call (hotpath.py, thriftmux, client: 13.3 vs 14.2 us
# with the contexts sent as plain pairs).
_ROOT_HEAD = _pairPrefix(TRACE_KEY, _trace.size)
_ROOT_MIDDLE = _pairPrefix(RETRIES_KEY, 4) + b"\x00\x00\x00\x00" + _pairPrefix(DEADLINE_KEY, _deadline.size)
_COUNT = [_short.pack(n) for n in (3, 4)]

currentRequest: "ContextVar[Optional[RequestContext]]" = ContextVar("txscales.currentRequest", default=None)


def sampledOut(contexts: Sequence[Tuple[bytes, bytes]]) -> bool:
    """
    @return: whether C{contexts} carry a TraceContext (as Finagle spells
        its key) whose flags say "sampling known, not sampled" (and not
        debug): a request that records nothing, checked without parsing.
    """
    for key, value in contexts:
        if key == TRACE_KEY:
            return len(value) in (32, 40) and value[31] & _DECIDING_FLAGS == SAMPLING_KNOWN
    return False


def decodeDeadline(value: bytes) -> Optional[Tuple[int, int]]:
    """
    @return: (timestamp ns, deadline ns), or None for a malformed value.
    """
    if len(value) != 16:
        return None
    return _deadline.unpack(value)


class RequestContext:
    """
    The contexts of the request a server handler is running for; client
    calls made from the handler inherit them (the trace becomes the parent
    of theirs, unknown contexts are passed on).

    @ivar contexts: list of (key, value) as received.
    @ivar trace: the L{TraceId}, or None.
    @ivar deadline: the deadline in epoch seconds, or None.
    @ivar clientId: the caller's client id, or None.
    """

    def __init__(self, contexts: Sequence[Tuple[bytes, bytes]]) -> None:
        self._contexts: Optional[Sequence[Tuple[bytes, bytes]]] = contexts
        self._request: Any = None
        self._parsed = False

    @classmethod
    def of(cls, request: Any) -> "RequestContext":
        """
        @param request: an object with C{contexts}, a Mux request.
        @return: the context of C{request}, whose contexts are read from it
            when first asked for.
        """
        context = cls.__new__(cls)
        context._contexts = None
        context._request = request
        context._parsed = False
        return context

    @property
    def contexts(self) -> Sequence[Tuple[bytes, bytes]]:
        contexts = self._contexts
        if contexts is None:
            contexts = self._contexts = self._request.contexts
            self._request = None
        return contexts

    @contexts.setter
    def contexts(self, contexts: Sequence[Tuple[bytes, bytes]]) -> None:
        self._contexts = contexts
        self._request = None

    # The contexts are parsed when first asked for: most handlers never
    # look at them.

    @property
    def trace(self) -> Optional[TraceId]:
        if not self._parsed:
            self._parse()
        return self._trace

    @property
    def deadline(self) -> Optional[float]:
        if not self._parsed:
            self._parse()
        return self._deadline

    @property
    def clientId(self) -> Optional[str]:
        if not self._parsed:
            self._parse()
        return self._clientId

    def _parse(self) -> None:
        self._parsed = True
        self._trace: Optional[TraceId] = None
        self._deadline: Optional[float] = None
        self._clientId: Optional[str] = None
        for key, value in self.contexts:
            # Keys are compared case-insensitively; they nearly always come
            # spelled as Finagle spells them, which one lookup recognises.
            kind = _KINDS.get(key)
            if kind is None:
                kind = _KINDS.get(key.lower())
                if kind is None:
                    continue
            if kind == _TRACE:
                self._trace = TraceId.decode(value)
            elif kind == _DEADLINE:
                decoded = decodeDeadline(value)
                if decoded is not None and decoded[1] != NO_DEADLINE:
                    self._deadline = decoded[1] / 1e9
            elif kind == _CLIENT_ID:
                self._clientId = value.decode("utf-8", "replace") or None

    def passedOn(self) -> List[Tuple[bytes, bytes]]:
        """
        @return: the contexts a downstream call carries unchanged: all but
            the ones each hop sets itself.
        """
        return [(k, v) for k, v in self.contexts if k.lower() not in _LOWER_OWN_KEYS]


_LOWER_OWN_KEYS = frozenset(k.lower() for k in _OWN_KEYS)

_TRACE, _DEADLINE, _CLIENT_ID = range(3)
_KINDS = {}
for _key, _kind in ((TRACE_KEY, _TRACE), (DEADLINE_KEY, _DEADLINE), (CLIENT_ID_KEY, _CLIENT_ID)):
    _KINDS[_key] = _KINDS[_key.lower()] = _kind
del _key, _kind


def encodeClientIdPair(clientId: bytes) -> Optional[bytes]:
    """
    @param clientId: a client id, bytes.
    @return: the wire form of the C{ClientIdContext} pair carrying it (key
        and value, each after its length), or None when it cannot be one.
    """
    if type(clientId) is not bytes or len(clientId) > 0x7FFF:
        return None
    return _pairPrefix(CLIENT_ID_KEY, len(clientId)) + clientId


def outgoingContexts(
    now: float,
    timeout: Optional[float],
    clientId: Optional[bytes],
    newSpanId: int,
    incoming: Optional["RequestContext"] = None,
    clientIdPair: Optional[bytes] = None,
    trace: Optional[TraceId] = None,
    flags: int = 0,
) -> List[Tuple[bytes, bytes]]:
    """
    Build the contexts of an outgoing call.

    @param now: the current epoch time, in seconds.
    @param timeout: the call's timeout in seconds, or None.
    @param clientId: this client's id (bytes), or None.
    @param newSpanId: a fresh random 64-bit span id.
    @param incoming: the L{RequestContext} of the server request being
        handled, if any.
    @param clientIdPair: C{encodeClientIdPair(clientId)}, which a client
        makes once, or None to encode it here when needed.
    @param trace: the call's L{TraceId} when the caller made it (a traced
        call: its span id is C{newSpanId}), or None to make it here: a
        child of C{incoming}'s trace, or a new root with C{flags}.
    @param flags: the trace flags of a new root trace.
    @return: list of (key, value) in Finagle's order: TraceContext,
        Retries, Deadline, then the client id and inherited contexts.
    """
    nowNs = int(now * 1e9)
    deadlineNs = NO_DEADLINE if timeout is None else nowNs + int(timeout * 1e9)
    if incoming is None:
        if trace is None:
            return _rootContexts(nowNs, deadlineNs, clientId, _trace.pack(newSpanId, newSpanId, newSpanId, flags), clientIdPair)
        if trace.traceIdHigh is None:
            return _rootContexts(nowNs, deadlineNs, clientId, trace.encode(), clientIdPair)
        incoming = RequestContext(())
    if trace is not None:
        traceValue = trace.encode()
    elif incoming.trace is not None:
        traceValue = incoming.trace.child(newSpanId).encode()
    else:
        traceValue = _trace.pack(newSpanId, newSpanId, newSpanId, flags)
    if incoming.deadline is not None:
        deadlineNs = min(deadlineNs, int(incoming.deadline * 1e9))
    contexts = [
        (TRACE_KEY, traceValue),
        (RETRIES_KEY, b"\x00\x00\x00\x00"),
        (DEADLINE_KEY, _deadline.pack(nowNs, deadlineNs)),
    ]
    if clientId is None and incoming.clientId is not None:
        clientId = incoming.clientId.encode("utf-8")
    if clientId:
        contexts.append((CLIENT_ID_KEY, clientId))
    contexts.extend(incoming.passedOn())
    return contexts


def _rootContexts(
    nowNs: int,
    deadlineNs: int,
    clientId: Optional[bytes],
    traceValue: bytes,
    clientIdPair: Optional[bytes],
) -> List[Tuple[bytes, bytes]]:
    """
    The contexts of a call made outside any request, with C{traceValue}
    (32 bytes), their wire form made from pieces encoded once.
    """
    deadlineValue = _deadline.pack(nowNs, deadlineNs)
    pairs = [(TRACE_KEY, traceValue), (RETRIES_KEY, b"\x00\x00\x00\x00"), (DEADLINE_KEY, deadlineValue)]
    if not clientId:
        return EncodedContexts.of(pairs, b"".join((_COUNT[0], _ROOT_HEAD, traceValue, _ROOT_MIDDLE, deadlineValue)))
    pairs.append((CLIENT_ID_KEY, clientId))
    if clientIdPair is None:
        clientIdPair = encodeClientIdPair(clientId)
        if clientIdPair is None:
            return pairs
    return EncodedContexts.of(
        pairs, b"".join((_COUNT[1], _ROOT_HEAD, traceValue, _ROOT_MIDDLE, deadlineValue, clientIdPair))
    )
