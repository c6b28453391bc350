"""
Redis Cluster's key slots: which of the 16384 slots a key belongs to.
Plain Python, no Twisted.

As the Redis Cluster specification defines it: C{CRC16(key) mod 16384},
with the CRC16 of XMODEM (polynomial 0x1021, initial value 0, no
reflection: C{CRC16("123456789") == 0x31C3}), which is the standard
library's C{binascii.crc_hqx} with an initial value of 0.  A hash tag
narrows what is hashed: when the key has a C{E{lb}} and, after it, a
C{E{rb}} with at least one byte between them, only the bytes between the
first C{E{lb}} and the first C{E{rb}} after it are hashed, so that
C{E{lb}user1000E{rb}.following} and C{E{lb}user1000E{rb}.followers} share
a slot.
"""

from binascii import crc_hqx
from typing import Union

SLOTS = 16384
"""
How many slots a Redis Cluster has.
"""


def crc16(data: bytes) -> int:
    """
    @param data: any bytes.
    @return: their CRC16/XMODEM.
    """
    return crc_hqx(data, 0)


def hashTag(key: bytes) -> bytes:
    """
    @param key: a key.
    @return: what of it is hashed: its hash tag if it has one, else the
        whole key.
    """
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def keySlot(key: Union[bytes, str]) -> int:
    """
    @param key: a key (a C{str} is taken in UTF-8, as commands send it).
    @return: its slot, from 0 to 16383.
    """
    if isinstance(key, str):
        key = key.encode("utf-8")
    return crc_hqx(hashTag(key), 0) & (SLOTS - 1)
