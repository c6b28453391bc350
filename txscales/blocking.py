"""
Call txscales clients from threads other than the reactor's: scripts, WSGI
applications, thread pools.

crochet runs the Twisted reactor in a background thread; each call is sent
to it and the calling thread waits for the answer, up to a timeout::

    from txscales.blocking import BlockingClient
    from txscales.thriftmux import ThriftMux

    client = BlockingClient(lambda: ThriftMux.newClient(TestService.Iface, "tcp://127.0.0.1:9090"), timeout=5)
    client.query("x")        # "xx", or raises the call's error
    client.close()

Do not use it from the reactor thread itself (code already running under
Twisted should use the Deferred API).

A call that gives an object whose own methods return Deferreds (a Redis
pipeline or subscription) gives a blocking view of it, which works the same
way::

    redis = BlockingClient(lambda: Redis.newClient("tcp://127.0.0.1:6379"), timeout=5)
    redis.pipeline().set("a", 1).incr("a").execute()      # [True, 2]
"""

from typing import Any, Callable

import crochet
from twisted.internet.defer import Deferred

from txscales.errors import RequestTimeoutError

__all__ = ["BlockingClient", "setup"]


def setup() -> None:
    """
    Start the reactor in a background thread (once; later calls do nothing).
    """
    crochet.setup()


class BlockingClient:
    """
    A blocking view of a txscales client: every method waits for its
    Deferred and returns its result or raises its error.

    @param makeClient: called in the reactor thread to build the client.
    @param timeout: seconds each call may take; then it is cancelled (a
        Mux call sends Tdiscarded) and raises L{RequestTimeoutError}.
    """

    def __init__(self, makeClient: Callable[[], Any], timeout: float = 10.0) -> None:
        setup()
        self._timeout = timeout
        self._client = self._wait(crochet.run_in_reactor(makeClient)())

    def _wait(self, result: crochet.EventualResult) -> Any:
        try:
            value = result.wait(self._timeout)
        except crochet.TimeoutError:
            result.cancel()
            raise RequestTimeoutError(self._timeout, written=True)
        if _hasDeferredMethods(value):
            return _BlockingView(value, self._timeout)
        return value

    def __getattr__(self, name: str) -> Any:
        """
        The client's attribute C{name}; a method is wrapped to run in the
        reactor thread and block for its result.
        """
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        call = crochet.run_in_reactor(attribute)

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._wait(call(*args, **kwargs))

        blocking.__name__ = name
        return blocking

    def close(self) -> None:
        """
        Close the client and wait until it is closed.
        """
        self._wait(crochet.run_in_reactor(self._client.close)())


class _BlockingView(BlockingClient):
    """
    A blocking view of an object a client's call gave (a Redis pipeline or
    subscription): its methods run in the reactor thread, each call blocks.
    """

    def __init__(self, target: Any, timeout: float) -> None:
        self._timeout = timeout
        self._client = target

    def __repr__(self) -> str:
        return "<blocking view of %r>" % (self._client,)


def _hasDeferredMethods(value: Any) -> bool:
    """
    @return: whether C{value} is an object given by a client whose methods
        return Deferreds, which a blocking caller needs a view of.
    """
    if isinstance(value, Deferred) or type(value).__module__.split(".")[0] != "txscales":
        return False
    from txscales.redis import Pipeline, Subscription

    return isinstance(value, (Pipeline, Subscription))
