"""
Failure accrual for one Redis server, as the ThriftMux client's
(L{txscales.stack.FailureAccrual}): which outcomes of commands and
connections count, and what a command meets while the server is dead.

Counted as failures: a command that timed out after it was sent, a
connection lost under commands, and a failed connection attempt.  Counted
as successes: any reply, error replies (C{WRONGTYPE}, C{NOSCRIPT}, ...)
included, since the server answered.  Not counted: what never reached the
server (failed fast, refused for C{maxPending}, cancelled, the client
closed).
"""

from random import Random
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from txscales.errors import ConnectionLostError, RequestTimeoutError
from txscales.redis._errors import RedisReplyError, ServerDeadError
from txscales.redis._hashing import KetamaRing, ketamaName
from txscales.stack import ALIVE, DEAD, FailureAccrual

if TYPE_CHECKING:
    from txscales.redis._node import RedisNode

Address = Tuple[str, int]


class NodeHealth:
    """
    The failure accrual of one server's commands and connections.

    @ivar accrual: the L{FailureAccrual} deciding when the server is dead.
    @ivar onChange: called without arguments when the server is marked
        dead, and when it may take commands again (its probe's place is
        open); the sharded client takes it out of its ring and back.
    """

    def __init__(self, address: Address, clock: Any, random: Random, options: Mapping[str, Any]) -> None:
        """
        @param address: the server's C{(host, port)}, for errors.
        @param options: the keyword arguments of L{FailureAccrual}
            (C{consecutiveFailures}, C{successRate}, C{window},
            C{minRequests}, C{markDeadFor}, C{countTimeouts}).
        """
        self._address = address
        self.onChange: Callable[[], object] = lambda: None
        self.accrual = FailureAccrual(clock, random, onChange=self._changed, **options)

    def _changed(self) -> None:
        self.onChange()

    @property
    def dead(self) -> bool:
        """
        Whether the server is marked dead (its commands fail fast).
        """
        return self.accrual.state == DEAD

    def admit(self, count: int) -> Optional[ServerDeadError]:
        """
        C{count} commands are about to be sent.

        @return: the error they fail with at once while the server is dead,
            else None (the first of them may be the probe).
        """
        if self.accrual.state == DEAD:
            return ServerDeadError(self._address)
        self.accrual.admit()
        return None

    def watch(self, deferreds: List["Deferred[Any]"]) -> None:
        """
        Count the outcomes of commands sent.
        """
        for d in deferreds:
            d.addBoth(self._outcome)

    def watched(self, d: "Deferred[Any]") -> "Deferred[Any]":
        """
        Count the outcome of one command sent.

        @return: C{d}.
        """
        return d.addBoth(self._outcome)

    def _outcome(self, result: Any) -> Any:
        accrual = self.accrual
        if not isinstance(result, Failure) or isinstance(result.value, RedisReplyError):
            accrual.success()
        elif isinstance(result.value, RequestTimeoutError) and result.value.mayHaveReachedServer:
            accrual.timedOut()
        elif isinstance(result.value, ConnectionLostError):
            accrual.failure()
        else:
            accrual.ignored()
        return result

    def connectFailed(self) -> None:
        """
        A connection attempt failed: a failure, and a probe's failure.
        """
        accrual = self.accrual
        if accrual.state == DEAD:
            return
        if accrual.state == ALIVE:
            accrual.failure()
        else:
            accrual.admit()
            accrual.connectFailed()

    def connected(self) -> None:
        """
        A connection was made after attempts failed: probe at once.
        """
        self.accrual.reconnected()

    def stop(self) -> None:
        """
        Cancel the revival timer (the server is no longer used).
        """
        self.accrual.stop()


def liveRing(nodes: "Dict[Address, RedisNode]", addresses: Sequence[Address],
             eject: bool) -> "Optional[KetamaRing[RedisNode]]":
    """
    The ketama ring of a sharded client's servers.

    @param nodes: the servers' nodes by address.
    @param addresses: their addresses, in order.
    @param eject: leave out the servers failure accrual marked dead (as
        Finagle's C{ejectFailedHost} and twemproxy's C{auto_eject_hosts}):
        each of their keys goes to the next server on the ring, the
        others' keys stay where they are.  When every server is dead, none
        is left out (their commands fail fast).
    @return: the ring, or None without a server.
    """
    live = list(addresses)
    if eject:
        live = [a for a in addresses if not _dead(nodes[a])] or live
    if not live:
        return None
    return KetamaRing([(ketamaName(host, port), 1, nodes[(host, port)]) for host, port in live])


def _dead(node: "RedisNode") -> bool:
    health = node.health
    return health is not None and health.dead
