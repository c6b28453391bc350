"""
Find txscales plugins by name.
"""

from twisted.plugin import getPlugins

from txscales.errors import DuplicatePluginError, UnknownPluginError
from txscales.interfaces import IBalancerFactory


def findPlugin(interface, name, what, key="name"):
    """
    Find the one plugin providing C{interface} whose C{name} (or other
    attribute C{key}) is C{name}.

    @param what: what the plugins are, for error messages ("balancer").
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


def balancerFactory(name):
    """
    @return: the L{IBalancerFactory} named C{name}.
    """
    return findPlugin(IBalancerFactory, name, "balancer")
