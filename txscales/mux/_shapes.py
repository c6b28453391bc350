"""
The shapes of common Tdispatch headers: plain Python, no Twisted.

Most requests of a client carry the same context keys, with values of the
same sizes, and no dst or dtab.  A L{Shape} checks that a body starts with
such a header in one C{struct} unpack and reads the context values with a
second, instead of reading each length and slicing each field in Python.
Shapes are learnt from headers decoded field by field; a few are kept.
"""

from struct import Struct
from typing import List

MAX_SHAPES = 4
MAX_PAIRS = 8
LEARN_EVERY = 32
MAX_LEARN_EVERY = 1024


class Shape:
    """
    One header shape: the context keys, in order, the size of each value,
    an empty dst and an empty dtab.

    @ivar size: the header's size in bytes; the payload follows it.
    """

    __slots__ = ("_check", "_expected", "_values", "_keys", "size")

    def __init__(self, contexts) -> None:
        check = [">H"]
        expected = [len(contexts)]
        values = [">2x"]
        for key, value in contexts:
            check.append("H%dsH%dx" % (len(key), len(value)))
            expected += (len(key), key, len(value))
            values.append("%dx%ds" % (len(key) + 4, len(value)))
        # The dst length and the dtab count.
        check.append("HH")
        expected += (0, 0)
        checkStruct = Struct("".join(check))
        self._check = checkStruct.unpack_from
        self._expected = tuple(expected)
        self._values = Struct("".join(values)).unpack_from
        self._keys = tuple(key for key, _ in contexts)
        self.size = checkStruct.size

    def read(self, body):
        """
        @param body: a Tdispatch body, as bytes.
        @return: its contexts, list of (key, value), when it has this
            shape; otherwise None.
        """
        if len(body) >= self.size and self._check(body) == self._expected:
            return list(zip(self._keys, self._values(body)))
        return None


class Shapes:
    """
    The shapes learnt so far, most recent first.

    After L{LEARN_EVERY} headers that match none, the last of them is learnt
    (the first at once).  When under one header in five matched a known
    shape meanwhile, the shapes kept are forgotten first and the wait before
    the next attempt doubles, up to L{MAX_LEARN_EVERY}: traffic without
    steady shapes tries one shape per request and rarely learns.
    """

    def __init__(self) -> None:
        self.shapes: List[Shape] = []
        self._every = 1
        self._misses = 0
        self._hits = 0

    def read(self, body):
        """
        @param body: a Tdispatch body, as bytes.
        @return: (contexts, size of the header) when the body has a known
            shape; otherwise None.
        """
        size = len(body)
        for shape in self.shapes:
            # Shape.read, inline.
            if size >= shape.size and shape._check(body) == shape._expected:
                self._hits += 1
                return list(zip(shape._keys, shape._values(body))), shape.size
        return None

    def missed(self, contexts) -> None:
        """
        A header without dst or dtab was decoded field by field: maybe learn
        its shape.

        @param contexts: its contexts.
        """
        self._misses += 1
        if self._misses < self._every:
            return
        if self.shapes and self._hits * 4 < self._misses:
            # Under one header in five had a known shape: forget them, and
            # wait longer before the next attempt.
            del self.shapes[:]
            self._every = min(self._every * 2, MAX_LEARN_EVERY)
        else:
            self._every = LEARN_EVERY
        self._misses = self._hits = 0
        if len(contexts) <= MAX_PAIRS:
            self.shapes.insert(0, Shape(contexts))
            del self.shapes[MAX_SHAPES:]
