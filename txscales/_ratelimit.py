"""
Log lines that a peer can trigger, kept bounded.

A hostile or broken peer can make a server or client log as fast as it can
send: a bad request, a bad frame, a bad serverset member.  L{RateLimitedLog}
lets a few lines of each kind through and counts the rest, which the next
line let through reports.  L{detached} makes an error safe to keep in a log
event: nothing it refers to holds what the failing code was looking at.
"""

from typing import Any, Dict, List, Optional, Set, TypeVar

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

MAX_KINDS = 256
"""How many kinds of line one L{RateLimitedLog} tracks apart; further kinds share one allowance."""

_OTHER = "\0other"


class _Allowance:
    """
    The allowance of one kind of line: a token bucket, and how many lines
    it suppressed since the last one let through.
    """

    __slots__ = ("tokens", "last", "suppressed")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.last = now
        self.suppressed = 0


class RateLimitedLog:
    """
    A logger that lets through at most C{burst} lines of each kind (each
    format string) at once, refilled at C{burst} per C{interval} seconds.
    Lines over that are counted, not emitted; the next line of the kind let
    through carries the count as C{suppressed} and says so in its text.

    @ivar suppressed: how many lines were suppressed in all.
    """

    def __init__(self, clock: Any, log: Optional[Logger] = None, burst: int = 10, interval: float = 60.0) -> None:
        """
        @param clock: an C{IReactorTime} (its C{seconds}).
        @param log: the L{Logger} lines go to (its namespace names them).
        @param burst: how many lines of a kind may come at once.
        @param interval: the seconds in which C{burst} lines are allowed
            again.
        """
        self._clock = clock
        self._log = log if log is not None else Logger()
        self._burst = burst
        self._rate = burst / interval
        self._allowances: Dict[str, _Allowance] = {}
        self.suppressed = 0

    def _allow(self, kind: str) -> Optional[int]:
        """
        Take one line of C{kind} from its allowance.

        @return: None when the line is suppressed, else how many lines of
            its kind were suppressed before it.
        """
        now = self._clock.seconds()
        allowances = self._allowances
        allowance = allowances.get(kind)
        if allowance is None:
            if len(allowances) >= MAX_KINDS:
                kind = _OTHER
                allowance = allowances.get(kind)
            if allowance is None:
                allowance = allowances[kind] = _Allowance(self._burst, now)
        elapsed = now - allowance.last
        allowance.last = now
        if elapsed > 0:
            allowance.tokens = min(self._burst, allowance.tokens + elapsed * self._rate)
        if allowance.tokens < 1:
            allowance.suppressed += 1
            self.suppressed += 1
            return None
        allowance.tokens -= 1
        suppressed, allowance.suppressed = allowance.suppressed, 0
        return suppressed

    def _admit(self, format: str, kwargs: Dict[str, Any]) -> Optional[str]:
        """
        Take a line of kind C{format} from its allowance.

        @return: None when the line is suppressed, else its format, which
            says how many lines of its kind were suppressed before it (in
            C{kwargs["suppressed"]}) when some were.
        """
        suppressed = self._allow(format)
        if suppressed:
            kwargs["suppressed"] = suppressed
            return format + " ({suppressed} similar lines suppressed)"
        return None if suppressed is None else format

    def emit(self, level: LogLevel, format: str, **kwargs: Any) -> bool:
        """
        Log a line of kind C{format}, unless its allowance is spent.

        @param level: the line's L{LogLevel}.
        @param format: the line's format string, which is also its kind.
        @param kwargs: the line's fields.
        @return: whether the line was emitted.
        """
        line = self._admit(format, kwargs)
        if line is None:
            return False
        self._log.emit(level, line, **kwargs)
        return True

    def info(self, format: str, **kwargs: Any) -> bool:
        """
        L{emit} at level C{info}.
        """
        return self.emit(LogLevel.info, format, **kwargs)

    def warn(self, format: str, **kwargs: Any) -> bool:
        """
        L{emit} at level C{warn}.
        """
        return self.emit(LogLevel.warn, format, **kwargs)

    def error(self, format: str, **kwargs: Any) -> bool:
        """
        L{emit} at level C{error}.
        """
        return self.emit(LogLevel.error, format, **kwargs)

    def failure(self, format: str, failure: Failure, **kwargs: Any) -> bool:
        """
        Log a failure with its traceback, as C{Logger.failure} does, unless
        the allowance of C{format} is spent.  The failure is cleaned first
        (its frames become text), so that the event holds no frame and
        nothing a frame referred to.

        @return: whether the line was emitted.
        """
        line = self._admit(format, kwargs)
        if line is None:
            return False
        # Through with_traceback(): some exceptions (Thrift's) refuse
        # attribute assignment.
        if failure.value is not None:
            detached(failure.value)
        failure.cleanFailure()
        self._log.failure(line, failure, **kwargs)
        return True


_E = TypeVar("_E", bound=BaseException)


def detached(error: _E) -> _E:
    """
    Drop the tracebacks of C{error} and of the errors it was raised from or
    while handling, so that keeping it (in a log event, in another error)
    keeps none of the frames it passed through, nor the buffers they held.

    @return: C{error} itself.
    """
    seen: Set[int] = set()
    stack: List[BaseException] = [error]
    while stack and len(seen) < 100:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.with_traceback(None)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return error
