"""
Timing one client's run in a process of its own, as the Kafka and Redis
benchmarks (C{benchmarks/kafka/producers.py}, C{benchmarks/redis/clients.py})
do.  Standard library only: those scripts also run in venvs holding only
the third-party clients they compare.
"""

import time


def timed(run, warmup, work):
    """
    Run C{warmup}, then time running C{work}.

    @param run: runs what it is given (a count of commands, a list of
        records) and returns how many of them succeeded.
    @param warmup: what the untimed warm-up runs: a count, or a list (its
        length is what must succeed).
    @return: C{(succeeded, seconds, cpuSeconds)} of the timed part; the
        CPU is the whole process's, every thread included.
    """
    checkWarmup(run(warmup), warmup)
    start, cpu = time.perf_counter(), time.process_time()
    succeeded = run(work)
    return succeeded, time.perf_counter() - start, time.process_time() - cpu


async def timedAsync(run, warmup, work):
    """
    L{timed} for a coroutine function C{run}.
    """
    checkWarmup(await run(warmup), warmup)
    start, cpu = time.perf_counter(), time.process_time()
    succeeded = await run(work)
    return succeeded, time.perf_counter() - start, time.process_time() - cpu


def checkWarmup(succeeded, warmup):
    """
    Stop the run when not every operation of the warm-up succeeded.

    @param warmup: a count, or a list (its length).
    """
    expected = warmup if isinstance(warmup, int) else len(warmup)
    if succeeded != expected:
        raise SystemExit("%d of %d warm-up operations succeeded" % (succeeded, expected))
