"""
Find txscales plugins by name.
"""

from typing import Any, Type

from twisted.plugin import getPlugins

from txscales.errors import DuplicatePluginError, UnknownPluginError
from txscales.interfaces import IBalancerFactory, IPartitionerFactory


def findPlugin(interface: Type[Any], name: str, what: str, key: str = "name") -> Any:
    """
    Find the one plugin providing C{interface} whose C{name} (or other
    attribute C{key}) is C{name}.

    @param interface: the interface the plugins provide.
    @param name: the name asked for.
    @param what: what the plugins are, for error messages ("balancer").
    @param key: the plugins' attribute that holds their name.
    @return: the plugin.
    @raise UnknownPluginError: when none has that name.
    @raise DuplicatePluginError: when several have it.
    """
    found = [p for p in getPlugins(interface) if getattr(p, key) == name]
    if not found:
        known = sorted(getattr(p, key) for p in getPlugins(interface))
        raise UnknownPluginError("no %s named %r (known: %s)" % (what, name, ", ".join(known)))
    if len(found) > 1:
        raise DuplicatePluginError("%d %s plugins are named %r" % (len(found), what, name))
    return found[0]


def balancerFactory(name: str) -> Any:
    """
    @param name: a balancer's name, e.g. C{"p2c"}.
    @return: the L{IBalancerFactory} named C{name}.
    """
    return findPlugin(IBalancerFactory, name, "balancer")


def partitionerFactory(name: str) -> Any:
    """
    @param name: a Kafka partitioner's name, e.g. C{"murmur2"}.
    @return: the L{IPartitionerFactory} named C{name}.
    """
    return findPlugin(IPartitionerFactory, name, "partitioner")
