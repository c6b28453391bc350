"""
The one place library code falls back to Twisted's global reactor.
"""

from typing import Any


def defaultReactor(reactor: Any = None) -> Any:
    """
    @param reactor: the reactor a caller passed, or None.
    @return: C{reactor}, or Twisted's global reactor when it is None.  The
        global reactor is imported here, at call time, so that importing
        txscales never installs one.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        return globalReactor
    return reactor
