"""
Client proxies for generated Thrift services (and those thriftpy2 loads).
"""

from typing import Any, Dict
from weakref import WeakKeyDictionary

from txscales.thrift._idl import isRuntimeService

# The classes made so far, by service interface, then by base class: saves
# making a class (~12 us by timeit) per client built; calls do not use it,
# so hotpath.py's per-call figures do not see it.  The interfaces are held
# weakly: one loaded at run time (by thriftpy2, say) is not kept alive by
# its clients' classes.
_proxyClasses: "WeakKeyDictionary[type, Dict[type, type]]" = WeakKeyDictionary()


def proxyClass(base: type, iface: type, methods: Dict[str, Any]) -> type:
    """
    Make (once per C{base} and C{iface}) a subclass of C{base} with one
    method per service method, each calling C{self._call(method, args,
    kwargs)}.

    @param methods: the service's L{txscales.thrift._codec.Method}s by name.
    """
    classes = _proxyClasses.get(iface)
    if classes is None:
        classes = _proxyClasses[iface] = {}
    cls = classes.get(base)
    if cls is None:
        namespace = {"__doc__": "A client of %s.%s; every method returns a Deferred." % (iface.__module__, iface.__qualname__)}
        for name, method in methods.items():
            namespace[name] = _makeMethod(method)
        # A generated Iface is named by its module; a thriftpy2 service
        # class by itself.
        name = iface.__name__ if isRuntimeService(iface) else iface.__module__.rpartition(".")[2]
        cls = classes[base] = type("%sClient" % (name,), (base,), namespace)
    return cls


def _makeMethod(method):
    def call(self, *args, **kwargs):
        return self._call(method, args, kwargs)

    call.__name__ = method.name
    call.__doc__ = "Call C{%s}(%s); return a Deferred of its result." % (method.name, ", ".join(method.argNames))
    return call
