"""
Helpers for testing code that uses txscales, with trial.

L{MemoryNetwork} connects txscales clients to txscales servers in memory:
bytes are delivered synchronously (a call's Deferred has fired by the time
the call returns, unless a handler waits), time is a
L{twisted.internet.task.Clock}, and no socket is opened.  The whole Mux (or
plain Thrift) protocol runs, as over TCP::

    from twisted.trial.unittest import SynchronousTestCase
    from txscales.testing import MemoryNetwork

    class MyTests(SynchronousTestCase):
        def test_query(self):
            network = MemoryNetwork()
            network.serveThriftMux(TestService.Iface, MyHandler(), port=9090)
            client = network.thriftMuxClient(TestService.Iface, "tcp://127.0.0.1:9090")
            self.assertEqual(self.successResultOf(client.query("x")), "xx")
            self.successResultOf(client.close())
"""

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from zope.interface import implementer

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IAddress, IProtocol, IProtocolFactory, IStreamClientEndpoint, ITransport
from twisted.internet.task import Clock
from twisted.python.failure import Failure

__all__ = ["MemoryNetwork"]


class MemoryNetwork:
    """
    Servers and clients connected in memory.

    @ivar clock: the L{Clock} both sides use as their reactor.
    @ivar connections: how many connections were made.
    """

    def __init__(self, clock: Optional[Clock] = None) -> None:
        """
        @param clock: the clock to use; a new L{Clock} when C{None}.
        """
        self.clock = clock if clock is not None else Clock()
        self._servers: Dict[Tuple[str, int], IProtocolFactory] = {}
        self._queue: List[Callable[[], object]] = []
        self._pumping = False
        self.connections = 0

    def listen(self, factory: IProtocolFactory, port: int, host: str = "127.0.0.1") -> None:
        """
        Make C{factory} reachable at C{host:port}.

        @param factory: builds the server side of each connection.
        @param port: the port to listen on.
        @param host: the address to listen on.
        """
        self._servers[(host, port)] = factory

    def stopListening(self, port: int, host: str = "127.0.0.1") -> None:
        """
        Refuse new connections to C{host:port}.
        """
        del self._servers[(host, port)]

    def serveThriftMux(self, iface: type, handler: object, port: int = 9090, host: str = "127.0.0.1") -> Any:
        """
        Serve C{handler} for the generated service C{iface} at C{host:port}.

        @param iface: the C{Iface} class of a service's generated code, or
            a service class L{txscales.thrift.loadIdl} loaded.
        @param handler: an object with one method per service method.
        @return: the server factory (C{drainAll}, C{protocols}).
        """
        from txscales.thriftmux import serverFactory

        factory = serverFactory(iface, handler, self.clock)
        self.listen(factory, port, host)
        return factory

    def thriftMuxClient(self, iface: type, dest: str, **options: Any) -> Any:
        """
        Make a ThriftMux client whose connections go to this network.

        @param iface: the C{Iface} class of a service's generated code, or
            a service class L{txscales.thrift.loadIdl} loaded.
        @param dest: the destination, e.g. C{"tcp://127.0.0.1:9090"}.
        @param options: as for L{txscales.thriftmux.ThriftMux.newClient};
            pings are off unless C{pingInterval} is given.
        @return: the client.
        """
        from txscales.thriftmux import ThriftMux

        options.setdefault("pingInterval", None)
        return ThriftMux.newClient(iface, dest, reactor=self.clock, endpointFactory=self.endpoint, **options)

    def serveThrift(
        self, iface: type, handler: object, port: int = 9090, host: str = "127.0.0.1", transport: str = "framed"
    ) -> Any:
        """
        Serve C{handler} for the generated service C{iface} at C{host:port}
        over plain Thrift (C{transport} C{"framed"} or C{"buffered"}).

        @param iface: the C{Iface} class of a service's generated code, or
            a service class L{txscales.thrift.loadIdl} loaded.
        @param handler: an object with one method per service method.
        @return: the server factory (C{drainAll}, C{protocols}).
        """
        from txscales.thrift import serverFactory

        factory = serverFactory(iface, handler, self.clock, transport)
        self.listen(factory, port, host)
        return factory

    def thriftClient(self, iface: type, dest: str, **options: Any) -> Any:
        """
        Make a plain Thrift client whose connections go to this network.

        @param iface: the C{Iface} class of a service's generated code, or
            a service class L{txscales.thrift.loadIdl} loaded.
        @param dest: the destination, e.g. C{"tcp://127.0.0.1:9090"}.
        @param options: as for L{txscales.thrift.Thrift.newClient}.
        @return: the client.
        """
        from txscales.thrift import Thrift

        return Thrift.newClient(iface, dest, reactor=self.clock, endpointFactory=self.endpoint, **options)

    def endpoint(self, reactor: Any, host: str, port: int, timeout: Optional[float] = None) -> IStreamClientEndpoint:
        """
        @param reactor: ignored: connections are made on this network.
        @param host: the server's address.
        @param port: the server's port.
        @param timeout: ignored: a connection is made at once or refused.
        @return: an L{IStreamClientEndpoint} connecting to C{host:port} on
            this network (the signature of a client's C{endpointFactory}).
        """
        return _MemoryEndpoint(self, host, port)

    def _connect(self, clientFactory: IProtocolFactory, host: str, port: int) -> "Deferred[IProtocol]":
        serverFactory = self._servers.get((host, port))
        if serverFactory is None:
            return fail(ConnectionRefusedError("nothing listens on %s:%d" % (host, port)))
        self.connections += 1
        clientAddress = IPv4Address("TCP", "127.0.0.1", 40000 + self.connections)
        serverAddress = IPv4Address("TCP", host, port)
        server = serverFactory.buildProtocol(clientAddress)
        client = clientFactory.buildProtocol(serverAddress)
        if server is None or client is None:
            return fail(ConnectionRefusedError("the factory refused the connection to %s:%d" % (host, port)))
        serverTransport = _MemoryTransport(self, server, serverAddress, clientAddress)
        clientTransport = _MemoryTransport(self, client, clientAddress, serverAddress)
        serverTransport.peer, clientTransport.peer = clientTransport, serverTransport
        server.makeConnection(serverTransport)
        client.makeConnection(clientTransport)
        self._pump()
        return succeed(client)

    def _deliver(self, action: Callable[[], object]) -> None:
        self._queue.append(action)
        self._pump()

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._queue:
                self._queue.pop(0)()
        finally:
            self._pumping = False


@implementer(IStreamClientEndpoint)
class _MemoryEndpoint:
    def __init__(self, network: MemoryNetwork, host: str, port: int) -> None:
        self._network = network
        self._host = host
        self._port = port

    def connect(self, factory: IProtocolFactory) -> "Deferred[IProtocol]":
        return self._network._connect(factory, self._host, self._port)


@implementer(ITransport)
class _MemoryTransport:
    """
    One side of an in-memory connection.
    """

    disconnecting = False

    peer: "_MemoryTransport"

    def __init__(self, network: MemoryNetwork, protocol: IProtocol, host: IAddress, peerAddress: IAddress) -> None:
        self._network = network
        self._protocol = protocol
        self._host = host
        self._peerAddress = peerAddress
        self.connected = True

    def write(self, data: bytes) -> None:
        if self.connected and not self.disconnecting and data:
            peer = self.peer
            self._network._deliver(lambda: peer._received(data))

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def _received(self, data: bytes) -> None:
        if self.connected:
            self._protocol.dataReceived(data)

    def loseConnection(self) -> None:
        if self.connected and not self.disconnecting:
            self.disconnecting = True
            self._network._deliver(self._close)

    abortConnection = loseConnection

    def _close(self) -> None:
        for side in (self, self.peer):
            if side.connected:
                side.connected = False
                side._protocol.connectionLost(Failure(ConnectionDone("in-memory connection closed")))

    def getPeer(self) -> IAddress:
        return self._peerAddress

    def getHost(self) -> IAddress:
        return self._host

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def registerProducer(self, producer: object, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass
