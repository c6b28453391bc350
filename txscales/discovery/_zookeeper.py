"""
ZooKeeper serversets through kazoo: follow a serverset's members, and
announce a server as one.

kazoo runs its own threads.  Everything it reports (results, watches,
session states) is handed to the reactor thread with C{callFromThread};
the rest of this module runs in the reactor thread only.
"""

import socket
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.protocol.states import EventType, KazooState
from twisted.application.service import MultiService, Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

from txscales._ratelimit import RateLimitedLog
from txscales.errors import BadMemberError, DiscoveryError
from txscales.interfaces import IDestination
from txscales.discovery._serverset import MEMBER_PREFIX, Member, formatMember, parseMember, parseZooKeeperUri

_log = Logger()

# Serverset members by znode name; None for one that does not parse.
_Members = Dict[str, Optional[Member]]


class KazooBridge:
    """
    A kazoo client whose results come back as Deferreds in the reactor
    thread.

    @ivar client: the C{KazooClient}.
    """

    def __init__(self, reactor: Any, hosts: str, sessionTimeout: float = 10.0) -> None:
        self._reactor = reactor
        self.client = KazooClient(
            hosts=hosts,
            timeout=sessionTimeout,
            connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 2.0},
            command_retry={"max_tries": 3, "delay": 0.1, "max_delay": 1.0},
        )
        self._listeners: List[Callable[[Any], object]] = []
        self.client.add_listener(self._stateChanged)

    def _stateChanged(self, state: str) -> None:
        # In a kazoo thread: never block here.
        self._reactor.callFromThread(self._deliverState, state)

    def _deliverState(self, state: str) -> None:
        for listener in list(self._listeners):
            listener(state)

    def onState(self, listener: Callable[[str], object]) -> None:
        """
        Call C{listener(state)} in the reactor thread on every session state
        change (C{KazooState.CONNECTED}, C{SUSPENDED}, C{LOST}).
        """
        self._listeners.append(listener)

    def call(self, method: str, *args: Any, **kwargs: Any) -> "Deferred[Any]":
        """
        Run C{client.<method>_async(*args, **kwargs)}.

        @return: a Deferred of its result.
        """
        d: Deferred[Any] = Deferred()
        result = getattr(self.client, method + "_async")(*args, **kwargs)

        def done(ar: Any) -> None:
            if ar.successful():
                self._reactor.callFromThread(d.callback, ar.value)
            else:
                self._reactor.callFromThread(d.errback, ar.exception)

        result.rawlink(done)
        return d

    def watcher(self, function: Callable[..., object], *args: Any) -> Callable[[Any], None]:
        """
        @return: a kazoo watch function that calls C{function(event,
            *args)} in the reactor thread.
        """
        return lambda event: self._reactor.callFromThread(function, event, *args)

    def start(self) -> None:
        """
        Start connecting (and keep retrying until L{stop}).
        """
        self.client.start_async()

    def stop(self) -> "Deferred[None]":
        """
        Close the session.

        @return: a Deferred firing when closed.
        """

        def stopAndClose() -> None:
            self.client.stop()
            self.client.close()

        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), stopAndClose)


@implementer(IDestination)
class ServersetDestination:
    """
    The members of a ZooKeeper serverset, kept current with watches.

    Only C{member_*} children count, and only C{ALIVE} members; a member
    whose data is not a valid ServiceInstance (see
    L{parseMember<txscales.discovery.parseMember>}) is skipped with a
    L{BadMemberError} in the log (rate-limited), and the others still
    count.  While ZooKeeper is unreachable the last known set stays in use;
    when the session comes back (or is replaced after expiry) the set is
    read again.

    @ivar members: child name -> L{Member} (or None for a bad member).
    """

    def __init__(
        self,
        reactor: Any,
        hosts: str,
        path: str,
        endpointName: Optional[str] = None,
        connectTimeout: float = 10.0,
        sessionTimeout: float = 10.0,
    ) -> None:
        self._reactor = reactor
        self._path = path
        self._endpointName = endpointName
        self._zk = KazooBridge(reactor, hosts, sessionTimeout)
        self._log = RateLimitedLog(reactor, _log)
        self._watchers: List[Callable[[List[Tuple[str, int]]], object]] = []
        self._closed = False
        self._listing = False
        self._relist = False
        self.members: Dict[str, Optional[Member]] = {}
        self.addresses: Optional[List[Tuple[str, int]]] = None
        self.ready: Deferred[List[Tuple[str, int]]] = Deferred()
        self._timer = reactor.callLater(connectTimeout, self._timedOut, hosts, connectTimeout)
        self._zk.onState(self._stateChanged)
        self._zk.start()

    def describe(self) -> Dict[str, Any]:
        """
        @return: the destination for the admin page: C{serverset}, its
            C{path}, the C{endpoint} name it uses, and its C{members}
            (each with its node C{name}, C{host}, C{port}, C{status} and
            C{shard}; a member whose data could not be read has only its
            name and C{"status": "BAD"}).
        """
        members: List[Dict[str, Any]] = []
        for name, member in sorted(self.members.items()):
            if member is None:
                members.append({"name": name, "status": "BAD"})
            else:
                where = {"host": member.host, "port": member.port}
                members.append(dict(where, name=name, status=member.status, shard=member.shard))
        return {"kind": "serverset", "path": self._path, "endpoint": self._endpointName, "members": members}

    def _timedOut(self, hosts: str, timeout: float) -> None:
        self._timer = None
        if not self.ready.called:
            self.ready.errback(DiscoveryError("ZooKeeper at %s gave no serverset within %g s" % (hosts, timeout)))

    def _stateChanged(self, state: str) -> None:
        if state == KazooState.CONNECTED and not self._closed:
            # A new or resumed session: read the set again (watches may
            # have been lost with an expired session).
            self._list()

    def _list(self) -> None:
        if self._listing:
            self._relist = True
            return
        self._listing = True
        self._relist = False
        watch = self._zk.watcher(self._childrenEvent)
        d = self._zk.call("get_children", self._path, watch=watch)
        d.addCallbacks(self._gotChildren, self._listFailed)

    def _childrenEvent(self, event: Any) -> None:
        if not self._closed:
            self._list()

    def _listFailed(self, failure: Failure) -> None:
        self._listing = False
        if failure.check(NoNodeError):
            # No serverset yet: empty, and wait for the path to appear.  It
            # may have appeared since get_children failed: then exists finds
            # it (its watch would only see later changes), and it is read.
            self._zk.call("exists", self._path, watch=self._zk.watcher(self._childrenEvent)).addCallbacks(
                self._appeared, lambda f: None)
            self._setMembers({})
        else:
            self._log.warn("listing serverset {path} failed: {error}", path=self._path, error=failure.value)
        if self._relist:
            self._list()

    def _appeared(self, stat: Any) -> None:
        if stat is not None and not self._closed:
            self._list()

    def _gotChildren(self, children: List[str]) -> None:
        self._listing = False
        names = {c for c in children if c.startswith(MEMBER_PREFIX)}
        members = {name: member for name, member in self.members.items() if name in names}
        new = sorted(names - set(members))
        if not new:
            self._setMembers(members)
        pending = [len(new)]
        for name in new:
            self._fetch(name).addBoth(self._fetched, name, members, pending)
        if self._relist:
            self._list()

    def _fetch(self, name: str) -> "Deferred[Any]":
        watch = self._zk.watcher(self._dataEvent, name)
        return self._zk.call("get", self._path + "/" + name, watch=watch)

    def _fetched(self, result: object, name: str, members: _Members, pending: List[int]) -> None:
        try:
            if isinstance(result, tuple):
                members[name] = self._parse(name, result[0])
        finally:
            pending[0] -= 1
        if pending[0] == 0:
            self._setMembers(members)

    def _parse(self, name: str, data: bytes) -> Optional[Member]:
        try:
            return parseMember(data, self._endpointName)
        except BadMemberError as e:
            self._log.warn(
                "skipping serverset member {path}/{name}: {error}", path=self._path, name=name, error=e
            )
            return None

    def _dataEvent(self, event: Any, name: str) -> None:
        if self._closed or name not in self.members:
            return
        if event.type == EventType.DELETED:
            members = dict(self.members)
            del members[name]
            self._setMembers(members)
        elif event.type == EventType.CHANGED:
            self._fetch(name).addCallbacks(self._changed, lambda f: None, (name,))

    def _changed(self, result: Tuple[bytes, Any], name: str) -> None:
        if name in self.members:
            members = dict(self.members)
            members[name] = self._parse(name, result[0])
            self._setMembers(members)

    def _setMembers(self, members: _Members) -> None:
        self.members = members
        addresses = sorted({(m.host, m.port) for m in members.values() if m is not None and m.alive})
        changed = addresses != self.addresses
        self.addresses = addresses
        if not self.ready.called:
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            self._timer = None
            self.ready.callback(addresses)
        if changed:
            for callback in list(self._watchers):
                callback(addresses)

    def watch(self, callback: Callable[[List[Tuple[str, int]]], object]) -> Callable[[], None]:
        self._watchers.append(callback)
        if self.addresses is not None:
            callback(self.addresses)
        return lambda: self._watchers.remove(callback) if callback in self._watchers else None

    def close(self) -> "Deferred[None]":
        self._closed = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self.ready.called:
            self.ready.errback(DiscoveryError("discovery closed"))
            self.ready.addErrback(lambda f: None)
        return self._zk.stop()


class ZooKeeperScheme:
    """
    The C{zk://} discovery scheme.
    """

    scheme = "zk"
    description = "ZooKeeper serversets (Finagle and Aurora JSON members)."

    def resolve(
        self, uri: str, reactor: Any, connectTimeout: float = 10.0, sessionTimeout: float = 10.0, **options: Any
    ) -> ServersetDestination:
        hosts, path, endpointName = parseZooKeeperUri(uri)
        return ServersetDestination(reactor, hosts, path, endpointName, connectTimeout, sessionTimeout)


class Announcer:
    """
    Keep a server announced in a serverset: an ephemeral sequential
    C{member_} znode with the server's JSON (status C{ALIVE}), created again
    if its session expires, removed by L{stop}.

    @ivar node: the znode path, once created.
    """

    def __init__(
        self,
        reactor: Any,
        uri: str,
        host: str,
        port: int,
        shard: Optional[int] = None,
        metadata: Optional[Dict[str, str]] = None,
        sessionTimeout: float = 10.0,
    ) -> None:
        hosts, self._path, _ = parseZooKeeperUri(uri)
        self._data = formatMember(host, port, shard=shard, metadata=metadata)
        self._zk = KazooBridge(reactor, hosts, sessionTimeout)
        self._stopped = False
        self._creating: Optional[Deferred[Any]] = None
        self.node: Optional[str] = None
        self.announced: Deferred[str] = Deferred()

    def start(self) -> "Deferred[str]":
        """
        Connect and announce.

        @return: L{announced}: a Deferred firing with the znode path.
        """
        self._zk.onState(self._stateChanged)
        self._zk.start()
        return self.announced

    def _stateChanged(self, state: str) -> None:
        if state == KazooState.LOST:
            self.node = None
        elif state == KazooState.CONNECTED and self.node is None and not self._stopped:
            self._create()

    def _create(self) -> None:
        if self._creating is not None:
            return
        d = self._zk.call("ensure_path", self._path)
        d.addCallback(
            lambda _: self._zk.call("create", self._path + "/" + MEMBER_PREFIX, self._data, ephemeral=True, sequence=True)
        )
        d.addCallbacks(self._created, self._createFailed)
        self._creating = d

    def _created(self, node: str) -> None:
        self._creating = None
        self.node = node
        _log.info("txscales: announced as {node}", node=node)
        if not self.announced.called:
            self.announced.callback(node)

    def _createFailed(self, failure: Failure) -> None:
        self._creating = None
        if not failure.check(NodeExistsError):
            _log.warn("announcing in {path} failed: {error}", path=self._path, error=failure.value)

    def stop(self) -> "Deferred[None]":
        """
        Remove the member znode, then close the session.

        @return: a Deferred firing when done.
        """
        self._stopped = True
        node, self.node = self.node, None
        d = self._zk.call("delete", node) if node is not None else succeed(None)
        d.addErrback(lambda f: _log.warn("removing {node} failed: {error}", node=node, error=f.value))
        d.addCallback(lambda _: self._zk.stop())
        if node is not None:
            d.addCallback(lambda _: _log.info("txscales: withdrew {node}", node=node))
        return d


def announceHost(address: Union[IPv4Address, IPv6Address]) -> str:
    """
    @return: the host to announce for a listening address: its own, or this
        machine's address when it listens on every interface.
    """
    if address.host in ("0.0.0.0", "::", ""):
        return socket.gethostbyname(socket.gethostname())
    return address.host


class AnnouncedService(MultiService):
    """
    A server service announced in a serverset while it listens: announced
    once listening, and on stop withdrawn first, then stopped (drained), so
    that clients stop choosing it before it drains.

    @param server: a service with a C{listening} Deferred firing with its
        port (e.g. L{txscales.thriftmux.ThriftMuxServerService}).
    @param uri: C{zk://hosts/path}.
    """

    def __init__(self, server: Any, uri: str, reactor: Any) -> None:
        MultiService.__init__(self)
        self._server = server
        self._uri = uri
        self._reactor = reactor
        self.announcer: Optional[Announcer] = None
        server.setServiceParent(self)

    def startService(self) -> None:
        MultiService.startService(self)
        self._server.listening.addCallback(self._announce)

    def _announce(self, port: IListeningPort) -> IListeningPort:
        address = port.getHost()
        if not isinstance(address, (IPv4Address, IPv6Address)):
            raise DiscoveryError("cannot announce %r in a serverset: not a TCP address" % (address,))
        announcer = self.announcer = Announcer(self._reactor, self._uri, announceHost(address), address.port)
        announcer.start()
        return port

    def stopService(self) -> "Deferred[None]":
        Service.stopService(self)
        d = self.announcer.stop() if self.announcer is not None else succeed(None)
        d.addCallback(lambda _: self._server.stopService())
        return d
