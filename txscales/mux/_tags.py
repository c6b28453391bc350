"""
Mux tag allocation: the smallest free tag in 2..0x7fffff, as Finagle does.
Plain Python, no Twisted.
"""

from heapq import heappop, heappush

from txscales.errors import TagsExhaustedError
from txscales.mux._messages import MAX_TAG, MIN_TAG


class TagSet:
    """
    Hands out the smallest free tag.

    @ivar inUse: how many tags are allocated.
    """

    def __init__(self, minTag=MIN_TAG, maxTag=MAX_TAG):
        self._next = minTag
        self._max = maxTag
        self._freed = []
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

    def release(self, tag):
        """
        Return C{tag} to the set; it must have come from L{allocate}.
        """
        self.inUse -= 1
        if tag == self._next - 1:
            self._next = tag
            # Fold freed tags at the top back into the counter so the heap
            # stays small when load falls.
            while self._freed and self._next - 1 in self._freed and max(self._freed) == self._next - 1:
                self._freed.remove(self._next - 1)
                self._next -= 1
            if self._freed:
                self._freed.sort()
        else:
            heappush(self._freed, tag)
