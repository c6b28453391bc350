"""
The client stack shared by every protocol: balancers, failure handling,
retries and timeouts, as composable layers (see L{ClientStack}).
"""

from txscales.stack._clientstack import ClientStack
from txscales.stack._retrybudget import NoRetryBudget, RetryBudget

# For the protocol packages (thrift, thriftmux, http), not for users: how a
# protocol client puts itself on the stack.  Not in __all__.
from txscales.stack._accrual import ALIVE, DEAD, FailureAccrual
from txscales.stack._builder import ClientBuilder
from txscales.stack._proxy import StackClient
from txscales.stack._wiring import STACK_OPTIONS, buildStack

__all__ = ["ClientStack", "NoRetryBudget", "RetryBudget"]
