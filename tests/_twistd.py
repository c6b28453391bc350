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
import socket
import sys
import tempfile

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest

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


def freePort():
    """
    @return: a TCP port of 127.0.0.1 that nothing listens on right now
        (bound, then freed).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
                fireOnce(d, match)

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
            fireOnce(d, self.result)
        waiters, self._lineWaiters = self._lineWaiters, []
        for pattern, d in waiters:
            fireOnce(d, Failure(ProcessExitedEarly(d.what, self.result)))

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


def requirePeer(available, message):
    """
    Go on when a peer the test needs is C{available}; otherwise fail with
    C{message} under CI (where C{scripts/test} sets up every peer) and skip
    elsewhere.
    """
    if available:
        return
    if os.environ.get("CI"):
        raise AssertionError(message)
    raise SkipTest(message)


def fireOnce(d, result):
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
