"""
The client stack shared by every protocol: balancers, failure handling,
retries and timeouts, as composable layers.
"""
