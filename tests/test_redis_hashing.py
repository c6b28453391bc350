"""
Tests for L{txscales.redis._hashing}: the ketama ring picks the server that
twemproxy and Finagle pick for a key, and L{txscales.redis._slots}: Redis
Cluster's key slots.
"""

import hashlib
import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txscales.redis._hashing import (
    KetamaRing,
    fnv1a64,
    ketamaName,
    md5Hash,
    pointGroups,
)
from txscales.redis._slots import SLOTS, crc16, hashTag, keySlot

KETAMA_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "ketama")

FINAGLE_NODES = [
    ("10.0.1.1", 600),
    ("10.0.1.2", 300),
    ("10.0.1.3", 200),
    ("10.0.1.4", 350),
    ("10.0.1.5", 1000),
    ("10.0.1.6", 800),
    ("10.0.1.7", 950),
    ("10.0.1.8", 100),
]


def twemproxyVectors():
    """
    @return: C{[(servers, [(key, md5Index, fnvIndex), ...]), ...]} from
        C{tests/data/ketama/twemproxy-vectors.txt}, C{servers} being
        C{[(name, weight), ...]}.
    """
    groups = []
    with open(os.path.join(KETAMA_DATA, "twemproxy-vectors.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# servers: "):
                servers = []
                for item in line[len("# servers: ") :].split(" "):
                    name, _, weight = item.rpartition(":")
                    servers.append((name, int(weight)))
                groups.append((servers, []))
            elif line.startswith("# points "):
                groups[-1][0].append(int(line.split()[-1]))
            else:
                key, md5Index, fnvIndex = line.rsplit(" ", 2)
                groups[-1][1].append((key, int(md5Index), int(fnvIndex)))
    return groups


class KetamaTwemproxyTests(SynchronousTestCase):
    """
    The ring is twemproxy's, byte for byte: vectors made by twemproxy's own
    C code.
    """

    def test_vectors(self):
        """
        For every server list of the vectors, every key goes to the server
        twemproxy picks, with the md5 and with the fnv1a_64 key hash.
        """
        groups = twemproxyVectors()
        self.assertEqual(len(groups), 4)
        for servers, keys in groups:
            points = servers.pop()
            entries = [(name, weight, index) for index, (name, weight) in enumerate(servers)]
            md5Ring = KetamaRing(entries)
            fnvRing = KetamaRing(entries, keyHash="fnv1a_64")
            self.assertEqual(len(md5Ring.points), points)
            self.assertEqual(len(keys), 200)
            for key, md5Index, fnvIndex in keys:
                self.assertEqual(md5Ring.nodeFor(key), md5Index, (servers[0], key))
                self.assertEqual(fnvRing.nodeFor(key), fnvIndex, (servers[0], key))

    def test_twentyFiveServers(self):
        """
        Twemproxy's 32-bit arithmetic gives each of 25 equal servers 39
        groups of points, not 40; Finagle's default gives 40.
        """
        self.assertEqual(pointGroups(1, 25, 25), 39)
        self.assertEqual(pointGroups(1, 25, 25, "finagle"), 40)
        self.assertEqual(pointGroups(1, 3, 3), 40)
        names = [("10.0.0.%d:6379" % i, 1, i) for i in range(25)]
        self.assertEqual(len(KetamaRing(names).points), 25 * 39 * 4)
        self.assertEqual(len(KetamaRing(names, compatibility="finagle").points), 25 * 40 * 4)

    def test_equalWeightsAgree(self):
        """
        With equal weights, the two computations differ only for the numbers
        of servers twemproxy rounds down.
        """
        differing = [n for n in range(1, 101) if pointGroups(1, n, n) != pointGroups(1, n, n, "finagle")]
        self.assertEqual(differing, [25, 47, 50, 55, 61, 71, 94, 100])

    def test_points(self):
        """
        Group C{i} of a server named C{name} is the MD5 of C{"name-i"}, cut
        into four little-endian words.
        """
        ring = KetamaRing([("a:1", 1, "a")])
        expected = set()
        for i in range(40):
            expected.update(struct.unpack("<4I", hashlib.md5(b"a:1-%d" % (i,)).digest()))
        self.assertEqual(ring.points, sorted(expected))

    def test_wrapsRound(self):
        """
        A hash past the last point goes to the first point's server; a hash
        equal to a point goes to that point's server.
        """
        ring = KetamaRing([("a", 1, "a"), ("b", 1, "b")])
        first = ring.nodeForHash(0)
        self.assertEqual(ring.nodeForHash(ring.points[-1] + 1), first)
        self.assertEqual(ring.nodeForHash(0xFFFFFFFF), first)
        self.assertEqual(ring.nodeForHash(ring.points[0]), first)
        for point in ring.points[:20]:
            self.assertEqual(ring.nodeForHash(point), ring.nodeForHash(point - 1 if point else 0))

    def test_names(self):
        """
        A server's name is C{host:port}, or C{host} on port 11211.
        """
        self.assertEqual(ketamaName("10.0.0.1", 6379), "10.0.0.1:6379")
        self.assertEqual(ketamaName("cache.example", 11211), "cache.example")

    def test_fnv1a64SignExtends(self):
        """
        Twemproxy's fnv1a_64 reads signed chars: C{"\\x80"} hashes as if
        0xFFFFFF80 were XORed in.
        """
        self.assertEqual(fnv1a64(b""), 0x84222325)
        self.assertEqual(fnv1a64(b"a"), ((0x84222325 ^ 0x61) * 0x1B3) & 0xFFFFFFFF)
        self.assertEqual(fnv1a64(b"\x80"), ((0x84222325 ^ 0xFFFFFF80) * 0x1B3) & 0xFFFFFFFF)

    def test_badServers(self):
        """
        No server, a weight that is not a positive int, or an unknown key
        hash or compatibility is refused.
        """
        self.assertRaises(ValueError, KetamaRing, [])
        self.assertRaises(ValueError, KetamaRing, [("a", 0, 1)])
        self.assertRaises(ValueError, KetamaRing, [("a", 1.5, 1)])
        self.assertRaises(ValueError, KetamaRing, [("a", 1, 1)], keyHash="crc32")
        self.assertRaises(ValueError, KetamaRing, [("a", 1, 1)], compatibility="memcached")


class KetamaFinagleTests(SynchronousTestCase):
    """
    The ring is Finagle's: its own test vectors pick the same servers.
    """

    def finagleResults(self):
        with open(os.path.join(KETAMA_DATA, "finagle-ketama-results.txt"), encoding="utf-8") as f:
            return [line.rstrip("\n").split(" ") for line in f]

    def test_vectors(self):
        """
        Every key of Finagle's C{ketama_results} hashes to its hash and goes
        to its server, in both computations of the points (Finagle checks
        both too).
        """
        results = self.finagleResults()
        self.assertEqual(len(results), 99)
        nodes = [(name, weight, name) for name, weight in FINAGLE_NODES]
        for compatibility in ("twemproxy", "finagle"):
            ring = KetamaRing(nodes, compatibility=compatibility)
            for key, hashValue, point, server in results:
                self.assertEqual(md5Hash(key.encode("ascii")), int(hashValue), key)
                self.assertEqual(ring.nodeFor(key), server, (compatibility, key))

    def test_pointOfKey(self):
        """
        The point a key lands on is the vectors' third column.
        """
        ring = KetamaRing([(name, weight, name) for name, weight in FINAGLE_NODES], compatibility="finagle")
        from bisect import bisect_left

        for key, hashValue, point, server in self.finagleResults():
            index = bisect_left(ring.points, int(hashValue)) % len(ring.points)
            self.assertEqual(ring.points[index], int(point), key)

    def test_sixtyFourBitHashes(self):
        """
        Only a hash's low 32 bits count: Finagle's known values for 64-bit
        hashes.
        """
        nodes = [(name, weight, index + 1) for index, (name, weight) in enumerate(FINAGLE_NODES)]
        ring = KetamaRing(nodes, compatibility="finagle")
        known = {-166124121512512: 5, 8796093022208: 3, 4312515125124: 2, -8192481414141: 1, -9515121512312: 5}
        for value, node in known.items():
            self.assertEqual(ring.nodeForHash(value), node, value)


class KetamaUhashringTests(SynchronousTestCase):
    """
    The ring agrees with uhashring's ketama ring, an independent
    implementation of libketama's algorithm.
    """

    @settings(max_examples=200, deadline=None)
    @given(
        servers=st.lists(
            st.from_regex(r"\A[a-z0-9.]{1,20}:[0-9]{1,5}\Z"), min_size=1, max_size=12, unique=True
        ),
        keys=st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=20),
    )
    def test_sameServer(self, servers, keys):
        """
        For equally weighted servers (uhashring computes 40 groups exactly,
        as Finagle does), every key goes to the server uhashring picks,
        unless its hash is exactly a point (uhashring then takes the next).
        """
        from uhashring import HashRing

        theirs = HashRing(nodes=servers, hash_fn="ketama")
        ours = KetamaRing([(name, 1, name) for name in servers], compatibility="finagle")
        points = set(ours.points)
        for key in keys:
            if md5Hash(key.encode("utf-8")) in points:
                continue
            self.assertEqual(ours.nodeFor(key), theirs.get_node(key), key)

    def test_manyKeys(self):
        """
        Ten thousand keys over five servers go where uhashring puts them.
        """
        from uhashring import HashRing

        servers = ["10.1.0.%d:6379" % (i,) for i in range(5)]
        theirs = HashRing(nodes=servers, hash_fn="ketama")
        ours = KetamaRing([(name, 1, name) for name in servers])
        mine = [ours.nodeFor("k%d" % (i,)) for i in range(10000)]
        self.assertEqual(mine, [theirs.get_node("k%d" % (i,)) for i in range(10000)])
        self.assertEqual(len(set(mine)), 5)


class KeySlotTests(SynchronousTestCase):
    """
    Tests for Redis Cluster's key slots.
    """

    def test_specVector(self):
        """
        The specification's CRC16 check value: C{CRC16("123456789")} is
        0x31C3.
        """
        self.assertEqual(crc16(b"123456789"), 0x31C3)
        self.assertEqual(keySlot(b"123456789"), 0x31C3 % SLOTS)

    def test_knownSlots(self):
        """
        Keys take the slots Redis gives them (C{CLUSTER KEYSLOT} on Redis 7;
        C{tests/test_redis_servers.py} compares with a live server too).
        """
        known = {
            b"": 0,
            b"foo": 12182,
            b"bar": 5061,
            b"hello": 866,
            b"somekey": 11058,
            b"{user1000}.following": 3443,
            b"{user1000}.followers": 3443,
            b"user1000": 3443,
        }
        self.assertEqual({key: keySlot(key) for key in known}, known)

    def test_hashTags(self):
        """
        Only the part between the first C{{} and the first C{}} after it is
        hashed, when it is not empty.
        """
        self.assertEqual(hashTag(b"{user1000}.following"), b"user1000")
        self.assertEqual(hashTag(b"foo{}{bar}"), b"foo{}{bar}")
        self.assertEqual(hashTag(b"foo{{bar}}zap"), b"{bar")
        self.assertEqual(hashTag(b"foo{bar}{zap}"), b"bar")
        self.assertEqual(hashTag(b"foo{bar"), b"foo{bar")
        self.assertEqual(hashTag(b"foo}bar{"), b"foo}bar{")
        self.assertEqual(hashTag(b"}{a}"), b"a")
        self.assertEqual(keySlot(b"foo{{bar}}zap"), keySlot(b"{bar"))

    def test_str(self):
        """
        A str key is hashed in UTF-8.
        """
        self.assertEqual(keySlot("cl\u00e9"), keySlot("cl\u00e9".encode("utf-8")))

    @given(st.binary(max_size=40), st.binary(min_size=1, max_size=10).filter(lambda t: b"}" not in t))
    def test_tagDecides(self, rest, tag):
        """
        Any key whose first C{{...}} is a non-empty tag (without C{{} before
        it) is in the tag's slot.
        """
        prefix = rest.replace(b"{", b"")
        self.assertEqual(keySlot(prefix + b"{" + tag + b"}" + rest), keySlot(tag))

    @given(st.binary(max_size=64))
    def test_inRange(self, key):
        """
        Every slot is in C{range(16384)}.
        """
        self.assertIn(keySlot(key), range(SLOTS))
