"""
The bottom of the client stack: the L{EndpointNode} of each server, which
the balancer picks from.  The stack is put together, with the reason for
each layer's place, in L{txscales.stack._clientstack.ClientStack}.
"""

from typing import Any, Dict, Optional

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.python.failure import Failure
from zope.interface import implementer

from txscales.errors import ConnectError
from txscales.interfaces import CLOSED, OPEN, IEndpoint, INode
from txscales.stack._accrual import ALIVE, FailFast, FailureAccrual
from txscales.stack._dispatcher import isRequeueable


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

    def __init__(self, endpoint: IEndpoint, accrual: Optional[FailureAccrual], failFast: FailFast, token: float) -> None:
        self.endpoint = endpoint
        self.accrual = accrual
        self.failFast = failFast
        self.token = token
        self.pending = 0
        self.requests = 0
        self.retiring = False

    @property
    def status(self) -> str:
        if self.failFast.down:
            return CLOSED
        endpointStatus = self.endpoint.status
        accrual = self.accrual
        if accrual is not None and accrual.state != ALIVE and accrual.status != OPEN:
            return accrual.status if endpointStatus != CLOSED else CLOSED
        return endpointStatus

    def describe(self) -> Dict[str, Any]:
        """
        @return: the node for the admin page: its endpoint's C{host} and
            C{port}, its C{status} (as the balancer sees it), its C{pending}
            requests (the load the least-loaded balancers read), how many
            C{requests} were sent to it, whether it is C{down} (fail-fast:
            connecting failed, reconnecting in the background) and why, its
            failure C{accrual} (None when off), and whether it is
            C{retiring} (left the destination, finishing its requests).
        """
        reason = self.failFast.reason if self.failFast.down else None
        return {
            "host": self.endpoint.host,
            "port": self.endpoint.port,
            "status": self.status,
            "pending": self.pending,
            "requests": self.requests,
            "down": self.failFast.down,
            "downReason": str(reason) if reason is not None else None,
            "accrual": self.accrual.describe() if self.accrual is not None else None,
            "retiring": self.retiring,
        }

    def send(self, request: Any) -> Deferred:
        """
        Send C{request} to the endpoint; the caller must report the outcome
        to L{succeeded} or L{failed}.

        @return: the endpoint's Deferred.
        """
        if self.failFast.down:
            return fail(self._downError())
        self.requests += 1
        accrual = self.accrual
        if accrual is not None and accrual.state != ALIVE:
            accrual.admit()
        return self.endpoint(request)

    def succeeded(self) -> None:
        """
        A request sent with L{send} succeeded.
        """
        if self.accrual is not None:
            self.accrual.success()

    def failed(self, failure: Failure, timedOut: bool = False) -> None:
        """
        A request sent with L{send} failed with C{failure}; every outcome
        reaches failure accrual, so that a probe is always settled.

        @param timedOut: whether it failed because its timeout expired.
        """
        accrual = self.accrual
        if failure.check(ConnectError):
            self.failFast.markDown(failure.value)
            if accrual is not None:
                accrual.connectFailed()
        elif accrual is None:
            return
        elif timedOut:
            accrual.timedOut()
        elif failure.check(CancelledError) or isRequeueable(failure):
            accrual.ignored()
        else:
            accrual.failure()

    def _downError(self) -> ConnectError:
        """
        @return: the L{ConnectError} of a request sent while the endpoint is
            down, saying why its last connection attempt failed, of the
            same class as the error that marked it down.
        """
        where = str(self.endpoint)
        reason = self.failFast.reason
        if reason is None:
            cause = "%s is down" % (where,)
        else:
            cause = str(reason).rstrip(".") or type(reason).__name__
            # The endpoints' own connect errors name them already.
            if where not in cause:
                cause = "%s: %s" % (where, cause)
        message = "%s (reconnecting in the background)" % (cause,)
        if type(reason) is ConnectError or not isinstance(reason, ConnectError):
            return ConnectError(message)
        kind = type(reason)
        # A subclass (HandshakeTimeoutError, say) keeps its type, so that
        # callers catching it still do; its own constructor takes other
        # arguments than a message.
        error = kind.__new__(kind)
        ConnectError.__init__(error, message)
        error.__dict__.update(reason.__dict__)
        return error

    def retire(self) -> None:
        """
        The node left the destination: close it once its requests finish.
        """
        self.retiring = True
        if not self.pending:
            self.close()

    def close(self) -> Deferred:
        """
        Stop background work and close the endpoint's session.
        """
        self.failFast.stop()
        if self.accrual is not None:
            self.accrual.stop()
        return self.endpoint.close()

    def __repr__(self) -> str:
        return "<EndpointNode %s status=%s pending=%d>" % (self.endpoint, self.status, self.pending)
