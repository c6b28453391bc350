"""
A L{RedisClient} over C{StringTransport}s and a C{task.Clock}, for the unit
tests of its connections: every connection it makes is recorded, with its
protocol and transport.
"""

from random import Random

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from txscales.redis._client import RedisClient
from txscales.redis._node import RedisNode, handshakeCommands


class FakeConnection:
    """
    A connection the client made: C{address}, C{protocol}, C{transport}.
    """

    def __init__(self, address, protocol, transport):
        self.address = address
        self.protocol = protocol
        self.transport = transport

    def written(self):
        """
        @return: the bytes written so far, and forget them.
        """
        value = self.transport.value()
        self.transport.clear()
        return value

    def feed(self, data):
        """
        Give the protocol bytes from the server.
        """
        self.protocol.dataReceived(data)


class FakeServers:
    """
    Make clients whose connections are recorded in L{connections}.

    @ivar clock: the clients' C{task.Clock}.
    @ivar connections: every L{FakeConnection}, in order.
    @ivar refuse: addresses whose connection attempts fail with the
        exception given.
    """

    def __init__(self):
        self.clock = Clock()
        self.connections = []
        self.refuse = {}

    def connect(self, address, protocol):
        error = self.refuse.get(address)
        if error is not None:
            return fail(error)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append(FakeConnection(address, protocol, transport))
        return succeed(protocol)

    def client(self, addresses=(("h", 1),), timeout=None, protocol=2, encoding=None, maxPending=10,
               blockingPoolSize=8, backoff=(1.0, 8.0)):
        """
        @return: a L{RedisClient} of C{addresses} (no handshake unless
            C{protocol} is 3).
        """
        handshake = handshakeCommands(protocol, None, None, 0, None)

        def makeNode(address):
            return RedisNode(address, self.clock, Random(3), handshake, timeout, 5.0, maxPending, encoding,
                             backoff, connect=self.connect)

        return RedisClient(makeNode, list(addresses), None, len(addresses) == 1, None, maxPending, 10,
                           blockingPoolSize=blockingPoolSize)
