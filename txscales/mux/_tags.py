"""
Mux tag allocation: the smallest free tag in 2..0x7fffff, as Finagle does.
Plain Python, no Twisted.
"""

from heapq import heappop, heappush
from typing import List

from txscales.errors import TagsExhaustedError
from txscales.mux._messages import MAX_TAG, MIN_TAG


class TagSet:
    """
    Hands out the smallest free tag.

    @ivar inUse: how many tags are allocated.
    """

    def __init__(self, minTag=MIN_TAG, maxTag=MAX_TAG) -> None:
        self._next = minTag
        self._max = maxTag
        self._freed: List[int] = []
        self.inUse = 0

    def allocate(self):
        """
        @return: the smallest free tag.
        @raise TagsExhaustedError: when every tag is in use.
        """
        if self._freed:
            tag = heappop(self._freed)
        elif self._next <= self._max:
            tag = self._next
            self._next += 1
        else:
            raise TagsExhaustedError("all %d Mux tags are in use" % (self.inUse,))
        self.inUse += 1
        return tag

    def release(self, tag) -> None:
        """
        Return C{tag} to the set; it must have come from L{allocate}.
        """
        self.inUse -= 1
        heappush(self._freed, tag)
