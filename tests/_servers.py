"""
Server processes the tests start on a port of 127.0.0.1, kill and start
again: the common part of the Kafka broker's, Redis' and the S3 server's
helpers.
"""

from twisted.internet.defer import inlineCallbacks

from tests._twistd import ProcessExitedEarly, Subprocess, freePort, spawn


class ServerProcess:
    """
    A server process: each run a L{Subprocess} started on the same port,
    ready once it logged L{readyLine}, killed and reaped at the test's
    cleanup.

    A subclass names it (L{name}), says what it logs once it serves
    (L{readyLine}) and when its port is taken (L{addressInUse}), and gives
    its command line (L{argv}); it may extend L{setPort} and
    L{environment}.

    @ivar port: its port, kept across restarts.
    @ivar process: the L{Subprocess} of the current (or last) run.
    """

    name = "server"
    readyLine = ""
    addressInUse = "Address already in use"

    def __init__(self, reactor, addCleanup, port=None, startTimeout=10.0, cwd=None):
        """
        @param reactor: the reactor that runs the process.
        @param addCleanup: a test's C{addCleanup}: every run is killed and
            reaped at cleanup.
        @param port: the port (default: a free one, chosen again if another
            process takes it first).
        @param startTimeout: seconds a start may take before the process is
            killed and the start fails.
        @param cwd: the process's working directory (default: this one).
        """
        self._reactor = reactor
        self._addCleanup = addCleanup
        self._fixedPort = port is not None
        self._startTimeout = startTimeout
        self._cwd = cwd
        self._runs = []
        self.process = None
        self.setPort(port if port is not None else freePort())

    def setPort(self, port):
        """
        Use C{port} from the next start on.
        """
        self.port = port

    def argv(self):
        """
        @return: the command line of the next run.
        """
        raise NotImplementedError()

    def environment(self):
        """
        @return: extra environment variables for the next run, or None.
        """
        return None

    @property
    def log(self):
        """
        What every run wrote so far, for failure messages.
        """
        return "".join(
            "---- %s on port %d, run %d (pid %s) ----\n%s" % (self.name, self.port, i + 1, p.pid or "ended", p.output)
            for i, p in enumerate(self._runs)
        )

    @inlineCallbacks
    def start(self):
        """
        Start the server, or start it again on the same port once it ended.

        @return: a Deferred firing with this object once it logged
            L{readyLine}, or failing with L{ProcessExitedEarly} (its output
            in the message).
        """
        if self.process is not None and self.process.running:
            raise RuntimeError("%s on port %d still runs (pid %s)" % (self.name, self.port, self.process.pid))
        attempts = 1 if self._fixedPort or self._runs else 3
        for attempt in range(attempts):
            try:
                yield self._startOnce()
            except ProcessExitedEarly:
                # Only when another process took the port between freePort()
                # and the server's bind.
                if attempt == attempts - 1 or self.addressInUse not in self.process.output:
                    raise
                self.setPort(freePort())
            else:
                return self

    def _startOnce(self):
        process = Subprocess(self.argv(), name=self.name)
        self._runs.append(process)
        self.process = process
        ready = process.waitForLine(
            self.readyLine, "%s's %r line, within %g s" % (self.name, getattr(self.readyLine, "pattern", self.readyLine),
                                                          self._startTimeout))
        spawn(process, self._reactor, env=self.environment(), cwd=self._cwd, addCleanup=self._addCleanup)
        timer = self._reactor.callLater(self._startTimeout, process.kill)

        def started(result):
            if timer.active():
                timer.cancel()
            return result

        return ready.addBoth(started)

    def kill(self):
        """
        Kill the server (SIGKILL).

        @return: a Deferred firing with its L{ProcessResult} once reaped.
        """
        return self.process.kill()

    def stop(self):
        """
        Stop the server (SIGTERM).

        @return: a Deferred firing with its L{ProcessResult} once reaped.
        """
        return self.process.terminate()
