"""
pytest's configuration for the txscales tests: which tests need servers.

A test module that imports C{tests._twistd} (real C{twistd} servers and peer
programs, including the peers installed under C{.peers/}),
C{tests._zookeeper} (a real ZooKeeper server), C{tests._kafka} (a real
Kafka-protocol broker) or C{tests._redis} (real Redis servers), at its top
or inside a function, needs more than txscales and its Python dependencies:
every test in it gets the C{servers} marker. C{pytest -m "not servers"}
runs the others, the unit tests, which is what C{scripts/test} runs on each
further supported Python. Twisted's trial does not read this file; it runs
every test.
"""

import re

import pytest

_SERVER_HELPERS = re.compile(r"^[ \t]*(?:from|import)[ \t][^\n#]*\b_(?:twistd|zookeeper|kafka|redis)\b", re.MULTILINE)


def needsServers(source: str) -> bool:
    """
    Whether a test module needs servers outside the test process.

    @param source: the module's source code.
    @return: C{True} when it imports C{tests._twistd}, C{tests._zookeeper}
        or C{tests._kafka} anywhere (C{from tests._twistd import ...},
        C{from tests import _zookeeper}, or the same inside a function).
    """
    return _SERVER_HELPERS.search(source) is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """
    Mark every test of a module that needs servers with C{servers}.

    @param config: pytest's configuration.
    @param items: the collected tests.
    """
    verdicts: dict = {}
    for item in items:
        path = str(item.path)
        if path not in verdicts:
            with open(path, encoding="utf-8") as f:
                verdicts[path] = needsServers(f.read())
        if verdicts[path]:
            item.add_marker(pytest.mark.servers)
