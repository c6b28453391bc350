"""
Checks of clients' options, made before anything is built: a bad value is
a L{BadOptionError} naming the option when the client (or its builder's
setter) is called, not at its first use.
"""

import math
from typing import Any, Callable, Dict, Tuple

from txscales.errors import BadOptionError

Check = Callable[[Any], bool]


def number(minimum: float, strict: bool = False) -> Check:
    """
    @return: a check of a finite int or float (not a bool) at least
        C{minimum}, or over it when C{strict}.
    """

    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return value > minimum if strict else value >= minimum

    return check


def integer(minimum: int) -> Check:
    """
    @return: a check of an int (not a bool) at least C{minimum}.
    """
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def optional(check: Check) -> Check:
    """
    @return: a check of None, or of a value C{check} accepts.
    """
    return lambda value: value is None or check(value)


def instanceOf(kind: type) -> Check:
    """
    @return: a check of an instance of C{kind}.
    """
    return lambda value: isinstance(value, kind)


def flag(value: Any) -> bool:
    """
    @return: whether C{value} is True or False.
    """
    return value is True or value is False


class OptionChecks:
    """
    The checks of one client's options, by name.
    """

    def __init__(self, what: str, checks: Dict[str, Tuple[Check, str]]) -> None:
        """
        @param what: the client, as error messages name it (C{"Redis
            client"}).
        @param checks: for each option name, its check and what it must be.
        """
        self._what = what
        self._checks = checks

    def check(self, name: str, value: Any) -> None:
        """
        Check one option's value (an option without a check, such as
        C{reactor}, takes any).

        @raise BadOptionError: when C{value} is not one C{name} can take.
        """
        entry = self._checks.get(name)
        if entry is not None and not entry[0](value):
            raise BadOptionError("%s option %s must be %s, not %r" % (self._what, name, entry[1], value))
