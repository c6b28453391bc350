"""
Tests for the shape of txscales' import graph: arrows only point down the
layers, and no package reaches into another package's private modules.
"""

import ast
import os
from typing import Dict, Iterator, List, Set, Tuple

from twisted.trial.unittest import TestCase

import txscales

# The layers, lowest first.  A module may import modules of its own layer's
# package and of lower layers, never of a higher layer or of another package
# of its own layer.  The first layer holds the library's shared single
# modules, which may import each other.
LAYERS: List[Set[str]] = [
    {
        "txscales",
        "txscales._backoff",
        "txscales._compiled",
        "txscales._connection",
        "txscales._deferreds",
        "txscales._draining",
        "txscales._framing",
        "txscales._listening",
        "txscales._loadrun",
        "txscales._metrics",
        "txscales._moving",
        "txscales._options",
        "txscales._plugins",
        "txscales._ratelimit",
        "txscales._reactor",
        "txscales._registry",
        "txscales._sampling",
        "txscales._timers",
        "txscales._tracing",
        "txscales._otel",
        "txscales._tls",
        "txscales._version",
        "txscales.errors",
        "txscales.interfaces",
        "txscales.tracing",
    },
    {"txscales.stats"},
    # The admin site, on the metrics page and the registry.
    {"txscales._admin"},
    {"txscales.balancer", "txscales.discovery", "txscales.pool", "txscales.mux"},
    {"txscales.stack"},
    {"txscales.thrift"},
    # The clients, on discovery: Kafka's finds its brokers through it.
    {"txscales.thriftmux", "txscales.http", "txscales.kafka", "txscales.redis"},
    {"txscales.demo", "txscales.testing", "txscales.blocking"},
    {"txscales.tap", "txscales._cli"},
]

_ROOT = os.path.dirname(os.path.abspath(txscales.__file__))


def unitOf(module: str) -> str:
    """
    @param module: a dotted module name in txscales.
    @return: the unit of L{LAYERS} it belongs to: a shared single module
        itself, else its top-level package or module under C{txscales}.
    """
    parts = module.split(".")
    if module in LAYERS[0]:
        return module
    return ".".join(parts[:2])


def layerOf(module: str) -> int:
    """
    @param module: a dotted module name in txscales.
    @return: the index in L{LAYERS} of its unit.
    @raise KeyError: when no layer names its unit.
    """
    unit = unitOf(module)
    for index, layer in enumerate(LAYERS):
        if unit in layer:
            return index
    raise KeyError(module)


def sourceModules() -> Iterator[Tuple[str, str]]:
    """
    @return: C{(dotted name, path)} for every module of txscales' source,
        without Thrift's generated code.
    """
    for folder, dirs, files in os.walk(_ROOT):
        dirs[:] = [d for d in dirs if d not in ("gen", "__pycache__")]
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, os.path.dirname(_ROOT))[:-3]
                dotted = relative.replace(os.sep, ".")
                if dotted.endswith(".__init__"):
                    dotted = dotted[: -len(".__init__")]
                yield dotted, path


def importsOf(path: str) -> Set[str]:
    """
    @param path: a Python source file.
    @return: the txscales modules it imports, at its top or inside functions.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(n for n in names if n == "txscales" or n.startswith("txscales."))
    return found


def importGraph() -> Dict[str, Set[str]]:
    """
    @return: each module of txscales' source, with the txscales modules it
        imports.
    """
    return {module: importsOf(path) for module, path in sourceModules()}


def violations(graph: Dict[str, Set[str]]) -> List[str]:
    """
    @param graph: modules with the txscales modules each imports.
    @return: one line per import that breaks the layering or reaches into
        another package's private module.
    """
    found = []
    for module, imports in sorted(graph.items()):
        source = unitOf(module)
        for imported in sorted(imports):
            target = unitOf(imported)
            if target == source:
                continue
            if layerOf(imported) > layerOf(module):
                found.append(f"{module} imports {imported}, a higher layer")
            elif layerOf(imported) == layerOf(module) and layerOf(module) != 0:
                found.append(f"{module} imports {imported}, a sibling of its layer")
            private = [part for part in imported.split(".")[2:] if part.startswith("_")]
            if imported.count(".") >= 2 and private and imported.split(".")[1] != "gen":
                found.append(f"{module} imports {imported}, a private module of another package")
    return found


class LayerTests(TestCase):
    """
    Tests for the layering of txscales' modules.
    """

    def test_everyModuleHasALayer(self) -> None:
        """
        Every module of txscales belongs to a layer, so a new package must be
        placed deliberately.
        """
        unplaced = [m for m, _ in sourceModules() if not any(unitOf(m) in layer for layer in LAYERS)]
        self.assertEqual(unplaced, [])

    def test_importsPointDown(self) -> None:
        """
        No module imports a higher layer, a sibling package of its own layer, or
        another package's private module.
        """
        self.assertEqual(violations(importGraph()), [])

    def test_checkCatchesBadImports(self) -> None:
        """
        The check reports upward, sibling and private imports, and allows
        downward imports of public names and of the shared single modules.
        """
        graph = {
            "txscales.thrift._server": {"txscales.thriftmux._server", "txscales.stack", "txscales._listening"},
            "txscales.balancer._aperture": {"txscales.stack._retrybudget", "txscales._moving"},
            "txscales.mux.protocol": {"txscales.pool"},
            "txscales.thriftmux._client": {"txscales.thrift._codec", "txscales.thrift"},
        }
        self.assertEqual(
            violations(graph),
            [
                "txscales.balancer._aperture imports txscales.stack._retrybudget, a higher layer",
                "txscales.balancer._aperture imports txscales.stack._retrybudget,"
                " a private module of another package",
                "txscales.mux.protocol imports txscales.pool, a sibling of its layer",
                "txscales.thrift._server imports txscales.thriftmux._server, a higher layer",
                "txscales.thrift._server imports txscales.thriftmux._server, a private module of another package",
                "txscales.thriftmux._client imports txscales.thrift._codec, a private module of another package",
            ],
        )
