"""
The C{txscales} command (a console script)::

    txscales list --idl service.thrift
    txscales call tcp://127.0.0.1:9090 TestService.query '{"x": "a"}' --idl service.thrift

See L{txscales._cli._call} for what it does and its exit statuses.
"""

import sys
from typing import TYPE_CHECKING, Any, List, Optional

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

__all__ = ["main"]


def main(argv: Optional[List[str]] = None) -> None:
    """
    Run the C{txscales} command with the real reactor, and exit with its
    status.

    @param argv: its arguments (default: the process's).
    """
    from twisted.internet.task import react

    from txscales._cli._call import run

    def start(reactor: Any) -> "Deferred[None]":
        arguments = sys.argv[1:] if argv is None else argv
        return run(reactor, arguments, sys.stdout, sys.stderr, sys.stdin).addCallback(_exit)

    react(start)


def _exit(status: int) -> None:
    if status:
        raise SystemExit(status)
