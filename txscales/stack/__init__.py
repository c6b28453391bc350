"""
The client stack shared by every protocol: balancers, failure handling,
retries and timeouts, as composable layers (see L{ClientStack}).
"""

from txscales.stack._budget import NoRetryBudget, RetryBudget
from txscales.stack._client import ClientStack

__all__ = ["ClientStack", "NoRetryBudget", "RetryBudget"]
