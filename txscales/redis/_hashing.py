"""
Ketama consistent hashing: which server of a sharded (non-cluster) set a
key goes to, the same as twemproxy's C{distribution: ketama} and Finagle's
C{ConsistentHashingDistributor} (and libmemcached, libketama) choose.
Plain Python, no Twisted.

The ring, as twemproxy's C{nc_ketama.c} builds it:

  - each server has a name: C{host:port} (just C{host} when the port is
    11211, for libmemcached's sake), or a name given in the configuration;
  - it gets C{floor(weight / totalWeight * 160 / 4 * servers)} groups of 4
    points (40 groups, 160 points, when the weights are equal); group
    C{i} (from 0) takes the MD5 of C{"name-i"}, and its 4 points are the
    digest's four 32-bit little-endian words;
  - a key goes to the server of the first point at or after its hash,
    wrapping round to the first point.

Twemproxy (and libmemcached, and Finagle's
C{oldLibMemcachedVersionComplianceMode}) computes the groups in 32-bit
floats, which gives 39 groups instead of 40 for some numbers of equally
weighted servers (25, 47, 50, 55, ...); Finagle's default computes them in
64-bit floats.  L{KetamaRing}'s C{compatibility} picks one.  Two points of
equal value (rare: 32-bit values) go to the server listed last, as in
Finagle; twemproxy's order for them is unspecified.

The key's hash is the MD5's first little-endian word (Finagle's
C{KeyHasher.KETAMA}, twemproxy's C{hash: md5}); twemproxy's default,
C{hash: fnv1a_64}, is L{fnv1a64}.
"""

import hashlib
import math
import struct
from bisect import bisect_left
from typing import Callable, Dict, Generic, List, Sequence, Tuple, TypeVar, Union

T = TypeVar("T")

POINTS_PER_SERVER = 160
"""
The points of a server of average weight.
"""

_FLOAT32 = struct.Struct("<f")
_WORDS = struct.Struct("<4I")


def _f32(value: float) -> float:
    return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])


def ketamaName(host: str, port: int) -> str:
    """
    The name a server's points are made from, when no name is configured.

    @param host: its host, as written in the configuration.
    @param port: its port.
    @return: C{host:port}, or C{host} when the port is 11211 (twemproxy's
        and Finagle's rule, kept from libmemcached).
    """
    if port == 11211:
        return host
    return "%s:%d" % (host, port)


def md5Hash(key: bytes) -> int:
    """
    @param key: a key.
    @return: the first 4 bytes of its MD5 as a little-endian unsigned int.
    """
    return int.from_bytes(hashlib.md5(key).digest()[:4], "little")


def fnv1a64(key: bytes) -> int:
    """
    Twemproxy's C{fnv1a_64}, which despite its name is 32 bits: FNV-1a with
    the 64-bit offset basis and prime, both cut to their low 32 bits.  It
    reads the key as C{char}s, signed on the platforms twemproxy runs on:
    a byte from 0x80 up is XORed in sign-extended (0x80 as 0xFFFFFF80).

    @param key: a key.
    @return: its hash, an unsigned 32-bit int.
    """
    value = 0x84222325
    for byte in key:
        if byte & 0x80:
            byte |= 0xFFFFFF00
        value = ((value ^ byte) * 0x000001B3) & 0xFFFFFFFF
    return value


KEY_HASHES: Dict[str, Callable[[bytes], int]] = {"md5": md5Hash, "fnv1a_64": fnv1a64}
"""
The key hashes by name, as twemproxy's configuration spells them.
"""


def pointGroups(weight: int, totalWeight: int, servers: int, compatibility: str = "twemproxy") -> int:
    """
    How many groups of 4 points a server gets.

    @param weight: its weight.
    @param totalWeight: the sum of the weights of all servers.
    @param servers: how many servers.
    @param compatibility: C{"twemproxy"} (32-bit floats, as twemproxy,
        libmemcached and Finagle's compliance mode) or C{"finagle"} (64-bit
        floats, Finagle's default).
    @return: the number of groups.
    """
    if compatibility == "twemproxy":
        pct = _f32(_f32(float(weight)) / _f32(float(totalWeight)))
        value = _f32(_f32(_f32(pct * POINTS_PER_SERVER) / 4.0) * _f32(float(servers)))
        return math.floor(_f32(value + 0.0000000001))
    if compatibility == "finagle":
        return int(weight / totalWeight * servers * (POINTS_PER_SERVER // 4) + 0.0000000001)
    raise ValueError("compatibility must be 'twemproxy' or 'finagle', not %r" % (compatibility,))


class KetamaRing(Generic[T]):
    """
    A ketama ring over servers, each with a name, a weight and a handle
    (what L{nodeFor} returns: an address, a connection, an index).

    @ivar points: the ring's point values, sorted.
    """

    def __init__(
        self,
        servers: Sequence[Tuple[str, int, T]],
        keyHash: str = "md5",
        compatibility: str = "twemproxy",
    ) -> None:
        """
        @param servers: C{(name, weight, handle)} for each server, in the
            configuration's order (which decides equal points); see
            L{ketamaName} for the usual names.  Weights are positive ints.
        @param keyHash: C{"md5"} (ketama's own, Finagle's) or C{"fnv1a_64"}
            (twemproxy's default); see L{KEY_HASHES}.
        @param compatibility: see L{pointGroups}.
        @raise ValueError: when there is no server, a weight is not
            positive, or a name is unknown.
        """
        if not servers:
            raise ValueError("a ketama ring needs at least one server")
        if keyHash not in KEY_HASHES:
            raise ValueError("keyHash must be one of %s, not %r" % (sorted(KEY_HASHES), keyHash))
        self._keyHash = KEY_HASHES[keyHash]
        totalWeight = 0
        for name, weight, _ in servers:
            if type(weight) is not int or weight < 1:
                raise ValueError("the weight of %r must be a positive int, not %r" % (name, weight))
            totalWeight += weight
        byPoint: Dict[int, T] = {}
        for name, weight, handle in servers:
            prefix = name.encode("utf-8") + b"-"
            for group in range(pointGroups(weight, totalWeight, len(servers), compatibility)):
                digest = hashlib.md5(prefix + str(group).encode("ascii")).digest()
                for point in _WORDS.unpack(digest):
                    byPoint[point] = handle
        self.points: List[int] = sorted(byPoint)
        self._handles: List[T] = [byPoint[p] for p in self.points]

    def nodeForHash(self, value: int) -> T:
        """
        @param value: a key's hash (only its low 32 bits count, as in
            Finagle).
        @return: the handle of the server of the first point at or after
            it, wrapping round.
        """
        index = bisect_left(self.points, value & 0xFFFFFFFF)
        if index == len(self.points):
            index = 0
        return self._handles[index]

    def nodeFor(self, key: Union[bytes, str]) -> T:
        """
        @param key: a key (a C{str} is taken in UTF-8).
        @return: the handle of the server it goes to.
        """
        if isinstance(key, str):
            key = key.encode("utf-8")
        return self.nodeForHash(self._keyHash(key))
