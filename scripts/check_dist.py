"""
The checks scripts/check-wheel runs on txscales' sdist, its wheel, and the
wheel once installed. Each prints one line when all is well; otherwise it
prints every problem found and exits with status 1.

    python scripts/check_dist.py sdist dist/txscales-X.tar.gz REPO
    python scripts/check_dist.py wheel dist/txscales-X.whl REPO
    python scripts/check_dist.py installed     # from outside the checkout
    python scripts/check_dist.py extras dist/txscales-X.whl

The last prints the wheel's extras but "dev" (developers' tools), comma-separated.

Standard library only: it runs under the build venv and under the fresh venv
the wheel goes into.
"""

import fnmatch
import importlib
import importlib.metadata
import importlib.resources
import os
import pkgutil
import subprocess
import sys
import tarfile
import traceback
import zipfile

NAME = "txscales"

# What the sdist must hold whatever git says (the tests, their data and peers,
# the scripts, the benchmarks, the changelog's fragments, CI's entry point).
SDIST_REQUIRED = [
    "LICENSE",
    "README.rst",
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "tests/__init__.py",
    "tests/_twistd.py",
    "tests/data/README.rst",
    "tests/data/finagle-end-to-end.pcap",
    "tests/peers/",
    "scripts/bootstrap",
    "scripts/test",
    "scripts/check-wheel",
    "benchmarks/run",
    "newsfragments/",
    ".ci/run",
    "txscales/py.typed",
    "txscales/demo/TestService.thrift",
]

# Files git tracks that need not be in the sdist.
SDIST_NOT_NEEDED = [".gitignore", "*/.gitignore"]

# What the wheel ships from the checkout, by file name.
WHEEL_PATTERNS = ["*.py", "*.thrift", "py.typed"]


def _missing(names, required):
    """
    @param names: the paths an archive holds, relative to its top.
    @param required: paths that must be there; one ending in C{/} stands for
        a folder that must hold at least one file.
    @return: the required paths that are not there.
    """
    present = set(names)
    return [
        path
        for path in required
        if (not any(name.startswith(path) for name in present) if path.endswith("/") else path not in present)
    ]


def _trackedFiles(repo):
    """
    @param repo: the checkout.
    @return: the files git tracks there that exist in the working tree, or
        C{None} when C{repo} is not a git checkout.
    """
    try:
        out = subprocess.run(
            ["git", "-C", repo, "ls-files", "-z"], check=True, capture_output=True
        ).stdout.decode("utf-8")
    except (OSError, subprocess.CalledProcessError):
        return None
    return [
        path
        for path in out.split("\0")
        if path
        and os.path.isfile(os.path.join(repo, path))
        and not any(fnmatch.fnmatch(path, pattern) for pattern in SDIST_NOT_NEEDED)
    ]


def checkSdist(sdist, repo):
    """
    Check that the sdist holds every file git tracks (and L{SDIST_REQUIRED}).

    @return: the problems found.
    """
    with tarfile.open(sdist) as tar:
        members = [m.name for m in tar.getmembers() if m.isfile()]
    top = os.path.commonpath(members)
    names = [os.path.relpath(m, top) for m in members]
    problems = ["the sdist has no %s" % (p,) for p in _missing(names, SDIST_REQUIRED)]
    tracked = _trackedFiles(repo)
    if tracked is not None:
        problems += [
            "%s is tracked by git but not in the sdist (MANIFEST.in)" % (p,) for p in _missing(names, tracked)
        ]
    if not problems:
        print("check_dist: the sdist holds %d files, every file git tracks among them" % (len(names),))
    return problems


def _checkoutFiles(repo):
    """
    @return: the files of C{txscales/} and C{twisted/plugins/txscales_*.py}
        in the checkout that the wheel must ship, relative to C{repo}.
    """
    wanted = []
    for folder, dirs, files in os.walk(os.path.join(repo, NAME)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if any(fnmatch.fnmatch(name, pattern) for pattern in WHEEL_PATTERNS):
                wanted.append(os.path.relpath(os.path.join(folder, name), repo))
    plugins = os.path.join(repo, "twisted", "plugins")
    wanted += [
        os.path.join("twisted", "plugins", name)
        for name in os.listdir(plugins)
        if fnmatch.fnmatch(name, NAME + "_*.py")
    ]
    return sorted(wanted)


def checkWheel(wheel, repo):
    """
    Check that the wheel ships every module, IDL and marker of the checkout,
    the license, and nothing that would shadow Twisted.

    @return: the problems found.
    """
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        distInfo = [n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA")][0]
        metadata = z.read(distInfo + "/METADATA").decode("utf-8")
    problems = ["%s is in the checkout but not in the wheel" % (p,) for p in _missing(names, _checkoutFiles(repo))]
    for shadow in ("twisted/__init__.py", "twisted/plugins/__init__.py"):
        if shadow in names:
            problems.append("the wheel has %s, which would shadow Twisted itself" % (shadow,))
    for name in names:
        top = name.split("/")[0]
        if top not in (NAME, distInfo) and not name.startswith("twisted/plugins/" + NAME + "_"):
            problems.append("the wheel has %s, outside txscales and its plugins" % (name,))
    if distInfo + "/licenses/LICENSE" not in names:
        problems.append("the wheel's metadata has no LICENSE (%s/licenses/LICENSE)" % (distInfo,))
    if "License-Expression: Apache-2.0" not in metadata.splitlines():
        problems.append("the wheel's METADATA does not say License-Expression: Apache-2.0")
    if not problems:
        print("check_dist: the wheel ships all %d files of txscales/ and its plugins, and LICENSE" % (
            len(_checkoutFiles(repo)),))
    return problems


def checkInstalled():
    """
    Import every module of the installed txscales package and its twistd
    plugins, found by walking the installed package, and check its data files
    and license.

    @return: the problems found.
    """
    import txscales

    problems = []
    where = os.path.dirname(os.path.abspath(txscales.__file__))
    if not where.startswith(os.path.abspath(sys.prefix) + os.sep):
        problems.append("txscales was imported from %s, not from the venv %s" % (where, sys.prefix))

    failed = []

    def onerror(name):
        failed.append((name, traceback.format_exc()))

    # A __main__ module is what "python -m" runs: importing it runs it.
    modules = [NAME] + [
        info.name
        for info in pkgutil.walk_packages(txscales.__path__, NAME + ".", onerror)
        if info.name.rpartition(".")[2] != "__main__"
    ]
    dist = importlib.metadata.distribution(NAME)
    modules += [
        "twisted.plugins." + f.stem
        for f in dist.files
        if f.parent.as_posix() == "twisted/plugins" and f.suffix == ".py"
    ]
    # The compiled hot path: the wheel, built where a C compiler is, must
    # use it (TXSCALES_REQUIRE_COMPILED=1, as CI sets).
    compiledPath = txscales.compiled
    print("check_dist: txscales runs %s" % ("compiled" if compiledPath else "in pure Python",))
    if os.environ.get("TXSCALES_REQUIRE_COMPILED") == "1" and not compiledPath:
        from txscales._compiled import MODULES, compiledModules

        problems.append(
            "the installed txscales does not use its compiled modules (only %s of %s)"
            % (compiledModules(), list(MODULES))
        )
    for name in modules:
        if name in dict(failed):
            continue
        try:
            importlib.import_module(name)
        except Exception:
            failed.append((name, traceback.format_exc()))
    problems += ["cannot import %s:\n%s" % (name, tb) for name, tb in failed]

    for package, resource in [(NAME, "py.typed"), (NAME + ".demo", "TestService.thrift")]:
        if not importlib.resources.files(package).joinpath(resource).is_file():
            problems.append("%s is not installed in %s" % (resource, package))
    if not any(f.name == "LICENSE" for f in dist.files):
        problems.append("the installed metadata has no LICENSE")
    if dist.version != txscales.__version__:
        problems.append("installed as %s but txscales.__version__ is %s" % (dist.version, txscales.__version__))
    if not problems:
        print("check_dist: imported all %d modules of the installed txscales %s and its plugins" % (
            len(modules), dist.version))
    return problems


def printExtras(wheel):
    """
    Print the wheel's extras but C{dev}, comma-separated.

    @return: no problems.
    """
    with zipfile.ZipFile(wheel) as z:
        [metadata] = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        lines = z.read(metadata).decode("utf-8").splitlines()
    prefix = "Provides-Extra: "
    print(",".join(line[len(prefix):] for line in lines if line.startswith(prefix) and line != prefix + "dev"))
    return []


def main(argv):
    """
    Run the check C{argv[0]} names on the rest of C{argv}.

    @return: the exit status.
    """
    checks = {"sdist": checkSdist, "wheel": checkWheel, "installed": checkInstalled, "extras": printExtras}
    if not argv or argv[0] not in checks:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    problems = checks[argv[0]](*argv[1:])
    for problem in problems:
        print("check_dist: FAILED: %s" % (problem,), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
