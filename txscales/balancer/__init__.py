"""
Load balancers: P2C least-loaded (the default), P2C peak EWMA, aperture,
heap (least outstanding) and round robin.  Each is an L{IBalancer}, made by
a plugin found by name: L{txscales._plugins.balancerFactory}.
"""
