"""
The Redis client's options, checked before anything is made: a bad value is
a L{BadOptionError} naming the option, when the client (or its builder's
setter) is called, not at the first command.
"""

from typing import Any, Mapping, Optional, Tuple

from prometheus_client import CollectorRegistry

from txscales._options import OptionChecks, flag, instanceOf, integer, number, optional
from txscales.errors import BadOptionError


DEFAULT_FAIL_FAST = (0.05, 5.0)
"""
The default C{(start, maximum)} seconds between reconnection attempts.
"""


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != "" and not any(c in value for c in " \r\n")


def _interval(value: Any) -> bool:
    return (isinstance(value, tuple) and len(value) == 2 and all(number(0, strict=True)(x) for x in value)
            and value[0] <= value[1])


def _failFast(value: Any) -> bool:
    if not isinstance(value, dict) or not set(value) <= {"start", "maximum"}:
        return False
    if not all(number(0, strict=True)(x) for x in value.values()):
        return False
    return value.get("start", DEFAULT_FAIL_FAST[0]) <= value.get("maximum", DEFAULT_FAIL_FAST[1])


_ACCRUAL = {
    "consecutiveFailures": integer(0),
    "successRate": number(0),
    "window": number(0, strict=True),
    "minRequests": integer(0),
    "markDeadFor": _interval,
    "countTimeouts": flag,
}


def _failureAccrual(value: Any) -> bool:
    if value is False:
        return True
    if not isinstance(value, dict):
        return False
    if not all(name in _ACCRUAL and _ACCRUAL[name](option) for name, option in value.items()):
        return False
    return value.get("successRate", 0.8) <= 1


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
    "failFast": (optional(_failFast), "None or a dict of start and maximum seconds > 0 (start <= maximum)"),
    "failureAccrual": (
        optional(_failureAccrual),
        "False, or a dict of FailureAccrual's options (consecutiveFailures, successRate, window, minRequests,"
        " markDeadFor, countTimeouts)",
    ),
    "ejectFailedHosts": (flag, "True or False"),
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


def failFastDelays(failFast: Optional[Mapping[str, float]]) -> Tuple[float, float]:
    """
    @return: the C{(start, maximum)} seconds between reconnection attempts
        of the C{failFast} option (default: 0.05 to 5 s).
    """
    options = failFast or {}
    return (options.get("start", DEFAULT_FAIL_FAST[0]), options.get("maximum", DEFAULT_FAIL_FAST[1]))
