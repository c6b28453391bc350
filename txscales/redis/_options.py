"""
The Redis client's options, checked before anything is made: a bad value is
a L{BadOptionError} naming the option, when the client (or its builder's
setter) is called, not at the first command.
"""

import math
from typing import Any, Callable, Dict, Mapping, Tuple

from prometheus_client import CollectorRegistry

from txscales.errors import BadOptionError


def _number(minimum: float, strict: bool = False) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return value > minimum if strict else value >= minimum

    return check


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _integer(minimum: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != "" and not any(c in value for c in " \r\n")


_CHECKS: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    "password": (_optional(lambda v: isinstance(v, str)), "None or a str"),
    "username": (_optional(lambda v: isinstance(v, str) and v != ""), "None or a non-empty str"),
    "db": (_integer(0), "an int >= 0"),
    "clientName": (_optional(_text), "None or a str without spaces"),
    "protocol": (lambda v: not isinstance(v, bool) and v in (2, 3), "2 or 3"),
    "timeout": (_optional(_number(0, strict=True)), "None or a number of seconds > 0"),
    "connectTimeout": (_number(0, strict=True), "a number of seconds > 0"),
    "maxPending": (_integer(1), "an int >= 1"),
    "decodeResponses": (lambda v: v is True or v is False, "True or False"),
    "stats": (lambda v: v is True or v is False, "True or False"),
    "registry": (_optional(lambda v: isinstance(v, CollectorRegistry)), "None or a prometheus CollectorRegistry"),
    "label": (_optional(lambda v: isinstance(v, str)), "None or a str"),
    "backoff": (
        lambda v: isinstance(v, tuple) and len(v) == 2 and all(_number(0, strict=True)(x) for x in v) and v[0] <= v[1],
        "a (start, maximum) tuple of seconds > 0",
    ),
    "maxTransactionRetries": (_integer(0), "an int >= 0"),
}


def checkOption(name: str, value: Any) -> None:
    """
    Check one option's value (an option without a check, such as
    C{reactor}, takes any).

    @raise BadOptionError: when C{value} is not one C{name} can take.
    """
    check = _CHECKS.get(name)
    if check is not None and not check[0](value):
        raise BadOptionError("Redis client option %s must be %s, not %r" % (name, check[1], value))


def checkOptions(options: Mapping[str, Any]) -> None:
    """
    Check a client's options, each and together.

    @raise BadOptionError: for a bad value, or a user name without a
        password.
    """
    for name, value in options.items():
        checkOption(name, value)
    if options.get("username") is not None and options.get("password") is None:
        raise BadOptionError("Redis client option username needs a password")
