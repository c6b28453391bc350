"""
The client stack shared by every protocol: balancers, failure handling,
retries and timeouts, as composable layers (see L{ClientStack}).
"""

from txscales.stack._retrybudget import NoRetryBudget, RetryBudget
from txscales.stack._client import ClientStack

# For the protocol packages (thrift, thriftmux, http), not for users: how a
# protocol client puts itself on the stack.  Not in __all__.
from txscales.stack._builder import ClientBuilder
from txscales.stack._client import STACK_OPTIONS, StackClient, buildStack

__all__ = ["ClientStack", "NoRetryBudget", "RetryBudget"]
