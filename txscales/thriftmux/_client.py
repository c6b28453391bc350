"""
The ThriftMux client: Thrift calls carried in Mux Tdispatch.
"""

import random as _random

from twisted.internet.defer import fail

from txscales.errors import UnsupportedError
from txscales.mux._client import MuxClient, MuxEndpoint
from txscales.thrift._codec import decodeReply, describeService, encodeCall
from txscales.thrift._proxy import proxyClass
from txscales.thriftmux._contexts import currentRequest, outgoingContexts
from txscales._dest import parseDestination

_UNSET = object()


class ThriftMuxClient:
    """
    Base of the generated ThriftMux client proxies.  Each service method
    returns a Deferred firing with its result, failing with a declared
    Thrift exception as itself, or with a L{txscales.errors.TxScalesError}.
    """

    def __init__(self, methods, mux, reactor, timeout, clientId, random):
        self._methods = methods
        self._mux = mux
        self._reactor = reactor
        self._timeout = timeout
        self._clientId = clientId.encode("utf-8") if isinstance(clientId, str) else clientId
        self._random = random

    def withOptions(self, timeout=_UNSET):
        """
        Return a view of this client that shares its sessions but uses
        other options for its calls.

        @param timeout: the per-call timeout in seconds, or None for none.
        """
        view = type(self).__new__(type(self))
        view.__dict__.update(self.__dict__)
        if timeout is not _UNSET:
            view._timeout = timeout
        return view

    def _call(self, method, args, kwargs):
        if method.oneway:
            return fail(UnsupportedError("ThriftMux does not support one-way methods (%s)" % (method.name,)))
        try:
            body = encodeCall(method, args, kwargs)
        except Exception as e:
            return fail(e)
        timeout = self._timeout
        contexts = outgoingContexts(
            self._reactor.seconds(), timeout, self._clientId, self._random.getrandbits(64), currentRequest.get()
        )
        d = self._mux.dispatch(body, contexts, timeout=timeout)
        return d.addCallback(_decode, method)

    def close(self):
        """
        Close the client's sessions; later calls fail with
        L{txscales.errors.ClientClosedError}.

        @return: a Deferred firing when they are closed.
        """
        return self._mux.close()


def _decode(reply, method):
    return decodeReply(method, reply.body)


def buildClient(iface, dest, reactor=None, timeout=None, clientId=None, random=None, **protocolOptions):
    """
    Build a ThriftMux client; see L{txscales.thriftmux.ThriftMux.newClient}.
    """
    if reactor is None:
        from twisted.internet import reactor
    if random is None:
        random = _random.Random()
    methods = describeService(iface)
    connectTimeout = protocolOptions.pop("connectTimeout", 5.0)
    endpointFactory = protocolOptions.pop("endpointFactory", None)
    endpoints = [
        MuxEndpoint(reactor, host, port, protocolOptions, connectTimeout, endpointFactory)
        for host, port in parseDestination(dest)
    ]
    cls = proxyClass(ThriftMuxClient, iface, methods)
    return cls(methods, MuxClient(reactor, endpoints), reactor, timeout, clientId, random)
