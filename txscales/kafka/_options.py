"""
The producer's options checked before anything is made: a bad value is a
L{BadOptionError} naming the option, when the producer (or its builder's
setter) is called, not at the first send.
"""

from typing import Any, Mapping

from prometheus_client import CollectorRegistry

from txscales._options import OptionChecks, flag, instanceOf, integer, number, optional
from txscales.errors import BadOptionError
from txscales.kafka._codecs import checkCodec

_CHECKS = OptionChecks("Kafka producer", {
    "acks": (lambda v: not isinstance(v, bool) and v in (0, 1, -1, "all"), '0, 1, -1 or "all"'),
    "lingerMs": (number(0), "a number of milliseconds >= 0"),
    "batchSize": (integer(0), "an int >= 0"),
    "maxRequestSize": (integer(1), "an int >= 1"),
    "bufferMemory": (integer(1), "an int >= 1"),
    "maxBlock": (number(0), "a number of seconds >= 0"),
    "compression": (instanceOf(str), '"none", "gzip", "snappy", "lz4" or "zstd"'),
    "requestTimeout": (number(0, strict=True), "a number of seconds > 0"),
    "deliveryTimeout": (number(0, strict=True), "a number of seconds > 0"),
    "retryBackoff": (number(0), "a number of seconds >= 0"),
    "maxInFlight": (integer(1), "an int >= 1"),
    "idempotence": (optional(flag), "None, True or False"),
    "partitioner": (optional(instanceOf(str)), "None or a partitioner plugin's name"),
    "clientId": (optional(instanceOf(str)), "None or a str"),
    "connectTimeout": (number(0, strict=True), "a number of seconds > 0"),
    "discoveryTimeout": (number(0, strict=True), "a number of seconds > 0"),
    "metadataMaxAge": (number(0), "a number of seconds >= 0"),
    "maxFrameSize": (integer(1), "an int >= 1"),
    "stats": (flag, "True or False"),
    "label": (optional(instanceOf(str)), "None or a str"),
    "registry": (optional(instanceOf(CollectorRegistry)), "None or a prometheus CollectorRegistry"),
})


def checkOption(name: str, value: Any) -> None:
    """
    Check one option's value (an option without a check, such as
    C{reactor}, takes any).

    @raise BadOptionError: when C{value} is not one C{name} can take.
    @raise txscales.kafka.UnsupportedCodecError: for a C{compression}
        Kafka does not define, or whose library is not installed.
    """
    _CHECKS.check(name, value)
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
