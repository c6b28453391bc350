"""
Which keys a command names, for routing it on a sharded client.  Plain
Python, no Twisted.
"""

from typing import Any, List, Optional, Sequence

KEYLESS = frozenset(
    """
    ACL AUTH BGREWRITEAOF BGSAVE CLIENT CLUSTER COMMAND CONFIG DBSIZE DEBUG DISCARD ECHO EXEC FAILOVER
    FLUSHALL FLUSHDB FUNCTION HELLO INFO KEYS LASTSAVE LATENCY LOLWUT MEMORY MODULE MONITOR MULTI PING
    PSUBSCRIBE PUBSUB PUNSUBSCRIBE QUIT RANDOMKEY READONLY READWRITE REPLICAOF RESET ROLE SAVE SCAN SCRIPT
    SELECT SHUTDOWN SLAVEOF SLOWLOG SUBSCRIBE SWAPDB SYNC TIME UNSUBSCRIBE UNWATCH WAIT
    """.split()
)
"""
Commands without a key: a sharded client cannot route them.
"""

ALL_KEYS = frozenset(
    """
    DEL EXISTS MGET PFCOUNT PFMERGE RENAME RENAMENX RPOPLPUSH LMOVE SDIFF SDIFFSTORE SINTER SINTERSTORE
    SUNION SUNIONSTORE TOUCH UNLINK WATCH ZDIFFSTORE
    """.split()
)
"""
Commands whose arguments are all keys (those routed by L{commandKeys}).
"""

PAIRS = frozenset(["MSET", "MSETNX"])
"""
Commands whose arguments are key, value pairs.
"""

SCRIPTS = frozenset(["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"])
"""
Commands with C{numkeys} then keys after their first argument.
"""


def commandName(args: Sequence[Any]) -> str:
    """
    @return: the command's name in capitals.
    """
    name = args[0]
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return str(name).upper()


def commandKeys(args: Sequence[Any]) -> Optional[List[Any]]:
    """
    The keys of a command, as far as a sharded client routes it.

    @param args: the command's name and arguments.
    @return: its keys (the first argument for a command not known to take
        several), or None for a command without a key.
    """
    name = commandName(args)
    if name in KEYLESS or len(args) < 2:
        return None
    if name in ALL_KEYS:
        # LMOVE and RPOPLPUSH name two keys then words.
        return list(args[1:3]) if name == "LMOVE" else list(args[1:])
    if name in PAIRS:
        return list(args[1::2])
    if name in SCRIPTS:
        try:
            count = int(args[2])
        except (IndexError, ValueError):
            return None
        return list(args[3:3 + count]) or None
    return [args[1]]
