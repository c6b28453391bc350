"""
The layers of the client stack.  Each is a service (a callable from a
request to a Deferred) wrapping the service below it; the stack is put
together, with the reason for each layer's place, in
L{txscales.stack._client.buildStack}.
"""

from math import ceil

from twisted.internet.defer import CancelledError, fail
from twisted.python.failure import Failure
from zope.interface import implementer

from txscales.errors import ConnectError, RequestTimeoutError, TxScalesError
from txscales.interfaces import CLOSED, OPEN, INode


class TimeoutFilter:
    """
    Bound each call by its C{timeout} (seconds, on the request): on expiry
    the call is cancelled (Mux sends Tdiscarded) and fails with
    L{RequestTimeoutError}.
    """

    def __init__(self, service, clock):
        self._service = service
        self._clock = clock

    def __call__(self, request):
        timeout = request.timeout
        d = self._service(request)
        if timeout is None or d.called:
            return d
        timer = self._clock.callLater(timeout, d.cancel)
        return d.addBoth(_timedOut, timer, timeout)


def _timedOut(result, timer, timeout):
    if timer.active():
        timer.cancel()
        return result
    if isinstance(result, Failure) and result.check(CancelledError):
        raise RequestTimeoutError(timeout, written=bool(getattr(result.value, "written", False)))
    return result


def isRequeueable(failure):
    """
    @return: whether C{failure} is safe to send again elsewhere: a txscales
        error that certainly did not reach the server and is retryable.
    """
    value = failure.value
    return isinstance(value, TxScalesError) and value.retryable and not value.mayHaveReachedServer


class RequeueFilter:
    """
    Send again, to another pick of the balancer, calls that certainly never
    reached a server (connect failures, nacks, draining sessions), within
    the retry budget: at most C{ceil(0.2 * balance)} requeues per call and
    C{maxRequeues} in all.  A successful call deposits in the budget.

    @param policy: an optional user retry policy, C{policy(failure,
        attempt)} returning whether to retry a failure that may have reached
        the server; it draws on the same budget.
    @ivar requeues: calls sent again.
    @ivar budgetExhausted: requeues refused for want of budget.
    """

    def __init__(self, service, budget, maxRequeues=25, policy=None, stats=None):
        self._service = service
        self._budget = budget
        self._maxRequeues = maxRequeues
        self._policy = policy
        self._stats = stats
        self.requeues = 0
        self.budgetExhausted = 0

    def __call__(self, request):
        return self._attempt(request, 0)

    def _attempt(self, request, retries):
        d = self._service(request if retries == 0 else request.retried(retries))
        return d.addCallbacks(self._succeeded, self._failed, errbackArgs=(request, retries))

    def _succeeded(self, result):
        self._budget.deposit()
        return result

    def _failed(self, failure, request, retries):
        if isRequeueable(failure):
            allowed = min(self._maxRequeues, max(1, ceil(0.2 * self._budget.balance())))
        elif self._policy is not None and not failure.check(CancelledError) and self._policy(failure, retries):
            allowed = self._maxRequeues
        else:
            return failure
        if retries >= allowed:
            return failure
        if not self._budget.tryWithdraw():
            self.budgetExhausted += 1
            if self._stats is not None:
                self._stats.budgetExhausted()
            return failure
        self.requeues += 1
        if self._stats is not None:
            self._stats.requeued()
        return self._attempt(request, retries + 1)


class BalancerService:
    """
    Send each request to the node the balancer picks, and report its
    completion (and latency) to the balancer.
    """

    def __init__(self, balancer, clock):
        self.balancer = balancer
        self._clock = clock

    def __call__(self, request):
        balancer = self.balancer
        node = balancer.pick()
        start = self._clock.seconds()
        send = getattr(node, "send", None)
        if send is None:
            return node(request).addBoth(self._done, node, start)
        # An EndpointNode's own bookkeeping runs in the same callback as
        # the balancer's: one callback less on every call.
        return send(request).addBoth(self._settled, node, start)

    def _settled(self, result, node, start):
        result = node.settle(result)
        return self._done(result, node, start)

    def _done(self, result, node, start):
        self.balancer.release(node, self._clock.seconds() - start)
        if node.retiring and not node.pending:
            node.close()
        return result


@implementer(INode)
class EndpointNode:
    """
    One endpoint in the stack: fail-fast on connect failures, failure
    accrual on failed requests, and the endpoint's session.

    @ivar endpoint: the session manager (e.g. a
        L{txscales.mux._client.MuxEndpoint}); called with a request.
    @ivar accrual: its L{FailureAccrual}, or None.
    @ivar failFast: its L{FailFast}.
    @ivar requests: how many requests were sent to it.
    """

    def __init__(self, endpoint, accrual, failFast, token):
        self.endpoint = endpoint
        self.accrual = accrual
        self.failFast = failFast
        self.token = token
        self.pending = 0
        self.requests = 0
        self.retiring = False

    @property
    def status(self):
        if self.failFast.down:
            return CLOSED
        endpointStatus = self.endpoint.status
        if self.accrual is not None and self.accrual.status != OPEN:
            return self.accrual.status if endpointStatus != CLOSED else CLOSED
        return endpointStatus

    def __call__(self, request):
        return self.send(request).addBoth(self.settle)

    def send(self, request):
        """
        Send C{request} to the endpoint; the caller must pass the outcome to
        L{settle} (L{__call__} does both).

        @return: the endpoint's Deferred.
        """
        if self.failFast.down:
            return fail(ConnectError("%s is down (reconnecting in the background)" % (self.endpoint,)))
        self.requests += 1
        if self.accrual is not None:
            self.accrual.admit()
        return self.endpoint(request)

    def settle(self, result):
        """
        Account for the outcome of a request sent with L{send}.

        @return: C{result}.
        """
        if isinstance(result, Failure):
            return self._failed(result)
        return self._succeeded(result)

    def _succeeded(self, result):
        if self.accrual is not None:
            self.accrual.success()
        return result

    def _failed(self, failure):
        if failure.check(ConnectError):
            self.failFast.markDown()
        elif self.accrual is not None and not failure.check(CancelledError) and not isRequeueable(failure):
            self.accrual.failure()
        return failure

    def retire(self):
        """
        The node left the destination: close it once its requests finish.
        """
        self.retiring = True
        if not self.pending:
            self.close()

    def close(self):
        """
        Stop background work and close the endpoint's session.
        """
        self.failFast.stop()
        if self.accrual is not None:
            self.accrual.stop()
        return self.endpoint.close()

    def __repr__(self):
        return "<EndpointNode %s status=%s pending=%d>" % (self.endpoint, self.status, self.pending)
