"""
The demo service: C{TestService} (see C{TestService.thrift}), whose
C{query(x)} answers C{x + x} like Finagle's end-to-end test service.

The generated code is in L{txscales.demo.gen}; the handler in
L{txscales.demo.handler}; the client of C{twistd txscales demo-client} is
C{DemoClientService}; L{txscales.demo.asyncclient} calls the service from
C{async def} code.  This package imports no Twisted until
C{DemoClientService} is used, so other Thrift runtimes can load the
generated code.
"""

__all__ = ["DemoClientService"]


def __getattr__(name):
    if name == "DemoClientService":
        from txscales.demo._client import DemoClientService

        return DemoClientService
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
