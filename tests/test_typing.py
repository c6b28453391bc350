"""
Tests for the type-checking settings in pyproject.toml, which
scripts/typecheck runs mypy with: they cover the public modules and name
modules that exist.
"""

import importlib.util
import os
import pkgutil

from twisted.trial.unittest import SynchronousTestCase

import txscales

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

PYPROJECT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")


def _overrides():
    """
    @return: the [[tool.mypy.overrides]] sections of pyproject.toml.
    """
    with open(PYPROJECT, "rb") as f:
        return tomllib.load(f)["tool"]["mypy"]["overrides"]


def _publicModules():
    """
    @return: the names of txscales' public modules: no part of the name
        starts with an underscore, and the demo is left out.
    """
    names = {"txscales"}
    for module in pkgutil.walk_packages(txscales.__path__, "txscales."):
        parts = module.name.split(".")
        if not any(part.startswith("_") for part in parts) and parts[1] != "demo":
            names.add(module.name)
    return names


class MypySettingsTests(SynchronousTestCase):
    """
    The mypy settings keep the public API fully annotated.
    """

    def setUp(self):
        if not os.path.exists(PYPROJECT):
            raise self.skipTest("no pyproject.toml beside the tests")

    def test_publicModulesStrict(self):
        """
        Every public module is one whose functions must all be annotated.
        """
        strict = set()
        for section in _overrides():
            if section.get("disallow_untyped_defs") and section.get("disallow_incomplete_defs"):
                strict.update(section["module"])
        self.assertIn("txscales.mux.protocol", _publicModules())
        self.assertEqual(sorted(_publicModules() - strict), [])

    def test_modulesExist(self):
        """
        Each txscales module the settings name exists: a renamed module does
        not silently leave the checks.
        """
        missing = []
        for section in _overrides():
            for name in section["module"]:
                name = name[: -len(".*")] if name.endswith(".*") else name
                if name.startswith("txscales") and importlib.util.find_spec(name) is None:
                    missing.append(name)
        self.assertEqual(missing, [])
