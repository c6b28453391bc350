"""
The producer's options checked before anything is made: a bad value is a
L{BadOptionError} naming the option, when the producer (or its builder's
setter) is called, not at the first send.
"""

import math
from typing import Any, Callable, Dict, Mapping, Tuple

from prometheus_client import CollectorRegistry

from txscales.errors import BadOptionError
from txscales.kafka._codecs import checkCodec


def _number(minimum: float, strict: bool = False) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return value > minimum if strict else value >= minimum

    return check


def _integer(minimum: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _optional(kind: type) -> Callable[[Any], bool]:
    return lambda value: value is None or isinstance(value, kind)


_CHECKS: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    "acks": (lambda v: not isinstance(v, bool) and v in (0, 1, -1, "all"), '0, 1, -1 or "all"'),
    "lingerMs": (_number(0), "a number of milliseconds >= 0"),
    "batchSize": (_integer(0), "an int >= 0"),
    "maxRequestSize": (_integer(1), "an int >= 1"),
    "bufferMemory": (_integer(1), "an int >= 1"),
    "maxBlock": (_number(0), "a number of seconds >= 0"),
    "compression": (lambda v: isinstance(v, str), '"none", "gzip", "snappy", "lz4" or "zstd"'),
    "requestTimeout": (_number(0, strict=True), "a number of seconds > 0"),
    "deliveryTimeout": (_number(0, strict=True), "a number of seconds > 0"),
    "retryBackoff": (_number(0), "a number of seconds >= 0"),
    "maxInFlight": (_integer(1), "an int >= 1"),
    "idempotence": (lambda v: v is None or v is True or v is False, "None, True or False"),
    "partitioner": (_optional(str), "None or a partitioner plugin's name"),
    "clientId": (_optional(str), "None or a str"),
    "connectTimeout": (_number(0, strict=True), "a number of seconds > 0"),
    "discoveryTimeout": (_number(0, strict=True), "a number of seconds > 0"),
    "metadataMaxAge": (_number(0), "a number of seconds >= 0"),
    "maxFrameSize": (_integer(1), "an int >= 1"),
    "stats": (lambda v: v is True or v is False, "True or False"),
    "label": (_optional(str), "None or a str"),
    "registry": (_optional(CollectorRegistry), "None or a prometheus CollectorRegistry"),
}


def checkOption(name: str, value: Any) -> None:
    """
    Check one option's value (an option without a check, such as
    C{reactor}, takes any).

    @raise BadOptionError: when C{value} is not one C{name} can take.
    @raise txscales.kafka.UnsupportedCodecError: for a C{compression}
        Kafka does not define, or whose library is not installed.
    """
    check = _CHECKS.get(name)
    if check is not None and not check[0](value):
        raise BadOptionError("Kafka producer option %s must be %s, not %r" % (name, check[1], value))
    if name == "compression":
        checkCodec(value)


def checkOptions(options: Mapping[str, Any]) -> None:
    """
    Check a producer's options, each and together.

    @raise BadOptionError: for a bad value, or idempotence asked for with
        acks other than C{"all"}.
    @raise txscales.kafka.UnsupportedCodecError: as L{checkOption}.
    """
    for name, value in options.items():
        checkOption(name, value)
    if options.get("idempotence") and options.get("acks", "all") not in ("all", -1):
        raise BadOptionError("an idempotent Kafka producer needs acks='all', not %r" % (options["acks"],))
