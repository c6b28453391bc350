"""
Blocking commands (C{BLPOP} and the like): which commands block, on which
keys and for how long, and their typed helpers.  Plain Python, no Twisted.

A blocking command holds its connection until the server answers it, so
the client sends it on a pooled connection of its own rather than on the
pipelined connection every other command shares.
"""

from typing import Any, List, Optional, Sequence, Tuple

from txscales.redis._commands import Key, Transform, toFloat
from txscales.redis._routing import commandName

LAST_TIMEOUT = frozenset(["BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX", "BLMOVE", "BRPOPLPUSH"])
"""
Blocking commands whose last argument is the timeout in seconds.
"""

FIRST_TIMEOUT = frozenset(["BLMPOP", "BZMPOP"])
"""
Blocking commands whose first argument is the timeout in seconds, then
C{numkeys} and the keys.
"""

STREAMS = frozenset(["XREAD", "XREADGROUP"])
"""
Commands that block when given C{BLOCK milliseconds}.
"""

FOREVER = None
"""
What L{blockingCommand} gives for a command that may block forever (a
timeout of 0).
"""


def _seconds(value: Any, scale: float = 1.0) -> Optional[float]:
    """
    @return: a timeout argument in seconds, L{FOREVER} for 0, or 0.0 when it
        is not a number (the server refuses the command at once).
    """
    try:
        seconds = float(value.decode("ascii") if isinstance(value, (bytes, bytearray)) else value) * scale
    except (ValueError, TypeError, UnicodeDecodeError):
        return 0.0
    if seconds != seconds or seconds < 0:
        return 0.0
    return FOREVER if seconds == 0 else seconds


def blockingCommand(args: Sequence[Any]) -> Optional[Tuple[List[Any], Optional[float]]]:
    """
    Tell a blocking command from others.

    @param args: a command's name and arguments.
    @return: None for a command that does not block, else its keys and the
        seconds the server may block it (L{FOREVER}: no limit).  C{XREAD}
        and C{XREADGROUP} block only with C{BLOCK}.
    """
    if len(args) < 2:
        return None
    name = commandName(args)
    if name in LAST_TIMEOUT:
        keys = list(args[1:3]) if name in ("BLMOVE", "BRPOPLPUSH") else list(args[1:-1])
        return keys, _seconds(args[-1])
    if name in FIRST_TIMEOUT:
        try:
            count = int(args[2])
        except (IndexError, ValueError, TypeError):
            count = 0
        return list(args[3:3 + count]), _seconds(args[1])
    if name in STREAMS:
        words = [_word(arg) for arg in args]
        if "BLOCK" not in words or "STREAMS" not in words:
            return None
        block = words.index("BLOCK")
        streams = list(args[words.index("STREAMS") + 1:])
        seconds = _seconds(args[block + 1], 0.001) if block + 1 < len(args) else 0.0
        return streams[:len(streams) // 2], seconds
    return None


def _word(arg: Any) -> str:
    if isinstance(arg, bytes):
        arg = arg.decode("ascii", "replace")
    return arg.upper() if isinstance(arg, str) else ""


def _popped(reply: Any) -> Any:
    """
    @return: C{(key, value)} from a BLPOP/BRPOP reply, None for nil.
    """
    return None if reply is None else tuple(reply)


def _zpopped(reply: Any) -> Any:
    """
    @return: C{(key, member, score)} from a BZPOPMIN/BZPOPMAX reply, the
        score a float; None for nil.
    """
    if reply is None:
        return None
    key, member, score = reply
    return (key, member, toFloat(score))


class BlockingCommands:
    """
    Typed helpers of the blocking commands.  A class using them defines
    C{_callBlocking(args, keys, seconds, transform)}: send C{args}, a
    command on C{keys} the server may block for C{seconds} (None: no
    limit).

    Each helper's C{timeout} is the server's, in seconds (0, the default,
    waits forever); the client's own C{timeout} option is added to it.
    """

    def _callBlocking(self, args: List[Any], keys: List[Any], seconds: Optional[float],
                      transform: Transform = None) -> Any:
        raise NotImplementedError()

    def _blocking(self, args: List[Any], keys: Sequence[Key], timeout: float, transform: Transform) -> Any:
        return self._callBlocking(args + [timeout], list(keys), _seconds(timeout), transform)

    def blpop(self, *keys: Key, timeout: float = 0) -> Any:
        """
        C{BLPOP}: remove and return the head of the first non-empty list of
        C{keys}, waiting up to C{timeout} seconds (0: forever) for one.

        @return: (a Deferred of) C{(key, value)}, or None when the server's
            timeout passed first.
        """
        return self._blocking(["BLPOP", *keys], keys, timeout, _popped)

    def brpop(self, *keys: Key, timeout: float = 0) -> Any:
        """
        C{BRPOP}: remove and return the tail of the first non-empty list of
        C{keys}, waiting up to C{timeout} seconds (0: forever) for one.

        @return: (a Deferred of) C{(key, value)}, or None when the server's
            timeout passed first.
        """
        return self._blocking(["BRPOP", *keys], keys, timeout, _popped)

    def blmove(self, source: Key, destination: Key, wherefrom: str = "LEFT", whereto: str = "RIGHT",
               timeout: float = 0) -> Any:
        """
        C{BLMOVE}: move an element from the C{wherefrom} end (C{"LEFT"} or
        C{"RIGHT"}) of the list C{source} to the C{whereto} end of the list
        C{destination}, waiting up to C{timeout} seconds (0: forever) for
        C{source} to have one.  On a sharded client both keys must be on
        one server.

        @return: (a Deferred of) the element moved, or None when the
            server's timeout passed first.
        """
        return self._blocking(["BLMOVE", source, destination, wherefrom, whereto], [source, destination], timeout,
                              None)

    def bzpopmin(self, *keys: Key, timeout: float = 0) -> Any:
        """
        C{BZPOPMIN}: remove and return the member with the lowest score of
        the first non-empty sorted set of C{keys}, waiting up to C{timeout}
        seconds (0: forever) for one.

        @return: (a Deferred of) C{(key, member, score)}, the score a
            float, or None when the server's timeout passed first.
        """
        return self._blocking(["BZPOPMIN", *keys], keys, timeout, _zpopped)

    def bzpopmax(self, *keys: Key, timeout: float = 0) -> Any:
        """
        C{BZPOPMAX}: remove and return the member with the highest score of
        the first non-empty sorted set of C{keys}, waiting up to C{timeout}
        seconds (0: forever) for one.

        @return: (a Deferred of) C{(key, member, score)}, the score a
            float, or None when the server's timeout passed first.
        """
        return self._blocking(["BZPOPMAX", *keys], keys, timeout, _zpopped)
