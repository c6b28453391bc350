"""
Connection pools: the watermark pool for protocols that carry one request
at a time per connection.  (Mux's singleton pool, one shared multiplexed
session per endpoint, is L{txscales.mux._client.MuxEndpoint}.)
"""

from txscales.pool._watermark import WatermarkPool

__all__ = ["WatermarkPool"]
