"""
Tests for txscales' packaging and CI scripts: the C{servers} marker of
tests/conftest.py, the archive checks of scripts/check_dist.py, and how
.ci/run and scripts/test decide that a run failed.
"""

import importlib.util
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import textwrap
import zipfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.conftest import needsServers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _loadCheckDist():
    """
    @return: scripts/check_dist.py as a module (scripts/ is not a package).
    """
    path = os.path.join(REPO, "scripts", "check_dist.py")
    if not os.path.exists(path):
        raise SkipTest("no scripts/check_dist.py beside the tests")
    spec = importlib.util.spec_from_file_location("check_dist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tempdir(testCase):
    """
    @return: a new folder, removed when C{testCase} ends.
    """
    path = tempfile.mkdtemp(prefix="txscales-test-packaging.")
    testCase.addCleanup(shutil.rmtree, path, True)
    return path


def _writeFiles(root, files):
    """
    Write C{files} (relative path -> text) under C{root}.
    """
    for name, text in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


class ServersMarkerTests(SynchronousTestCase):
    """
    L{needsServers} tells which test modules need servers outside the process.
    """

    def test_twistdHelpers(self):
        """
        A module importing tests._twistd, at its top or in a function, needs servers.
        """
        self.assertTrue(needsServers("import os\nfrom tests._twistd import startDemoServer\n"))
        self.assertTrue(needsServers("def f():\n    from tests._twistd import runPeer\n"))
        self.assertTrue(needsServers("import tests._twistd\n"))

    def test_zookeeperHelpers(self):
        """
        A module importing tests._zookeeper, in any spelling, needs servers.
        """
        self.assertTrue(needsServers("from tests._zookeeper import ZooKeeperServer\n"))
        self.assertTrue(needsServers("from tests import _pcap, _zookeeper\n"))
        self.assertTrue(needsServers("    from ._zookeeper import freePort\n"))

    def test_kafkaHelpers(self):
        """
        A module importing tests._kafka, in any spelling, needs servers.
        """
        self.assertTrue(needsServers("from tests._kafka import TansuBroker, consumeAll\n"))
        self.assertTrue(needsServers("from tests import _kafka\n"))
        self.assertTrue(needsServers("def f():\n    import tests._kafka\n"))

    def test_redisHelpers(self):
        """
        A module importing tests._redis, in any spelling, needs servers.
        """
        self.assertTrue(needsServers("from tests._redis import RedisCluster, RedisServer\n"))
        self.assertTrue(needsServers("from tests import _redis\n"))
        self.assertTrue(needsServers("def f():\n    import tests._redis\n"))
        self.assertFalse(needsServers('"""Compared with tests._redis\' servers elsewhere."""\n'))

    def test_unitModules(self):
        """
        A module using other helpers, or naming the server helpers outside an import, needs none.
        """
        self.assertFalse(needsServers("from tests._pcap import splitFrames\nfrom tests._tls import X\n"))
        self.assertFalse(needsServers('"""Unlike tests._twistd, these run in process."""\nimport os\n'))
        self.assertFalse(needsServers("import os  # not tests._zookeeper\n"))
        self.assertFalse(needsServers('"""Checked against tests._kafka\'s broker elsewhere."""\n'))


class CheckDistTests(SynchronousTestCase):
    """
    scripts/check_dist.py finds what a wheel or an sdist lacks.
    """

    def setUp(self):
        self.checkDist = _loadCheckDist()
        self.repo = _tempdir(self)
        _writeFiles(
            self.repo,
            {
                "txscales/__init__.py": "",
                "txscales/py.typed": "",
                "txscales/mux/__init__.py": "",
                "txscales/mux/_framing.py": "",
                "txscales/demo/TestService.thrift": "",
                "twisted/plugins/txscales_twistd.py": "",
            },
        )

    def makeWheel(self, leaveOut=(), add=()):
        """
        @return: the path of a wheel holding the checkout's files but
            C{leaveOut}, plus C{add}, a LICENSE and a METADATA.
        """
        path = os.path.join(_tempdir(self), "txscales-1-py3-none-any.whl")
        with zipfile.ZipFile(path, "w") as z:
            for name in self.checkDist._checkoutFiles(self.repo):
                if name not in leaveOut:
                    z.writestr(name, "")
            for name in add:
                z.writestr(name, "")
            z.writestr("txscales-1.dist-info/licenses/LICENSE", "Apache")
            z.writestr("txscales-1.dist-info/METADATA", "Name: txscales\nLicense-Expression: Apache-2.0\n")
        return path

    def test_completeWheel(self):
        """
        A wheel with every module, IDL, marker and plugin of the checkout passes.
        """
        self.assertEqual(self.checkDist.checkWheel(self.makeWheel(), self.repo), [])

    def test_subpackageMissing(self):
        """
        A subpackage left out of the wheel (as a folder without __init__.py is) is reported.
        """
        problems = self.checkDist.checkWheel(
            self.makeWheel(leaveOut={"txscales/mux/__init__.py", "txscales/mux/_framing.py"}), self.repo
        )
        self.assertEqual(
            problems,
            [
                "txscales/mux/__init__.py is in the checkout but not in the wheel",
                "txscales/mux/_framing.py is in the checkout but not in the wheel",
            ],
        )

    def test_dataFilesMissing(self):
        """
        A wheel without py.typed and the demo's IDL is reported.
        """
        problems = self.checkDist.checkWheel(
            self.makeWheel(leaveOut={"txscales/py.typed", "txscales/demo/TestService.thrift"}), self.repo
        )
        self.assertEqual(len(problems), 2, problems)

    def test_twistedShadowed(self):
        """
        A wheel with twisted/__init__.py, which would replace Twisted itself, is reported.
        """
        problems = self.checkDist.checkWheel(self.makeWheel(add={"twisted/__init__.py"}), self.repo)
        self.assertIn("the wheel has twisted/__init__.py, which would shadow Twisted itself", problems)

    def makeSdist(self, names):
        """
        @return: the path of an sdist holding C{names} under txscales-1/.
        """
        path = os.path.join(_tempdir(self), "txscales-1.tar.gz")
        with tarfile.open(path, "w:gz") as tar:
            for name in names:
                info = tarfile.TarInfo("txscales-1/" + name)
                tar.addfile(info, io.BytesIO(b""))
        return path

    def test_sdistMissingFiles(self):
        """
        An sdist without LICENSE or the tests' data is reported, by name.
        """
        names = [p for p in self.checkDist.SDIST_REQUIRED if not p.endswith("/")]
        names += ["tests/peers/scales_client.py", "newsfragments/1.feature"]
        self.assertEqual(self.checkDist.checkSdist(self.makeSdist(names), self.repo), [])
        names.remove("LICENSE")
        names.remove("tests/data/finagle-end-to-end.pcap")
        self.assertEqual(
            self.checkDist.checkSdist(self.makeSdist(names), self.repo),
            ["the sdist has no LICENSE", "the sdist has no tests/data/finagle-end-to-end.pcap"],
        )


class CiRunTests(SynchronousTestCase):
    """
    .ci/run fails unless the last pytest run of scripts/test passed tests.
    """

    def ciRun(self, output, status=0):
        """
        Run a copy of .ci/run whose scripts/test prints C{output} and exits
        with C{status}.

        @return: the finished L{subprocess.CompletedProcess}.
        """
        ciRun = os.path.join(REPO, ".ci", "run")
        if not os.path.exists(ciRun):
            raise SkipTest("no .ci/run beside the tests")
        root = _tempdir(self)
        os.makedirs(os.path.join(root, ".ci"))
        shutil.copy(ciRun, os.path.join(root, ".ci", "run"))
        _writeFiles(root, {"scripts/test": "cat <<'EOF'\n%sEOF\nexit %d\n" % (textwrap.dedent(output), status)})
        os.chmod(os.path.join(root, "scripts", "test"), 0o755)
        return subprocess.run(["bash", os.path.join(root, ".ci", "run")], capture_output=True, text=True)

    def test_lastRunPassed(self):
        """
        The last run's closing line counts, whatever the runs before it printed.
        """
        result = self.ciRun(
            """\
            test: Python 3.10.13 unit tests: 372 passed, 74 deselected in 9.0s
                446 tests collected in 1.42s
            test: running pytest tests -q -p no:cacheprovider
            ....
            446 passed in 55.10s
            """
        )
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_lastRunPassedNothing(self):
        """
        A last run that passed no test fails CI even after runs that passed tests.
        """
        result = self.ciRun(
            """\
            372 passed, 74 deselected in 9.01s
            test: running pytest tests -q -p no:cacheprovider
            446 skipped in 3.00s
            """
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn("pytest reported no passed test (summary: 446 skipped in 3.00s)", result.stderr)

    def test_noLastRun(self):
        """
        Output without the whole suite's run fails CI, even with closing lines of other runs.
        """
        result = self.ciRun("372 passed, 74 deselected in 9.01s\n")
        self.assertEqual(result.returncode, 1)
        self.assertIn("(summary: none)", result.stderr)

    def test_scriptFailed(self):
        """
        CI fails with scripts/test, whatever the closing line says.
        """
        result = self.ciRun("test: running pytest tests\n446 passed in 5.00s\n", status=1)
        self.assertEqual(result.returncode, 1)


class ScriptsTestTests(SynchronousTestCase):
    """
    scripts/test fails when pytest ran no test.
    """

    def test_noTestRan(self):
        """
        A -k matching no test makes scripts/test fail and say why.
        """
        python = os.path.join(REPO, ".venv", "bin", "python")
        if not os.path.exists(python):
            raise SkipTest("no .venv in the checkout (scripts/bootstrap makes it)")
        env = dict(os.environ, TXSCALES_SKIP_SETUP="1", TXSCALES_TRIAL="0")
        result = subprocess.run(
            [os.path.join(REPO, "scripts", "test"), "tests/test_packaging.py", "-k", "noSuchTestAnywhere"],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("test: FAILED: pytest ran no test (exit status 5)", result.stderr)


class SelfContainedTests(SynchronousTestCase):
    """
    The repository reads nothing from beside the checkout.
    """

    def test_noPathOutsideTheCheckout(self):
        """
        No source, script, test or document names the folder beside the checkout that once held test data.
        """
        outside = ".." + "/shared"
        skip = {".git", ".venv", ".peers", "build", "dist", "__pycache__", ".hypothesis", "_trial_temp"}
        found = []
        for root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in skip and not d.startswith((".venv-", "_trial_temp"))]
            for name in files:
                path = os.path.join(root, name)
                if not os.path.isfile(path):
                    continue
                with open(path, "rb") as f:
                    if outside.encode("ascii") in f.read():
                        found.append(os.path.relpath(path, REPO))
        self.assertEqual(found, [])
