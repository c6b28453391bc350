"""
The Redis client's options, checked before anything is made: a bad value is
a L{BadOptionError} naming the option, when the client (or its builder's
setter) is called, not at the first command.
"""

from typing import Any, Mapping

from prometheus_client import CollectorRegistry

from txscales._options import OptionChecks, flag, instanceOf, integer, number, optional
from txscales.errors import BadOptionError


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != "" and not any(c in value for c in " \r\n")


_CHECKS = OptionChecks("Redis client", {
    "password": (optional(instanceOf(str)), "None or a str"),
    "username": (optional(lambda v: isinstance(v, str) and v != ""), "None or a non-empty str"),
    "db": (integer(0), "an int >= 0"),
    "clientName": (optional(_text), "None or a str without spaces"),
    "protocol": (lambda v: not isinstance(v, bool) and v in (2, 3), "2 or 3"),
    "timeout": (optional(number(0, strict=True)), "None or a number of seconds > 0"),
    "connectTimeout": (number(0, strict=True), "a number of seconds > 0"),
    "maxPending": (integer(1), "an int >= 1"),
    "decodeResponses": (flag, "True or False"),
    "stats": (flag, "True or False"),
    "registry": (optional(instanceOf(CollectorRegistry)), "None or a prometheus CollectorRegistry"),
    "label": (optional(instanceOf(str)), "None or a str"),
    "backoff": (
        lambda v: isinstance(v, tuple) and len(v) == 2 and all(number(0, strict=True)(x) for x in v) and v[0] <= v[1],
        "a (start, maximum) tuple of seconds > 0",
    ),
    "maxTransactionRetries": (integer(0), "an int >= 0"),
    "blockingPoolSize": (integer(1), "an int >= 1"),
    "maxRedirects": (lambda v: integer(0)(v) and v <= 100, "an int from 0 to 100"),
    "maxClusterRetries": (lambda v: integer(0)(v) and v <= 100, "an int from 0 to 100"),
})


def checkOption(name: str, value: Any) -> None:
    """
    Check one option's value (an option without a check, such as
    C{reactor}, takes any).

    @raise BadOptionError: when C{value} is not one C{name} can take.
    """
    _CHECKS.check(name, value)


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
