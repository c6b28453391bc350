"""
The demo service: C{TestService} (see C{TestService.thrift}), whose
C{query(x)} answers C{x + x} like Finagle's end-to-end test service.

The generated code is in L{txscales.demo.gen}; the handler in
L{txscales.demo.handler}.  This package imports no Twisted, so other Thrift
runtimes can load the generated code.
"""
