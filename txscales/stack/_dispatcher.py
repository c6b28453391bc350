"""
The middle of the client stack: the L{Dispatcher} (stats, requeues and the
balancer).  The stack is put together, with the reason for each layer's
place, in L{txscales.stack._clientstack.ClientStack}.
"""

from math import ceil
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from txscales.errors import TxScalesError
from txscales.interfaces import IBalancer
from txscales.stack._accrual import ALIVE

if TYPE_CHECKING:
    from txscales.stack._retrybudget import NoRetryBudget, RetryBudget
    from txscales.stats import ClientStats


_EARLY = 1e-3
"""How early (seconds) an attempt cancelled before its call's timeout is
taken as timed out: the timeout layer starts its clock a little later."""


def isRequeueable(failure: Failure) -> bool:
    """
    @return: whether C{failure} is safe to send again elsewhere: a txscales
        error that certainly did not reach the server and is retryable.
    """
    value = failure.value
    return isinstance(value, TxScalesError) and value.retryable and not value.mayHaveReachedServer


class Dispatcher:
    """
    The middle of the client stack, on one callback per attempt: count the
    call in the stats, pick a node with the balancer, send the request to
    it, keep the node's and the balancer's accounting, and send again, to
    another pick, what certainly never reached a server (connect failures,
    nacks, draining sessions) within the retry budget: at most
    C{ceil(0.2 * balance)} requeues per call and C{maxRequeues} in all.  A
    successful call deposits in the budget.

    These are four layers (stats, requeue, balancer, node) in the order of
    L{txscales.stack._clientstack.ClientStack}'s docstring; they share one
    callback because every call pays for each callback it carries.  For
    the same reason a request's C{decode} (if not None) turns the answer
    into the call's result in that callback too.

    The balancer's nodes are L{txscales.stack._node.EndpointNode}s: beyond
    L{txscales.interfaces.INode}, the Dispatcher uses their C{send},
    C{failed}, C{retiring}, C{close} and C{accrual} (a
    L{txscales.stack._accrual.FailureAccrual} on the Dispatcher's clock,
    or None: on success the Dispatcher counts it as
    L{EndpointNode.succeeded <txscales.stack._node.EndpointNode.succeeded>}
    would).

    @param policy: an optional user retry policy, C{policy(failure,
        attempt)} returning whether to retry a failure that may have reached
        the server; it draws on the same budget.
    @param stats: a L{txscales.stats.Stats}, or None.
    @ivar requeues: calls sent again.
    @ivar budgetExhausted: requeues refused for want of budget.
    """

    def __init__(
        self,
        balancer: IBalancer,
        clock: IReactorTime,
        budget: "Union[RetryBudget, NoRetryBudget]",
        maxRequeues: int = 25,
        policy: Optional[Callable[[Failure, int], bool]] = None,
        stats: "Optional[ClientStats]" = None,
    ) -> None:
        self.balancer = balancer
        self._clock = clock
        self._budget = budget
        self._maxRequeues = maxRequeues
        self._policy = policy
        self._stats = stats
        self.requeues = 0
        self.budgetExhausted = 0
        # A success's deposit goes straight into the budget's window (see
        # _succeeded) when the budget keeps the stack's time.
        deposits = getattr(budget, "deposits", None)
        self._deposits = deposits if deposits is not None and getattr(budget, "now", None) == clock.seconds else None
        self._deposit = getattr(budget, "DEPOSIT", 0)

    def after(self, ready: Deferred, request: Any) -> Deferred:
        """
        Dispatch C{request} once C{ready} fires (counted from now); fail it
        with C{ready}'s failure.
        """
        start = self._clock.seconds()
        if self._stats is not None:
            self._stats.started()
        return ready.addCallbacks(
            lambda _: self._attempt(request, 0, start), self._finished, errbackArgs=(start,)
        )

    def _attempt(self, request: Any, retries: int = 0, start: Optional[float] = None) -> Deferred:
        """
        Send attempt number C{retries} of a call made at C{start} (None for
        a call starting now).
        """
        decode = request.decode
        if start is None:
            start = sent = self._clock.seconds()
            stats = self._stats
            if stats is not None:
                stats.started()
        else:
            sent = self._clock.seconds()
        try:
            node = self.balancer.pick()
        except Exception:
            return fail(self._finished(Failure(), start))
        try:
            d = node.send(request.retried(retries) if retries else request)
        except Exception:
            d = fail()
        return d.addCallbacks(
            self._succeeded,
            self._failed,
            callbackArgs=(node, start, sent, decode),
            errbackArgs=(node, request, retries, start, sent),
        )

    __call__ = _attempt

    def _succeeded(self, result, node, start, sent, decode):
        now = self._clock.seconds()
        # EndpointNode.succeeded, _release and the budget's deposit, inline:
        # this runs once per call.  A success of an endpoint alive and a
        # deposit are counted into their windows' current slice as plain
        # integers (WindowedAdder.tally), read with the clock reading above:
        # the stack's nodes keep their accrual in the stack's time.
        accrual = node.accrual
        if accrual is not None:
            successes = accrual.successes
            if accrual.state == ALIVE and now < successes.until:
                # FailureAccrual.success, for an endpoint alive.
                successes.tally += 1
                accrual.consecutive = 0
            else:
                accrual.success()
        self.balancer.release(node, now - sent)
        if node.retiring and not node.pending:
            node.close()
        deposits = self._deposits
        if deposits is not None and now < deposits.until:
            deposits.tally += self._deposit
        else:
            self._budget.deposit()
        stats = self._stats
        if stats is not None:
            stats.succeeded(now - start)
        return result if decode is None else decode(result)

    def _failed(self, failure, node, request, retries, start, sent):
        now = self._clock.seconds()
        timeout = request.timeout
        # The timeout layer expires a call by cancelling its attempt.
        timedOut = timeout is not None and now - start >= timeout - _EARLY and failure.check(CancelledError) is not None
        node.failed(failure, timedOut)
        self._release(node, now - sent)
        if self._requeue(failure, retries):
            return self._attempt(request, retries + 1, start)
        return self._finished(failure, start)

    def _finished(self, failure, start):
        if self._stats is not None:
            self._stats.failed(failure.value, self._clock.seconds() - start)
        return failure

    def _release(self, node, latency) -> None:
        self.balancer.release(node, latency)
        if node.retiring and not node.pending:
            node.close()

    def _requeue(self, failure, retries) -> bool:
        """
        @return: whether to send a failed attempt (number C{retries}) again.
        """
        if isRequeueable(failure):
            allowed = min(self._maxRequeues, max(1, ceil(0.2 * self._budget.balance())))
        elif self._policy is not None and not failure.check(CancelledError) and self._policy(failure, retries):
            allowed = self._maxRequeues
        else:
            return False
        if retries >= allowed:
            return False
        if not self._budget.tryWithdraw():
            self.budgetExhausted += 1
            if self._stats is not None:
                self._stats.budgetExhausted()
            return False
        self.requeues += 1
        if self._stats is not None:
            self._stats.requeued()
        return True
