"""
Tests for the protocol packages' imports: they import one another through
their public faces, so each must import first, in a fresh interpreter.
"""

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

PACKAGES = ["txscales.tracing", "txscales.mux", "txscales.thrift", "txscales.thriftmux", "txscales.http", "txscales.thriftmux._vanilla", "txscales.kafka", "txscales.redis"]


class ImportOrderTests(SynchronousTestCase):
    """
    No import order of the protocol packages meets a circular import.
    """

    def test_eachFirst(self):
        """
        Each package imports as the first txscales module of a fresh
        interpreter.
        """
        for name in PACKAGES:
            result = subprocess.run([sys.executable, "-c", "import %s" % (name,)], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, "%s: %s" % (name, result.stderr))
