"""
Call the demo service from C{async def} code.

A client's methods return Deferreds, and a coroutine that Twisted drives
can C{await} a Deferred: start it with C{Deferred.fromCoroutine} (or
C{ensureDeferred}).  Declared Thrift exceptions and txscales errors are
raised at the C{await}, so C{try}/C{except} handles them.

On Twisted's asyncio reactor, asyncio code awaits a call's Deferred
turned into an asyncio Future with C{Deferred.asFuture}.  Against a demo
server::

    python -m txscales.demo.asyncclient tcp://127.0.0.1:9090

prints what each call gave and C{RESULT: OK}, or C{RESULT: FAILED} and
exits with status 1.
"""

import asyncio
import sys
from typing import Any, List, Optional, TextIO

from twisted.internet.defer import Deferred

from txscales.demo.gen import TestService
from txscales.demo.gen.ttypes import InvalidQueryException
from txscales.errors import RequestTimeoutError
from txscales.thriftmux import ThriftMux


async def queryAll(client: Any, words: List[str]) -> List[str]:
    """
    @param client: a C{TestService} client.
    @return: the answers of C{client.query} to C{words}, one call at a
        time.
    """
    answers = []
    for word in words:
        answers.append(await client.query(word))
    return answers


async def errorCode(client: Any, code: int) -> Optional[int]:
    """
    @param client: a C{TestService} client.
    @return: the C{errorCode} of the C{InvalidQueryException} that
        C{client.raiseError(code)} raised, or None if it raised none.
    """
    try:
        await client.raiseError(code)
    except InvalidQueryException as e:
        return e.errorCode
    return None


async def timedOut(client: Any, delayMs: int, timeout: float) -> bool:
    """
    @param client: a C{TestService} client.
    @return: whether C{client.delayedQuery} of C{delayMs} milliseconds
        failed with L{RequestTimeoutError} after C{timeout} seconds.
    """
    try:
        await client.withOptions(timeout=timeout).delayedQuery("slow", delayMs)
    except RequestTimeoutError:
        return True
    return False


async def queryFromAsyncio(client: Any, word: str) -> str:
    """
    An asyncio coroutine (run by asyncio, on Twisted's asyncio reactor)
    calling C{client}.

    @param client: a C{TestService} client.
    @return: the answer of C{client.query(word)}.
    """
    return await client.query(word).asFuture(asyncio.get_running_loop())


async def demo(client: Any, out: TextIO, fromAsyncio: bool = False) -> bool:
    """
    Make the demo's calls, printing what they gave and a C{RESULT:} line.

    @param client: a C{TestService} client.
    @param out: where to print.
    @param fromAsyncio: whether to call from an asyncio task too (on
        Twisted's asyncio reactor only).
    @return: whether every call gave what it should.
    """
    answers = await queryAll(client, ["a", "b"])
    out.write("query: %r\n" % (answers,))
    code = await errorCode(client, 7)
    out.write("raiseError(7): InvalidQueryException(errorCode=%r)\n" % (code,))
    late = await timedOut(client, 2000, 0.1)
    out.write("delayedQuery(2000 ms) with a 0.1 s timeout: %s\n" % ("timed out" if late else "answered"))
    ok = answers == ["aa", "bb"] and code == 7 and late
    if fromAsyncio:
        answer = await Deferred.fromFuture(asyncio.ensure_future(queryFromAsyncio(client, "c")))
        out.write("query from an asyncio task: %r\n" % (answer,))
        ok = ok and answer == "cc"
    out.write("RESULT: %s\n" % ("OK" if ok else "FAILED",))
    return ok


def main(reactor: Any, dest: str) -> Deferred:
    """
    Run L{demo} against C{dest}; the function C{task.react} runs.

    @return: a Deferred firing once done, or failing with C{SystemExit(1)}
        when a call gave something else than it should.
    """
    client = ThriftMux.newClient(TestService.Iface, dest, timeout=5, reactor=reactor)

    async def run() -> None:
        try:
            ok = await demo(client, sys.stdout, fromAsyncio=True)
        finally:
            await client.close()
        if not ok:
            raise SystemExit(1)

    return Deferred.fromCoroutine(run())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m txscales.demo.asyncclient DEST (e.g. tcp://127.0.0.1:9090)")

    from twisted.internet import asyncioreactor

    asyncioreactor.install()

    from twisted.internet.task import react

    react(main, sys.argv[1:])
