"""
The options of the C{txscales} command.  Everything a call needs is
checked here, before any connection: the IDL, the method, its arguments
and the TLS files (the destination's form is checked when the client is
made, which also connects to nothing).
"""

import getopt
import json
import sys
from typing import IO, Any, Dict, List, Optional

from twisted.python import usage

from txscales._cli._idl import Method, findMethod, findService, loadIdl, methods, services
from txscales._cli._json import argumentsFromJson
from txscales._tls import CLIENT_TLS_PARAMETERS, TLS_SCHEME, clientCreator, clientTlsKeywords

PROTOCOLS = ("thriftmux", "thrift", "http")
DEFAULT_TIMEOUT = 10.0


def _describe(error: BaseException) -> str:
    return "%s: %s" % (type(error).__name__, error)


def _printVersion(options: usage.Options) -> None:
    """
    Display txscales' version and exit.
    """
    from txscales._version import __version__

    print("txscales %s" % (__version__,))
    sys.exit(0)


class _AnyOrder(usage.Options):
    """
    Options that may also follow the positional arguments (GNU style).
    """

    opt_version = _printVersion

    def parseOptions(self, options: Optional[List[str]] = None) -> None:
        super().parseOptions(optionsFirst(self, sys.argv[1:] if options is None else options))


class CallOptions(_AnyOrder):
    """
    Options of C{txscales call}.

    @ivar method: the L{Method} called, once parsed.
    @ivar arguments: its arguments by name, as thriftpy2 values.
    @ivar client: the client's keyword arguments beyond the destination
        and service (transport, protocol, TLS, ...).
    """

    synopsis = "DEST SERVICE.METHOD [JSON-ARGS] --idl FILE [options]"
    longdesc = (
        "Call METHOD of SERVICE at DEST (tcp://host:port[,...], tls://host:port[,...] or zk://zkhost:port/path) and"
        " print its result as JSON.  JSON-ARGS is a JSON object of the arguments by name, or an array of them in"
        " order; - reads it from standard input.  Exit status: 0 result printed, 1 a declared exception (printed"
        " as JSON), 2 the call failed (the error printed), 64 a usage error (nothing was sent)."
    )
    optParameters = [
        ["idl", None, None, "The service's Thrift IDL file (loaded at run time by thriftpy2)."],
        ["protocol", "p", "thriftmux", "Wire protocol: thriftmux, thrift (plain Thrift) or http (Thrift over HTTP)."],
        ["transport", None, "framed", "With --protocol thrift: framed or buffered."],
        ["path", None, "/", "With --protocol http: the URL path the service is served at."],
        ["timeout", "t", DEFAULT_TIMEOUT, "Seconds the call may take, connecting included.", float],
        [
            "opportunistic-tls",
            None,
            None,
            "With --protocol thriftmux: connect in cleartext and switch to TLS when the server agrees (desired),"
            " or fail when it does not (required).",
        ],
    ] + CLIENT_TLS_PARAMETERS
    optFlags = [
        ["binary", None, "The binary Thrift protocol (the default)."],
        ["compact", None, "The compact Thrift protocol (--protocol thrift)."],
        ["tls", None, "Speak TLS to the servers (as a tls:// destination does)."],
    ]

    method: Optional[Method] = None
    arguments: Dict[str, Any] = {}
    client: Dict[str, Any] = {}

    def __init__(self, stdin: Optional[IO[str]] = None) -> None:
        """
        @param stdin: where a JSON-ARGS of C{-} is read from (default:
            standard input).
        """
        usage.Options.__init__(self)
        self._stdin = stdin

    def parseArgs(self, dest: str, method: str, arguments: Optional[str] = None) -> None:  # type: ignore[override]
        self["dest"] = dest
        self["method"] = method
        self["arguments"] = arguments

    def postOptions(self) -> None:
        if not self["idl"]:
            raise usage.UsageError("--idl FILE is required")
        if self["protocol"] not in PROTOCOLS:
            raise usage.UsageError(
                "unsupported --protocol %r (supported: %s)" % (self["protocol"], ", ".join(PROTOCOLS))
            )
        if not 0 < self["timeout"] < float("inf"):
            raise usage.UsageError("--timeout must be a number of seconds over 0")
        method = findMethod(loadIdl(self["idl"]), self["method"])
        if method.oneway and self["protocol"] == "thriftmux":
            raise usage.UsageError(
                "%s is one-way, which ThriftMux does not carry: use --protocol thrift" % (method.qualifiedName,)
            )
        self.arguments = argumentsFromJson(method.argsClass, self._readArguments(), method.qualifiedName)
        self.method = method
        self.client = self._clientOptions()

    def _readArguments(self) -> Any:
        text = self["arguments"]
        if text is None:
            return None
        if text == "-":
            text = (self._stdin or sys.stdin).read()
        try:
            return json.loads(text)
        except ValueError as e:
            raise usage.UsageError("JSON-ARGS is not JSON (%s): %s" % (e, text[:80]))

    def _clientOptions(self) -> Dict[str, Any]:
        protocol = self["protocol"]
        if self["compact"] and self["binary"]:
            raise usage.UsageError("--binary and --compact exclude each other")
        if self["compact"] and protocol != "thrift":
            raise usage.UsageError("--compact applies to --protocol thrift only")
        if self["transport"] not in ("framed", "buffered"):
            raise usage.UsageError("unsupported --transport %r (supported: framed, buffered)" % (self["transport"],))
        if self["transport"] != "framed" and protocol != "thrift":
            raise usage.UsageError("--transport applies to --protocol thrift only")
        if self["path"] != "/" and protocol != "http":
            raise usage.UsageError("--path applies to --protocol http only")
        if self["opportunistic-tls"] is not None:
            if protocol != "thriftmux":
                raise usage.UsageError("--opportunistic-tls applies to --protocol thriftmux only")
            if self["opportunistic-tls"] not in ("desired", "required"):
                raise usage.UsageError("--opportunistic-tls must be desired or required")
        options: Dict[str, Any] = {}
        if protocol == "thrift":
            options = dict(transport=self["transport"], protocol="compact" if self["compact"] else "binary")
        elif protocol == "http":
            options = dict(path=self["path"])
        tls = self["tls"] or self["dest"].startswith(TLS_SCHEME) or self["opportunistic-tls"] is not None
        options.update(self._tlsOptions(tls, protocol))
        return options

    def _tlsOptions(self, tls: bool, protocol: str) -> Dict[str, Any]:
        keywords = clientTlsKeywords(self)
        if not tls:
            if keywords:
                raise usage.UsageError(
                    "--tls-ca, --tls-cert, --tls-key and --tls-hostname need --tls or a tls:// destination"
                )
            return {}
        if protocol == "http":
            if set(keywords) - {"tlsCa"}:
                raise usage.UsageError("--protocol http over TLS takes --tls-ca only")
            if self["dest"].startswith(TLS_SCHEME):
                # The HTTP client takes tls=True, not tls:// destinations.
                self["dest"] = "tcp://" + self["dest"][len(TLS_SCHEME):]
            options: Dict[str, Any] = {"tls": True}
            if self["tls-ca"]:
                from twisted.internet.ssl import Certificate

                try:
                    with open(self["tls-ca"], "rb") as f:
                        options["trustRoot"] = Certificate.loadPEM(f.read())
                except Exception as e:
                    raise usage.UsageError("--tls-ca: %s" % (_describe(e),))
            return options
        try:
            # Reads the files now, so that a bad one is a usage error.
            clientCreator(
                "localhost", keywords.get("tlsCa"), keywords.get("tlsClientCert"), keywords.get("tlsClientKey")
            )
        except Exception as e:
            raise usage.UsageError("--tls-ca/--tls-cert/--tls-key: %s" % (_describe(e),))
        if self["opportunistic-tls"] is not None:
            keywords["opportunisticTls"] = self["opportunistic-tls"]
        return dict(keywords, tls=True)


def optionsFirst(options: usage.Options, argv: List[str]) -> List[str]:
    """
    @param options: the options C{argv} is for.
    @param argv: command-line arguments, options and positional ones in any
        order.
    @return: C{argv} with the options first, then C{--} and the positional
        arguments, as C{usage.Options} (getopt) reads them.
    @raise usage.UsageError: for an unknown option or a missing value.
    """
    try:
        found, positional = getopt.gnu_getopt(argv, options.shortOpt, options.longOpt)
    except getopt.error as e:
        raise usage.UsageError(str(e))
    takesValue = {"--" + name[:-1] for name in options.longOpt if name.endswith("=")}
    # shortOpt is getopt's: "p:t:" (a colon after a letter taking a value).
    takesValue.update("-" + options.shortOpt[i - 1] for i, c in enumerate(options.shortOpt) if c == ":")
    first: List[str] = []
    for option, value in found:
        first.extend([option, value] if option in takesValue else [option])
    return first + ["--"] + positional


class ListOptions(_AnyOrder):
    """
    Options of C{txscales list}.
    """

    synopsis = "--idl FILE [SERVICE]"
    longdesc = "Show the methods of the services of a Thrift IDL file (or of SERVICE), one line each."
    optParameters = [["idl", None, None, "The Thrift IDL file (loaded at run time by thriftpy2)."]]

    def parseArgs(self, service: Optional[str] = None) -> None:
        self["service"] = service

    def postOptions(self) -> None:
        if not self["idl"]:
            raise usage.UsageError("--idl FILE is required")
        module = loadIdl(self["idl"])
        if self["service"] is None:
            found = list(services(module).values())
        else:
            found = [findService(module, self["service"])]
        self.lines = [method.describe() for service in found for method in methods(service)]


class Options(usage.Options):
    """
    Options of the C{txscales} command.
    """

    synopsis = "txscales"
    opt_version = _printVersion
    longdesc = (
        "Call a method of any Thrift service, or list the methods of an IDL: 'txscales call --help',"
        " 'txscales list --help'."
    )

    def __init__(self, stdin: Optional[IO[str]] = None) -> None:
        """
        @param stdin: where C{call} reads a JSON-ARGS of C{-}.
        """
        usage.Options.__init__(self)
        self.subCommands = [
            ["call", None, lambda: CallOptions(stdin), "Call a method of a Thrift service, print its result as JSON."],
            ["list", None, ListOptions, "Show the methods of the services of a Thrift IDL file."],
        ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("a subcommand is required: call or list")
