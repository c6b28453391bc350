"""
Running the C{txscales} command: C{list} prints an IDL's methods, C{call}
makes one call with txscales' public clients and prints its outcome.

Exit statuses: L{OK}, L{DECLARED_EXCEPTION}, L{CALL_FAILED}, L{USAGE}
(and L{INTERNAL_ERROR} for a bug).
"""

import json
import traceback
from typing import IO, Any, Callable, Optional, Tuple, Type

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.python import usage

from txscales._cli._json import applicationExceptionToJson, exceptionToJson, toJson
from txscales._cli._options import CallOptions, Options
from txscales.errors import ApplicationError, BadDestinationError, BadOptionError, TxScalesError, UnknownPluginError

OK = 0
"""The call's result was printed."""
DECLARED_EXCEPTION = 1
"""The call raised an exception, printed as JSON: one its IDL declares, or
the server's C{TApplicationException} (an unknown method, a handler failure
the IDL does not declare)."""
CALL_FAILED = 2
"""The call failed otherwise (no connection, timeout, TLS, ...): txscales'
typed error was printed."""
USAGE = 64
"""The command line was wrong (C{EX_USAGE}); nothing was sent."""
INTERNAL_ERROR = 70
"""A bug (C{EX_SOFTWARE}): the traceback was printed."""

CLIENT_ID = "txscales-call"


def makeClient(options: CallOptions, reactor: Any) -> Any:
    """
    Make the client of a call with txscales' public clients.

    @param options: the parsed options of C{txscales call}.
    @return: a client proxy of the called method's service.
    """
    assert options.method is not None
    service = options.method.service
    timeout = options["timeout"]
    common = dict(options.client, reactor=reactor, timeout=timeout, connectTimeout=timeout, label=CLIENT_ID)
    if options["protocol"] == "thrift":
        from txscales.thrift import Thrift

        return Thrift.newClient(service, options["dest"], **common)
    if options["protocol"] == "http":
        from txscales.http import ThriftHttp

        return ThriftHttp.newClient(service, options["dest"], **common)
    from txscales.thriftmux import ThriftMux

    return ThriftMux.newClient(service, options["dest"], clientId=CLIENT_ID, **common)


def _write(stream: IO[str], text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


def _usageError(err: IO[str], command: Optional[str], error: Exception) -> int:
    name = "txscales %s" % (command,) if command else "txscales"
    _write(err, "%s: error: %s\nRun '%s --help' for its options." % (name, error, name))
    return USAGE


def run(
    reactor: Any,
    argv: list,
    out: IO[str],
    err: IO[str],
    stdin: Optional[IO[str]] = None,
    clientFactory: Callable[[CallOptions, Any], Any] = makeClient,
) -> "Deferred[int]":
    """
    Run the C{txscales} command.

    @param argv: its arguments (without the program's name).
    @param out: where results go.
    @param err: where errors go.
    @param stdin: where C{call} reads a JSON-ARGS of C{-}.
    @param clientFactory: makes a call's client from its options and the
        reactor (L{makeClient}).
    @return: a Deferred firing with the exit status.
    """
    options = Options(stdin)
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        return succeed(_usageError(err, options.subCommand, e))
    except SystemExit as e:
        # --help
        return succeed(e.code if isinstance(e.code, int) else OK)
    if options.subCommand == "list":
        _write(out, "\n".join(options.subOptions.lines))
        return succeed(OK)
    return call(reactor, options.subOptions, out, err, clientFactory)


@inlineCallbacks
def call(
    reactor: Any,
    options: CallOptions,
    out: IO[str],
    err: IO[str],
    clientFactory: Callable[[CallOptions, Any], Any] = makeClient,
) -> Any:
    """
    Make the call C{options} describe and print its outcome.

    @return: a Deferred firing with the exit status.
    """
    method = options.method
    assert method is not None
    try:
        client = clientFactory(options, reactor)
    except (BadDestinationError, BadOptionError, UnknownPluginError) as e:
        return _usageError(err, "call", e)
    except Exception:
        return _internalError(err)
    declared: Tuple[Type[BaseException], ...] = tuple(cls for _, _, cls in method.exceptions)
    try:
        try:
            result = yield getattr(client, method.name)(**options.arguments)
        finally:
            yield _close(client)
    except declared as e:
        _write(out, json.dumps(exceptionToJson(e), indent=2))
        return DECLARED_EXCEPTION
    except ApplicationError as e:
        _write(out, json.dumps(applicationExceptionToJson(e), indent=2))
        return DECLARED_EXCEPTION
    except TxScalesError as e:
        _write(err, "txscales call: %s" % (describeError(e),))
        return CALL_FAILED
    except Exception:
        return _internalError(err)
    # void and one-way methods print null.
    _write(out, json.dumps(None if method.returns is None else toJson(method.returns, result), indent=2))
    return OK


def _internalError(err: IO[str]) -> int:
    _write(err, "txscales call: internal error:\n" + traceback.format_exc())
    return INTERNAL_ERROR


def _close(client: Any) -> "Deferred[None]":
    """
    @return: a Deferred firing once C{client} closed, whether or not that
        went well (the call's outcome is what the command reports).
    """
    return client.close().addErrback(lambda _: None)


def describeError(error: TxScalesError) -> str:
    """
    @return: C{error} as the command prints it: its class, its message and
        whether the request may have reached the server.
    """
    return "%s.%s: %s [mayHaveReachedServer=%s]" % (
        type(error).__module__,
        type(error).__name__,
        error,
        error.mayHaveReachedServer,
    )
