"""
Run real subprocesses from trial tests: C{twistd} servers (started exactly as
users start them) and peer programs (Scales' client, Apache Thrift's client,
...), without sleeps or polling.

    server = yield startTwistd(["txscales", "demo-server",
                                "--listen", "tcp:0:interface=127.0.0.1"],
                               addCleanup=self.addCleanup)
    server.port                       # the port it logged
    result = yield server.terminate() # SIGTERM; fires with a ProcessResult
    self.assertIn("Server Shut Down.", result.output, result.describe())

    result = yield runPeer([sys.executable, "peer.py", "--port", "1"],
                           addCleanup=self.addCleanup)
    summary = result.lastJSON()

    proxy = yield listenProxy(server.host, server.port, FrameDecoder,
                              self.addCleanup)      # peers connect to proxy.port
    yield proxy.waitUntil(lambda p: p.fromServer(Rdispatch))

Note that after a clean shutdown caused by a signal, twistd re-raises that
signal on itself (C{twisted.application.app._exitWithSignal}): a server
stopped by SIGTERM ends with C{result.signal == signal.SIGTERM} (shell
status 143) and C{result.exitCode is None}, not with exit status 0.

Every process started with C{addCleanup} is killed (SIGKILL) and reaped by
the test's cleanup if it is still running, so a failing or timed-out test
leaves neither processes nor a dirty reactor behind.  Starting is bounded
by the test's own (trial) timeout.
"""

import json
import os
import re
import shutil
import sys
import tempfile

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.python.failure import Failure

SERVING = re.compile(r"txscales: serving .+ on (?P<host>\S+):(?P<port>\d+)\s*$")

DEMO_SERVER = ("txscales", "demo-server", "--listen", "tcp:0:interface=127.0.0.1")


class ProcessResult:
    """
    How a subprocess ended, and everything it wrote.

    @ivar argv: the command line.
    @ivar exitCode: the exit status, or None when a signal ended it.
    @ivar signal: the number of the signal that ended it, or None.
    @ivar stdout: what it wrote on standard output (text).
    @ivar stderr: what it wrote on standard error (text).
    @ivar output: both, interleaved in the order they were read (text).
    """

    def __init__(self, argv, exitCode, signal, stdout, stderr, output):
        self.argv = argv
        self.exitCode = exitCode
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
        self.output = output

    def describe(self):
        """
        @return: a multi-line description (command, status, output) for
            failure messages.
        """
        return "%s\nexit code %r, signal %r\n---- output ----\n%s\n----------------" % (
            " ".join(self.argv),
            self.exitCode,
            self.signal,
            self.output,
        )

    def lastJSON(self):
        """
        @return: the last non-empty line of standard output, parsed as JSON.
        @raise ValueError: when there is no such line or it is not JSON; the
            message carries the whole output.
        """
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if not lines:
            raise ValueError("no output line to parse as JSON:\n" + self.describe())
        try:
            return json.loads(lines[-1])
        except ValueError as e:
            raise ValueError("last output line is not JSON (%s):\n%s" % (e, self.describe()))

    def __repr__(self):
        return "<ProcessResult %r exitCode=%r signal=%r>" % (self.argv[:3], self.exitCode, self.signal)


class ProcessExitedEarly(Exception):
    """
    The process ended before writing what was awaited.

    @ivar result: its L{ProcessResult}.
    """

    def __init__(self, what, result):
        Exception.__init__(self, "process ended before %s:\n%s" % (what, result.describe()))
        self.result = result


class PeerTimedOut(Exception):
    """
    A peer ran longer than allowed and was killed.

    @ivar result: its L{ProcessResult}.
    """

    def __init__(self, timeout, result):
        Exception.__init__(self, "peer still running after %g s, killed:\n%s" % (timeout, result.describe()))
        self.result = result


class Subprocess(ProcessProtocol):
    """
    A subprocess that collects its output and can wait for lines of it.

    @ivar argv: the command line.
    @ivar name: a short name for messages.
    @ivar result: the L{ProcessResult} once it ended, else None.
    """

    def __init__(self, argv, name=None, removeOnExit=None):
        """
        @param argv: the command line (its first item is the executable).
        @param name: a short name for messages (default: C{argv[0]}).
        @param removeOnExit: a directory to remove once the process ended.
        """
        self.argv = list(argv)
        self.name = name or os.path.basename(self.argv[0])
        self.result = None
        self._removeOnExit = removeOnExit
        self._stdout = []
        self._stderr = []
        self._output = []
        self._partial = {1: "", 2: ""}
        self._lineWaiters = []
        self._endWaiters = []

    @property
    def pid(self):
        """
        The process id (None once it ended).
        """
        return self.transport.pid if self.transport is not None else None

    @property
    def running(self):
        """
        Whether the process has not ended yet.
        """
        return self.result is None

    @property
    def output(self):
        """
        Everything written so far on standard output and error, interleaved.
        """
        return "".join(self._output)

    def connectionMade(self):
        self.transport.closeStdin()

    def childDataReceived(self, childFD, data):
        text = data.decode("utf-8", "replace")
        (self._stdout if childFD == 1 else self._stderr).append(text)
        self._output.append(text)
        lines = (self._partial.get(childFD, "") + text).split("\n")
        self._partial[childFD] = lines.pop()
        for line in lines:
            self.lineReceived(line.rstrip("\r"))

    def lineReceived(self, line):
        """
        Called with each complete output line (either stream); resolves the
        L{waitForLine} waiters whose pattern matches.
        """
        for waiter in list(self._lineWaiters):
            pattern, d = waiter
            match = pattern.search(line)
            if match is not None:
                self._lineWaiters.remove(waiter)
                _fire(d, match)

    def waitForLine(self, pattern, what=None):
        """
        Wait for an output line matching C{pattern}, from now on (lines
        already received are not considered).

        @param pattern: a regular expression (string or compiled).
        @param what: a description for the failure message.
        @return: a Deferred firing with the C{re.Match}, or failing with
            L{ProcessExitedEarly} if the process ends first.  Cancelling it
            stops the wait.
        """
        if isinstance(pattern, str):
            pattern = re.compile(pattern)
        if self.result is not None:
            return _failed(ProcessExitedEarly(what or "a line matching %r" % (pattern.pattern,), self.result))
        entry = []

        def cancel(d):
            if entry[0] in self._lineWaiters:
                self._lineWaiters.remove(entry[0])

        d = Deferred(cancel)
        d.what = what or "a line matching %r" % (pattern.pattern,)
        entry.append((pattern, d))
        self._lineWaiters.append(entry[0])
        return d

    def processEnded(self, reason):
        for fd, rest in self._partial.items():
            if rest:
                self.lineReceived(rest)
        value = reason.value
        if isinstance(value, (ProcessDone, ProcessTerminated)):
            exitCode, signal = value.exitCode, value.signal
        else:
            exitCode, signal = None, None
        self.result = ProcessResult(
            self.argv, exitCode, signal, "".join(self._stdout), "".join(self._stderr), self.output
        )
        if self._removeOnExit is not None:
            shutil.rmtree(self._removeOnExit, ignore_errors=True)
        ends, self._endWaiters = self._endWaiters, []
        for d in ends:
            _fire(d, self.result)
        waiters, self._lineWaiters = self._lineWaiters, []
        for pattern, d in waiters:
            _fire(d, Failure(ProcessExitedEarly(d.what, self.result)))

    def whenEnded(self):
        """
        @return: a Deferred firing with the L{ProcessResult} once the process
            ended (at once if it has).
        """
        if self.result is not None:
            return succeed(self.result)
        d = Deferred()
        self._endWaiters.append(d)
        return d

    def signal(self, name):
        """
        Send signal C{name} (C{"TERM"}, C{"KILL"}, C{"INT"}, ...) if the
        process still runs.

        @return: L{whenEnded}.
        """
        if self.result is None:
            try:
                self.transport.signalProcess(name)
            except (OSError, ProcessExitedAlready):
                pass
        return self.whenEnded()

    def terminate(self):
        """
        Send SIGTERM.

        @return: a Deferred firing with the L{ProcessResult} once it ended.
        """
        return self.signal("TERM")

    def kill(self):
        """
        Send SIGKILL.

        @return: a Deferred firing with the L{ProcessResult} once it ended.
        """
        return self.signal("KILL")

    def stop(self):
        """
        Kill the process if it still runs and wait until it is reaped (for
        C{addCleanup}).  If something still waited for a line of its output
        (typically a test that timed out), its output so far is written to
        standard error first, where trial and pytest show it.

        @return: a Deferred firing with None.
        """
        if self.result is None and self._lineWaiters:
            sys.stderr.write(
                "%s (pid %s) killed while still waiting for %s; its output so far:\n%s\n"
                % (self.name, self.pid, ", ".join(d.what for _, d in self._lineWaiters), self.output)
            )
        return self.kill().addCallback(lambda _: None)


class TwistdProcess(Subprocess):
    """
    A C{twistd} process running a txscales server.

    @ivar host: the host it logged it serves on, once it listens.
    @ivar port: the port (int), once it listens.
    """

    host = None
    port = None

    @property
    def dest(self):
        """
        C{tcp://host:port} of the server, for clients.
        """
        return "tcp://%s:%d" % (self.host, self.port)

    def listening(self):
        """
        Wait for the C{txscales: serving ... on HOST:PORT} line.

        @return: a Deferred firing with this object, L{host} and L{port}
            set, or failing with L{ProcessExitedEarly}.
        """
        d = self.waitForLine(SERVING, "the 'txscales: serving ... on HOST:PORT' line")

        def listened(match):
            self.host = match.group("host")
            self.port = int(match.group("port"))
            return self

        return d.addCallback(listened)


def _fire(d, result):
    """
    Fire C{d} with C{result} (a L{Failure} errbacks) unless something else
    already did: a test's timeout errbacks the Deferred the test returned,
    which may be one of ours.
    """
    if d.called:
        return
    if isinstance(result, Failure):
        d.errback(result)
    else:
        d.callback(result)


def _failed(error):
    d = Deferred()
    d.errback(error)
    return d


def twistdCommand():
    """
    @return: the command that runs this interpreter's C{twistd}: the
        C{twistd} script beside C{sys.executable} run by it, or twistd's
        entry point run with C{-c} if there is no script.
    """
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.isfile(script):
        return [sys.executable, script]
    return [sys.executable, "-c", "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"]


def childEnvironment(extra=None):
    """
    @return: this process's environment with unbuffered Python output and
        C{extra} added.
    """
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def spawn(protocol, reactor=None, env=None, cwd=None, addCleanup=None):
    """
    Start C{protocol.argv} with C{protocol} as its L{Subprocess}.

    @param env: extra environment variables.
    @param cwd: the working directory (default: this one).
    @param addCleanup: a test's C{addCleanup}; when given, the process is
        killed and reaped at cleanup if it still runs.
    @return: C{protocol}.
    """
    if reactor is None:
        from twisted.internet import reactor
    reactor.spawnProcess(
        protocol, protocol.argv[0], protocol.argv, env=childEnvironment(env), path=cwd
    )
    if addCleanup is not None:
        addCleanup(protocol.stop)
    return protocol


def startTwistd(args, reactor=None, addCleanup=None, env=None, twistdOptions=("--pidfile=", "-n")):
    """
    Run C{twistd --pidfile= -n ARGS...} in a new temporary directory (removed
    when it exits) and wait until it logs that it serves.

    @param args: the plugin and its options, e.g. L{DEMO_SERVER}.
    @param addCleanup: a test's C{addCleanup} (strongly advised): the
        process is killed at cleanup if still running, even when waiting for
        it to listen failed or timed out.
    @param env: extra environment variables.
    @param twistdOptions: twistd's own options, before C{args}.
    @return: a Deferred firing with the L{TwistdProcess} once it logged
        C{txscales: serving ... on HOST:PORT}, or failing with
        L{ProcessExitedEarly} (carrying its output) if it exits first.
    """
    cwd = tempfile.mkdtemp(prefix="txscales-twistd-")
    argv = twistdCommand() + list(twistdOptions) + list(args)
    process = TwistdProcess(argv, name="twistd", removeOnExit=cwd)
    listening = process.listening()
    try:
        spawn(process, reactor, env, cwd, addCleanup)
    except BaseException:
        shutil.rmtree(cwd, ignore_errors=True)
        listening.addErrback(lambda _: None)
        listening.cancel()
        raise
    return listening


def startDemoServer(*options, **kwargs):
    """
    Run C{twistd --pidfile= -n txscales demo-server --listen
    tcp:0:interface=127.0.0.1 OPTIONS...}; see L{startTwistd}.
    """
    return startTwistd(DEMO_SERVER + options, **kwargs)


def runPeer(argv, reactor=None, addCleanup=None, env=None, cwd=None, timeout=None):
    """
    Run a peer program to its end.

    @param argv: the command line.
    @param addCleanup: a test's C{addCleanup}: the peer is killed at cleanup
        if still running.
    @param timeout: kill the peer after this many seconds (None: only the
        test's own timeout bounds it).
    @return: a Deferred firing with its L{ProcessResult} (whatever its exit
        status: callers judge it), or failing with L{PeerTimedOut}.
    """
    if reactor is None:
        from twisted.internet import reactor
    process = spawn(Subprocess(argv), reactor, env, cwd, addCleanup)
    d = process.whenEnded()
    if timeout is None:
        return d
    timer = reactor.callLater(timeout, process.kill)

    def ended(result):
        if timer.active():
            timer.cancel()
            return result
        raise PeerTimedOut(timeout, result)

    return d.addCallback(ended)


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
                _fire(d, self)

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
