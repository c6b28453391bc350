"""
The Redis client's Prometheus metrics: calls, errors and latency per
command.  Each command adds to plain numbers, which become Prometheus
samples only when the registry is collected.  Clients with the same label
share their series.
"""

import weakref
from typing import Any, Callable, Dict, Optional, Tuple

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from txscales._metrics import Histogram, Labelled, registered

PREFIX = "txscales_redis_client_"

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Bounds, in seconds, of the command latency histogram."""

MAX_COMMANDS = 256
"""Distinct command names counted per label; later ones count as C{OTHER}."""

_collectors: "weakref.WeakKeyDictionary[CollectorRegistry, _Metrics]" = weakref.WeakKeyDictionary()


class _Command:
    __slots__ = ("calls", "errors", "latency")

    def __init__(self) -> None:
        self.calls = 0
        self.errors: Dict[str, int] = {}
        self.latency = Histogram(LATENCY_BUCKETS)


class _Metrics(Labelled[Dict[str, _Command]]):
    """
    A collector for the Redis clients of one registry: each label's
    commands by name.
    """

    def __init__(self) -> None:
        Labelled.__init__(self, dict)

    def describe(self) -> Tuple[Any, ...]:
        return self._families()

    def _families(self) -> Tuple[Any, ...]:
        return (
            CounterMetricFamily(PREFIX + "calls", "Commands sent, by command.", labels=["client", "command"]),
            CounterMetricFamily(PREFIX + "errors", "Commands that failed, by command and error class.",
                                labels=["client", "command", "error"]),
            HistogramMetricFamily(PREFIX + "latency_seconds", "Seconds from a command to its reply or failure.",
                                  labels=["client", "command"]),
        )

    def collect(self) -> Tuple[Any, ...]:
        calls, errors, latency = families = self._families()
        for label, commands in list(self.series.items()):
            for name, c in sorted(commands.items()):
                calls.add_metric([label, name], c.calls)
                for error, count in sorted(c.errors.items()):
                    errors.add_metric([label, name, error], count)
                latency.add_metric([label, name], c.latency.cumulative(), c.latency.sum)
        return families


class RedisStats:
    """
    The metrics of a client (or of the clients sharing a label).
    """

    def __init__(self, label: str, clock: Any, registry: Optional[CollectorRegistry] = None) -> None:
        """
        @param label: the client's name in metrics (the C{client} label).
        @param clock: the C{IReactorTime} timing commands.
        @param registry: the prometheus C{CollectorRegistry} (default: the
            global one).
        """
        collector = registered(_collectors, registry if registry is not None else REGISTRY, _Metrics)
        self._commands = collector.seriesFor(label)
        # The commands by the name as given (b"get", "GET", ...).
        self._byName: Dict[Any, _Command] = {}
        self._seconds: Callable[[], float] = clock.seconds

    def _command(self, name: Any) -> _Command:
        command = self._byName.get(name)
        if command is not None:
            return command
        key = name
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        name = str(name).upper()
        command = self._commands.get(name)
        if command is None:
            if len(self._commands) >= MAX_COMMANDS:
                name = "OTHER"
            command = self._commands.setdefault(name, _Command())
        if len(self._byName) < 4 * MAX_COMMANDS and type(key) in (str, bytes):
            self._byName[key] = command
        return command

    def observe(self, name: Any, reply: "Deferred[Any]") -> "Deferred[Any]":
        """
        Count a command and time its reply.

        @param name: the command's name.
        @param reply: the Deferred of its reply.
        @return: C{reply}.
        """
        command = self._command(name)
        command.calls += 1
        return reply.addBoth(self._done, command, self._seconds())

    def _done(self, result: Any, command: _Command, start: float) -> Any:
        command.latency.observe(self._seconds() - start)
        if isinstance(result, Failure):
            error = type(result.value).__name__
            command.errors[error] = command.errors.get(error, 0) + 1
        return result
