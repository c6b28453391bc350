"""
The C{twistd txscales} command: C{serve}, C{demo-server}, C{demo-client},
C{kafka-produce} (L{txscales.kafka.tap}) and C{redis-bench}
(L{txscales.redis.tap})::

    twistd -n txscales serve --listen tcp:9090:interface=127.0.0.1 \\
        --iface mypkg.gen.MyService.Iface --handler mypkg.handler:makeHandler
    twistd -n txscales serve --listen tcp:9090:interface=127.0.0.1 \\
        --idl MyService.thrift --service MyService --handler mypkg.handler:makeHandler
    twistd -n txscales demo-server --listen tcp:9090:interface=127.0.0.1
    twistd -n txscales demo-server --listen tcp:9443:interface=127.0.0.1 \\
        --tls-cert server.pem --tls-key server.key [--tls-ca clients-ca.pem]
    twistd -n txscales demo-client --dest tcp://127.0.0.1:9090 --count 1000
    twistd -n txscales kafka-produce --dest tcp://127.0.0.1:9092 --topic t --count 100000
    twistd -n txscales redis-bench --dest tcp://127.0.0.1:6379 --command get --concurrency 100
"""

import atexit
import gc
import os
import sys
from typing import Any, Callable, Dict, Optional

from twisted.application.service import IService, MultiService, Service
from twisted.python import usage
from twisted.python.reflect import namedAny

from txscales._listening import DEFAULT_MAX_CONNECTIONS
from txscales._reactor import defaultReactor
from txscales._timers import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_READ_TIMEOUT
from txscales._tls import CLIENT_TLS_PARAMETERS

DEFAULT_LISTEN = "tcp:9090:interface=127.0.0.1"
LOCAL_INTERFACE = "127.0.0.1"
"""The interface a bare port (C{--metrics 9990}) listens on."""
DESTINATIONS = "tcp://host:port[,host:port...] or zk://zkhost:port[,zkhost:port...]/path[#endpoint]"


def _orOff(kind: Callable[[str], float]) -> Callable[[str], Optional[float]]:
    """
    @return: an option coercer reading C{kind} (int or float), where 0
        (or C{off}) turns the limit off (None).
    """

    def coerce(value: str) -> Optional[float]:
        if str(value).lower() in ("off", "none"):
            return None
        number = kind(value)
        if number < 0:
            raise ValueError("must not be negative")
        return number or None

    coerce.coerceDoc = "0 or off turns it off."  # type: ignore[attr-defined]
    return coerce


class _ServerOptions(usage.Options):
    optFlags = [
        [
            "gc-freeze",
            None,
            "Once started, collect and gc.freeze() what start-up made (modules, handler), so that Python's full"
            " collections no longer scan it and pause every request for tens of milliseconds.",
        ],
    ]
    optParameters = [
        ["listen", "l", DEFAULT_LISTEN, "Twisted server endpoint string to listen on."],
        ["drain-timeout", None, 10.0, "Seconds a graceful stop waits for sessions to drain.", float],
        [
            "handshake-timeout",
            None,
            DEFAULT_HANDSHAKE_TIMEOUT,
            "Seconds a connection has to complete its first message (Mux handshake or first call).",
            _orOff(float),
        ],
        [
            "read-timeout",
            None,
            DEFAULT_READ_TIMEOUT,
            "Seconds a message has to arrive in full once its first bytes came.",
            _orOff(float),
        ],
        [
            "idle-timeout",
            None,
            DEFAULT_IDLE_TIMEOUT,
            "Seconds a connection with no call outstanding may stay silent.",
            _orOff(float),
        ],
        [
            "max-connections",
            None,
            DEFAULT_MAX_CONNECTIONS,
            "Most connections held at once; new ones past it are closed at once (thriftmux and thrift).",
            _orOff(int),
        ],
        ["max-frame-size", None, 16 * 1024 * 1024, "Largest Mux frame (or plain Thrift message) accepted, in bytes.", int],
        [
            "max-pending",
            None,
            1000,
            "Requests of one connection run at once; a Mux client's later ones are nacked, a Thrift client is not"
            " read from until some are answered.",
            int,
        ],
        [
            "metrics",
            None,
            None,
            "Also serve Prometheus metrics at /metrics on this port of 127.0.0.1 (e.g. 9990), or on this endpoint"
            " string (e.g. tcp:9990:interface=127.0.0.1; tcp:9990 alone listens on every interface).",
        ],
        [
            "admin",
            None,
            None,
            "Also serve the admin pages (/health, /metrics, /admin/server, /admin/clients, /admin/tracing) on this"
            " port of 127.0.0.1 (e.g. 9990), or on this endpoint string.",
        ],
        ["label", None, None, "The server's name in metrics (default: the service's module)."],
        ["announce", None, None, "Announce the server in a ZooKeeper serverset: zk://zkhost:port[,...]/path."],
        [
            "protocol",
            "p",
            "thriftmux",
            "Wire protocol: thriftmux (also serves framed Thrift and TTwitter clients), thrift (plain Thrift,"
            " binary or compact) or http (Thrift over HTTP).",
        ],
        ["transport", None, "framed", "With --protocol thrift: the Thrift transport, framed or buffered."],
        ["tls-cert", None, None, "Serve TLS with this PEM certificate (and chain)."],
        ["tls-key", None, None, "The PEM key of --tls-cert (default: in the same file)."],
        ["tls-ca", None, None, "Require client certificates signed by the CAs of this PEM file (mutual TLS)."],
        [
            "opportunistic-tls",
            None,
            None,
            "With --protocol thriftmux and --tls-cert: listen in cleartext and switch sessions to TLS when the client"
            " negotiates it (desired), or refuse those that do not (required), as Finagle's opportunistic TLS.",
        ],
    ]

    tls = None

    def postOptions(self) -> None:
        if self["protocol"] not in PROTOCOLS:
            raise usage.UsageError(
                "unsupported --protocol %r (supported: %s)" % (self["protocol"], ", ".join(sorted(PROTOCOLS)))
            )
        if self["transport"] not in ("framed", "buffered"):
            raise usage.UsageError("unsupported --transport %r (supported: framed, buffered)" % (self["transport"],))
        if self["transport"] != "framed" and self["protocol"] != "thrift":
            raise usage.UsageError("--transport applies to --protocol thrift only")
        self._postTls()
        for name in ("metrics", "admin"):
            if self[name] is not None:
                self[name] = localEndpoint("--" + name, self[name])
        if self["announce"] is not None:
            from txscales.discovery import parseZooKeeperUri
            from txscales.errors import BadDestinationError

            try:
                parseZooKeeperUri(self["announce"])
            except BadDestinationError as e:
                raise usage.UsageError("--announce: %s" % (e,))


    def _postTls(self) -> None:
        if self["tls-cert"] is None:
            if self["tls-key"] or self["tls-ca"] or self["opportunistic-tls"]:
                raise usage.UsageError("--tls-key, --tls-ca and --opportunistic-tls need --tls-cert")
            return
        if self["opportunistic-tls"] is not None:
            if self["opportunistic-tls"] not in ("desired", "required"):
                raise usage.UsageError("--opportunistic-tls must be desired or required")
            if self["protocol"] != "thriftmux":
                raise usage.UsageError("--opportunistic-tls applies to --protocol thriftmux only")
        from txscales._tls import serverOptions

        try:
            self.tls = serverOptions(self["tls-cert"], self["tls-key"], self["tls-ca"])
        except Exception as e:
            raise usage.UsageError("--tls-cert/--tls-key/--tls-ca: %s" % (_describe(e),))


class ServeOptions(_ServerOptions):
    """
    Options of C{twistd txscales serve}.  The service (a generated Iface, or
    one loaded from its IDL by thriftpy2) is loaded and the handler made
    here, so that a wrong name or file, a failing handler callable or a
    handler lacking methods of the service is a usage error.

    With C{--idl}, the file is loaded as the module C{<file name>_thrift}
    (C{sys.modules}), so that a handler that loads it as thriftpy2 users do,
    C{thriftpy2.load("x.thrift", module_name="x_thrift")}, gets the same
    classes: its declared exceptions are those of the service.

    @ivar iface: the generated C{Iface} class named by C{--iface}, or the
        service class C{--idl} and C{--service} name.
    @ivar handler: the handler object C{--handler}'s callable returned.
    """

    synopsis = (
        "--listen ENDPOINT (--iface DOTTED.Iface | --idl FILE.thrift [--service NAME]) --handler DOTTED:callable"
        " [--protocol thriftmux|thrift|http] [--transport framed|buffered]"
    )
    optParameters = [
        ["iface", "i", None, "Dotted name of the generated Thrift Iface class."],
        ["idl", None, None, "Instead of --iface: a Thrift IDL file, loaded at run time (needs txscales[idl])."],
        ["service", None, None, "With --idl: the service to serve (default: the file's only service)."],
        ["handler", None, None, "module:callable (or dotted.callable) returning the handler object."],
    ]

    iface = None
    handler = None

    def postOptions(self) -> None:
        _ServerOptions.postOptions(self)
        if bool(self["iface"]) == bool(self["idl"]) or not self["handler"]:
            raise usage.UsageError("--handler and one of --iface or --idl are required")
        from txscales.thrift import missingMethods

        if self["idl"]:
            iface = _loadIdlService(self["idl"], self["service"])
            name = "%s.%s" % (self["idl"], iface.__name__)
        else:
            if self["service"]:
                raise usage.UsageError("--service goes with --idl")
            iface = _load(namedAny, "--iface", self["iface"])
            name = self["iface"]
            # None lacks every method of a service.
            if not isinstance(iface, type) or not missingMethods(iface, None):
                raise usage.UsageError("--iface %s: not the Iface class of a generated Thrift service" % (name,))
        makeHandler = _load(loadCallable, "--handler", self["handler"])
        try:
            handler = makeHandler()
        except Exception as e:
            raise usage.UsageError("--handler %s: calling it failed: %s" % (self["handler"], _describe(e)))
        missing = missingMethods(iface, handler)
        if missing:
            raise usage.UsageError(
                "--handler %s: the handler lacks methods of %s: %s" % (self["handler"], name, ", ".join(missing))
            )
        self.iface = iface
        self.handler = handler


def _loadIdlService(path: str, name: Optional[str]) -> type:
    """
    @return: the service C{name} of the IDL file at C{path}, loaded as the
        module C{<file name>_thrift}; without a name, the file's only one.
    @raise usage.UsageError: when thriftpy2 is missing, the file does not
        load, or it has no such service.
    """
    from txscales.errors import IdlError, MissingExtraError
    from txscales.thrift import idlService, idlServices, loadIdl

    moduleName = os.path.splitext(os.path.basename(path))[0] + "_thrift"
    try:
        module = loadIdl(path, moduleName=moduleName)
    except (IdlError, MissingExtraError) as e:
        raise usage.UsageError("--idl %s: %s" % (path, e))
    if name is None:
        services = sorted(idlServices(module))
        if len(services) != 1:
            raise usage.UsageError("--idl %s: --service is required (services: %s)" % (path, ", ".join(services) or "none"))
        name = services[0]
    try:
        return idlService(module, name)
    except IdlError as e:
        raise usage.UsageError("--service %s: %s" % (name, e))


def _load(load: Callable[[str], Any], option: str, name: str) -> Any:
    try:
        return load(name)
    except Exception as e:
        raise usage.UsageError("%s %s: cannot load it: %s" % (option, name, _describe(e)))


def _describe(error: BaseException) -> str:
    return "%s: %s" % (type(error).__name__, error)


class DemoServerOptions(_ServerOptions):
    """
    Options of C{twistd txscales demo-server}.
    """

    synopsis = "--listen ENDPOINT"


class DemoClientOptions(usage.Options):
    """
    Options of C{twistd txscales demo-client}.
    """

    synopsis = "--dest URI [--count N] [--concurrency C] [--timeout S]"
    optParameters = [
        ["dest", "d", "tcp://127.0.0.1:9090", "Destination URI: %s (or tls://host:port[,...])." % (DESTINATIONS,)],
        ["count", "n", 1000, "Number of calls.", int],
        ["concurrency", "c", 10, "Calls outstanding at once.", int],
        ["timeout", "t", 1.0, "Per-call timeout in seconds.", float],
    ] + CLIENT_TLS_PARAMETERS

    def postOptions(self) -> None:
        # Checked here: the run would otherwise fail only once started.
        _checkDestination(self["dest"])


def _kafkaProduceOptions() -> usage.Options:
    """
    @return: the options of C{kafka-produce}, whose module (and the Kafka
        producer's) is imported only when that subcommand is used.
    """
    from txscales.kafka.tap import KafkaProduceOptions

    return KafkaProduceOptions(localEndpoint)


def _redisBenchOptions() -> usage.Options:
    """
    @return: the options of C{redis-bench}, whose module (and the Redis
        client's) is imported only when that subcommand is used.
    """
    from txscales.redis.tap import RedisBenchOptions

    return RedisBenchOptions(localEndpoint)


class Options(usage.Options):
    """
    Options of C{twistd txscales}.
    """

    synopsis = "serve|demo-server|demo-client|kafka-produce|redis-bench [options]"
    subCommands = [
        ["serve", None, ServeOptions, "Serve a generated Thrift service."],
        ["demo-server", None, DemoServerOptions, "Serve the demo TestService (query(x) = x + x)."],
        ["demo-client", None, DemoClientOptions, "Call the demo service and print a latency summary."],
        [
            "kafka-produce",
            None,
            _kafkaProduceOptions,
            "Send records to a Kafka topic and print a throughput and latency summary.",
        ],
        [
            "redis-bench",
            None,
            _redisBenchOptions,
            "Run a Redis command many times and print a throughput and latency summary.",
        ],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError(
                "a subcommand is required: serve, demo-server, demo-client, kafka-produce or redis-bench")


def localEndpoint(option: str, value: str) -> str:
    """
    Read a listening option that takes a bare port for one of this machine
    only.

    @param option: the option's name, for errors.
    @param value: a port number, or a Twisted server endpoint string.
    @return: C{tcp:PORT:interface=127.0.0.1} for a port, else C{value}.
    @raise usage.UsageError: for a port out of range.
    """
    if not value.isdigit():
        return value
    if int(value) > 65535:
        raise usage.UsageError("%s: port %s is out of range" % (option, value))
    return "tcp:%d:interface=%s" % (int(value), LOCAL_INTERFACE)


def loadCallable(name: str) -> Any:
    """
    Load C{module:attribute} or C{dotted.name}.
    """
    if ":" in name:
        module, _, attribute = name.partition(":")
        return getattr(namedAny(module), attribute)
    return namedAny(name)


def _checkDestination(dest: str) -> None:
    """
    Check the form of a C{tcp://} or C{zk://} destination URI, without
    resolving it.  Other schemes are left to their discovery plugins.

    @raise usage.UsageError: naming the forms expected.
    """
    from txscales.discovery import parseStatic, parseZooKeeperUri
    from txscales.errors import BadDestinationError

    scheme, sep, rest = dest.partition("://")
    try:
        if not sep:
            raise BadDestinationError("%r has no scheme" % (dest,))
        if scheme in ("tcp", "tls"):
            parseStatic("tcp://" + rest)
        elif scheme == "zk":
            parseZooKeeperUri(dest)
    except BadDestinationError as e:
        raise usage.UsageError("--dest: %s (expected %s)" % (e, DESTINATIONS))


def _thriftMuxServer(options: _ServerOptions, iface: type, handler: object, reactor: Any) -> IService:
    from txscales.thriftmux import ThriftMux

    return ThriftMux.newServer(
        iface,
        handler,
        options["listen"],
        reactor=reactor,
        drainTimeout=options["drain-timeout"],
        maxFrameSize=options["max-frame-size"],
        label=options["label"],
        tls=options.tls,
        opportunisticTls=options["opportunistic-tls"],
        **_limits(options),
    )


def _limits(options: _ServerOptions) -> Dict[str, Any]:
    """
    @return: the keywords that bound what peers can hold, as
        C{ThriftMux.newServer} and C{Thrift.newServer} both take them.
    """
    return dict(
        maxPendingPerConnection=options["max-pending"],
        handshakeTimeout=options["handshake-timeout"],
        readTimeout=options["read-timeout"],
        idleTimeout=options["idle-timeout"],
        maxConnections=options["max-connections"],
    )


def _thriftServer(options: _ServerOptions, iface: type, handler: object, reactor: Any) -> IService:
    from txscales.thrift import Thrift

    return Thrift.newServer(
        iface,
        handler,
        options["listen"],
        transport=options["transport"],
        tls=options.tls,
        reactor=reactor,
        drainTimeout=options["drain-timeout"],
        maxMessageSize=options["max-frame-size"],
        label=options["label"],
        **_limits(options),
    )


def _httpServer(options: _ServerOptions, iface: type, handler: object, reactor: Any) -> IService:
    from txscales.http import ThriftHttpServerService

    from txscales._tls import serverEndpoint

    listen = serverEndpoint(reactor, options["listen"], options.tls)
    return ThriftHttpServerService(
        iface,
        handler,
        listen,
        reactor,
        "%s (thrift over http)" % (iface.__module__,),
        idleTimeout=options["idle-timeout"],
    )


PROTOCOLS: Dict[str, Callable[[_ServerOptions, type, object, Any], IService]] = {
    "thriftmux": _thriftMuxServer,
    "thrift": _thriftServer,
    "http": _httpServer,
}
"""Server builders by --protocol: C{(options, iface, handler, reactor) -> service}."""


def _serverService(options: _ServerOptions, iface: type, handler: object, reactor: Any) -> IService:
    server = PROTOCOLS[options["protocol"]](options, iface, handler, reactor)
    if options["announce"]:
        from txscales.discovery import AnnouncedService

        server = AnnouncedService(server, options["announce"], reactor)
    if not options["metrics"] and not options["admin"] and not options["gc-freeze"]:
        return server
    service = _sites(options, reactor)
    server.setServiceParent(service)
    if options["gc-freeze"]:
        FreezeHeapService(reactor).setServiceParent(service)
    return service


def _sites(options: usage.Options, reactor: Any) -> MultiService:
    """
    @return: a service running the C{--metrics} and C{--admin} sites when
        given, for the command's own service to join; the admin site stops
        only once that service has (so C{/health} says 503 while it
        drains).
    """
    if options["admin"]:
        from txscales._admin import AdminService, WithAdmin

        service: MultiService = WithAdmin(AdminService(options["admin"], reactor))
    else:
        service = MultiService()
    if options["metrics"]:
        from txscales.stats import MetricsService

        MetricsService(options["metrics"], reactor).setServiceParent(service)
    return service


class FreezeHeapService(Service):
    """
    Once the reactor has run the turn in which this service started (the
    servers started before it have begun listening), collect the garbage
    of start-up and move every object left into the collector's permanent
    generation (C{gc.freeze()}).

    A service's objects from start-up (its modules, generated code,
    handler) live as long as the process, yet each of Python's full
    collections scans them again: a pause of tens of milliseconds, during
    which every request waits, and the p99 latency of a busy server
    becomes that pause.  Frozen, they are no longer scanned; the full
    collections that remain only scan what was made since.  Nothing frozen
    is ever freed, which is why this is an option.
    """

    def __init__(self, clock: Any, collector: Any = gc) -> None:
        """
        @param clock: the reactor (an C{IReactorTime}).
        @param collector: the garbage collector (the C{gc} module).
        """
        self._clock = clock
        self._collector = collector
        self._call: Any = None

    def startService(self) -> None:
        Service.startService(self)
        self._call = self._clock.callLater(0, self._freeze)

    def _freeze(self) -> None:
        self._call = None
        self._collector.collect()
        self._collector.freeze()

    def stopService(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None
        Service.stopService(self)


def makeService(options: usage.Options, reactor: Any = None) -> IService:
    """
    Build the service for the chosen subcommand.
    """
    reactor = defaultReactor(reactor)
    sub = options.subOptions
    if options.subCommand == "serve":
        return _serverService(sub, sub.iface, sub.handler, reactor)
    if options.subCommand == "demo-server":
        from txscales.demo.gen import TestService
        from txscales.demo.handler import TestServiceHandler

        return _serverService(sub, TestService.Iface, TestServiceHandler(reactor), reactor)
    if options.subCommand == "kafka-produce":
        from txscales.kafka.tap import KafkaProduceService

        return _loadService(KafkaProduceService, sub, reactor)
    if options.subCommand == "redis-bench":
        from txscales.redis.tap import RedisBenchService

        return _loadService(RedisBenchService, sub, reactor)
    from txscales.demo import DemoClientService

    service = MultiService()
    DemoClientService(sub, reactor, sys.stdout, _exitAtInterpreterExit).setServiceParent(service)
    return service


def _loadService(serviceType: Callable[..., IService], options: usage.Options, reactor: Any) -> IService:
    """
    @param serviceType: the service of a load command (a
        C{txscales._loadrun.LoadService}), called with C{(options, reactor,
        out, setExitStatus)}.
    @return: that service, with a metrics or admin site beside it when
        C{--metrics} or C{--admin} was given.
    """
    service = _sites(options, reactor)
    serviceType(options, reactor, sys.stdout, _exitAtInterpreterExit).setServiceParent(service)
    return service


def _exitAtInterpreterExit(status: int) -> None:
    """
    Make this process exit with C{status} once twistd is done.

    twistd has no exit status of its own to set (it exits 0 unless a
    signal stopped it), and what a service raises inside the reactor is
    logged, not propagated.  So the status is applied when the interpreter
    exits, after twistd has stopped the reactor and its logging and
    removed its pid file.  Exit handlers registered before this one do not
    run.

    @param status: the exit status (0 leaves the exit alone).
    """
    if status:
        atexit.register(_exit, status)


def _exit(status: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
