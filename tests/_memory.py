"""
Measuring the memory a test makes the code under test hold.
"""

import gc
import tracemalloc


class TracedMemory:
    """
    A mixin for test cases that measure memory with tracemalloc: call
    L{startTracing} in C{setUp}, then compare L{traced} before and after.
    """

    def startTracing(self):
        """
        Start tracing allocations unless they are traced already, until
        the test ends.
        """
        if not tracemalloc.is_tracing():
            tracemalloc.start()
            self.addCleanup(tracemalloc.stop)

    def traced(self):
        """
        @return: the bytes allocated now, after a collection.
        """
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
