"""
A TCP proxy for tests that watches the Mux frames between a client and a
server: peers connect to it, it connects on to the server, and it decodes
what flows both ways.

    proxy = yield listenProxy(server.host, server.port, FrameDecoder,
                              self.addCleanup)      # peers connect to proxy.port
    yield proxy.waitUntil(lambda p: p.fromServer(Rdispatch))
"""

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol

from tests._twistd import fireOnce


class _ProxyServerSide(Protocol):
    """
    The connection from an L{ObservingProxy} to the server.
    """

    def __init__(self, link):
        self.link = link

    def dataReceived(self, data):
        self.link.serverData(data)

    def connectionLost(self, reason):
        self.link.serverLost()


class ProxyLink(Protocol):
    """
    One client connection through an L{ObservingProxy}: relays bytes both
    ways and decodes them.

    @ivar fromServer: the messages the server sent on it, decoded.
    @ivar fromClient: the messages the client sent on it, decoded.
    @ivar serverClosedFirst: whether the server side closed before the
        client side.
    @ivar lost: fires with None once both sides are closed.
    """

    def __init__(self, proxy):
        self.proxy = proxy
        self.fromServer = []
        self.fromClient = []
        self.serverClosedFirst = False
        self.lost = Deferred()
        self._server = None
        self._serverOpen = False
        self._clientOpen = False
        self._pending = []
        self._connecting = None
        self._decoders = (proxy.decoder(), proxy.decoder()) if proxy.decoder is not None else None

    def connectionMade(self):
        self._clientOpen = True
        self.proxy.links.append(self)
        self._server = _ProxyServerSide(self)
        endpoint = TCP4ClientEndpoint(self.proxy.reactor, self.proxy.host, self.proxy.serverPort)
        self._connecting = connectProtocol(endpoint, self._server)
        self._connecting.addCallbacks(self._serverConnected, self._serverFailed)

    def _serverConnected(self, _):
        self._connecting = None
        self._serverOpen = True
        if not self._clientOpen:
            self._server.transport.loseConnection()
            return
        for data in self._pending:
            self._server.transport.write(data)
        self._pending = []

    def _serverFailed(self, failure):
        self._connecting = None
        self.serverLost()

    def dataReceived(self, data):
        if self._decoders is not None:
            self.fromClient.extend(self._decoders[0].feed(data))
        if self._serverOpen:
            self._server.transport.write(data)
        else:
            self._pending.append(data)
        self.proxy.changed()

    def serverData(self, data):
        if self._decoders is not None:
            self.fromServer.extend(self._decoders[1].feed(data))
        self.transport.write(data)
        self.proxy.changed()

    def serverLost(self):
        self._serverOpen = False
        if self._clientOpen:
            self.serverClosedFirst = True
            self.transport.loseConnection()
        self._maybeLost()

    def connectionLost(self, reason):
        self._clientOpen = False
        if self._serverOpen:
            self._server.transport.loseConnection()
        elif self._connecting is not None:
            self._connecting.cancel()
        self._maybeLost()

    def _maybeLost(self):
        if not self._clientOpen and not self._serverOpen and self._connecting is None and not self.lost.called:
            self.lost.callback(None)
        self.proxy.changed()

    def abort(self):
        """
        Abort both sides.
        """
        if self._clientOpen:
            self.transport.abortConnection()
        if self._serverOpen:
            self._server.transport.abortConnection()


class ObservingProxy(Factory):
    """
    A TCP relay in front of a server that decodes the bytes flowing both
    ways, so that a test sees what a client in another process (and the
    server) are doing, e.g. to act at a precise point of a peer's run.

    @ivar port: the port it listens on, once listening.
    @ivar links: one L{ProxyLink} per accepted connection.
    @ivar decoder: a callable making a decoder (an object whose C{feed(bytes)}
        returns a list of decoded messages), one per direction per
        connection; None records nothing.
    """

    noisy = False
    port = None

    def __init__(self, host, serverPort, decoder=None, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.host = host
        self.serverPort = serverPort
        self.decoder = decoder
        self.links = []
        self._listening = None
        self._waiters = []

    def buildProtocol(self, addr):
        link = ProxyLink(self)
        link.factory = self
        return link

    def fromServer(self, kind=None):
        """
        @return: the messages servers sent, on all connections, only those
            of class C{kind} if given.
        """
        return [m for link in self.links for m in link.fromServer if kind is None or type(m) is kind]

    def fromClient(self, kind=None):
        """
        @return: the messages clients sent, on all connections, only those
            of class C{kind} if given.
        """
        return [m for link in self.links for m in link.fromClient if kind is None or type(m) is kind]

    def waitUntil(self, predicate):
        """
        @param predicate: called with this proxy after each change.
        @return: a Deferred firing with this proxy once C{predicate} returns
            a true value.
        """
        d = Deferred()
        self._waiters.append((predicate, d))
        self.changed()
        return d

    def changed(self):
        """
        Re-check the L{waitUntil} predicates.
        """
        for entry in list(self._waiters):
            predicate, d = entry
            if predicate(self):
                self._waiters.remove(entry)
                fireOnce(d, self)

    @inlineCallbacks
    def listen(self, interface="127.0.0.1"):
        """
        Listen on a free port of C{interface}.

        @return: a Deferred firing with this proxy, L{port} set.
        """
        endpoint = TCP4ServerEndpoint(self.reactor, 0, interface=interface)
        self._listening = yield endpoint.listen(self)
        self.port = self._listening.getHost().port
        return self

    @inlineCallbacks
    def close(self):
        """
        Stop listening and abort every relayed connection.

        @return: a Deferred firing when all is closed.
        """
        if self._listening is not None:
            yield self._listening.stopListening()
        for link in self.links:
            link.abort()
        yield DeferredList([link.lost for link in self.links])


def listenProxy(host, serverPort, decoder=None, addCleanup=None, reactor=None):
    """
    Start an L{ObservingProxy} to C{host:serverPort} on a free local port.

    @param decoder: see L{ObservingProxy.decoder}.
    @param addCleanup: a test's C{addCleanup}: the proxy is closed at
        cleanup.
    @return: a Deferred firing with the listening proxy.
    """
    proxy = ObservingProxy(host, serverPort, decoder, reactor)
    if addCleanup is not None:
        addCleanup(proxy.close)
    return proxy.listen()
