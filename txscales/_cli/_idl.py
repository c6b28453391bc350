"""
The services and methods of a Thrift IDL file, loaded at run time by
thriftpy2 (C{txscales[idl]}).
"""

from typing import Any, Dict, List, Optional, Tuple

from twisted.python.usage import UsageError

from txscales._cli._json import Type, defaultText, fields, typeName


def loadIdl(path: str) -> Any:
    """
    @param path: a C{.thrift} file.
    @return: the module thriftpy2 loads from it (L{txscales.thrift.loadIdl}).
    @raise UsageError: when thriftpy2 is missing or cannot load the file.
    """
    from txscales.errors import IdlError, MissingExtraError
    from txscales.thrift import loadIdl as load

    try:
        return load(path)
    except (IdlError, MissingExtraError) as e:
        raise UsageError("--idl: %s" % (e,))


def services(module: Any) -> Dict[str, type]:
    """
    @param module: a module loaded by L{loadIdl}.
    @return: its services by name, in declaration order.
    """
    from txscales.thrift import idlServices

    return idlServices(module)


class Method:
    """
    One method of a thriftpy2 service.

    @ivar service: the thriftpy2 service class.
    @ivar name: the method's name.
    @ivar argsClass: its C{<name>_args} class.
    @ivar oneway: whether it is one-way.
    @ivar returns: the type it returns, or None for void.
    @ivar exceptions: C{(id, name, exception class)} of each declared
        exception.
    """

    def __init__(self, service: type, name: str) -> None:
        self.service = service
        self.name = name
        self.argsClass = getattr(service, name + "_args")
        result = getattr(service, name + "_result")
        self.oneway = bool(getattr(result, "oneway", False))
        self.returns: Optional[Type] = None
        self.exceptions: List[Tuple[int, str, type]] = []
        for fieldId, fieldName, kind, _ in fields(result):
            if fieldId == 0:
                self.returns = kind
            else:
                self.exceptions.append((fieldId, fieldName, kind[1]))

    @property
    def qualifiedName(self) -> str:
        """
        C{SERVICE.METHOD}.
        """
        return "%s.%s" % (self.service.__name__, self.name)

    def describe(self) -> str:
        """
        @return: the method on one line, as the IDL declares it:
            C{string S.query(1: string x) throws (1: Oops oops)}.
        """
        defaults = dict(self.argsClass.default_spec)
        arguments = []
        for fieldId, name, kind, required in fields(self.argsClass):
            text = "%d: %s%s %s" % (fieldId, "required " if required else "", typeName(kind), name)
            default = defaultText(kind, defaults.get(name))
            if default is not None:
                text += " = " + default
            arguments.append(text)
        line = "%s%s %s(%s)" % (
            "oneway " if self.oneway else "",
            "void" if self.returns is None else typeName(self.returns),
            self.qualifiedName,
            ", ".join(arguments),
        )
        if self.exceptions:
            line += " throws (%s)" % (", ".join("%d: %s %s" % (i, cls.__name__, n) for i, n, cls in self.exceptions),)
        return line


def methods(service: type) -> List[Method]:
    """
    @return: the methods of a thriftpy2 service, its own and then those it
        extends, in declaration order.
    """
    return [Method(service, name) for name in service.thrift_services]  # type: ignore[attr-defined]


def findService(module: Any, name: str) -> type:
    """
    @param module: a module loaded by L{loadIdl}.
    @return: its service C{name}.
    @raise UsageError: naming the services it has, when it has no such one.
    """
    from txscales.errors import IdlError
    from txscales.thrift import idlService

    try:
        return idlService(module, name)
    except IdlError as e:
        raise UsageError(str(e))


def findMethod(module: Any, name: str) -> Method:
    """
    @param module: a module loaded by L{loadIdl}.
    @param name: C{SERVICE.METHOD}, or C{METHOD} when the IDL has one
        service.
    @raise UsageError: naming what the IDL has, when there is no such
        method.
    """
    found = services(module)
    serviceName, dot, methodName = name.rpartition(".")
    if not dot:
        if len(found) != 1:
            raise UsageError(
                "%s: name the service too, SERVICE.METHOD (services: %s)" % (name, ", ".join(found) or "none")
            )
        serviceName = next(iter(found))
    service = findService(module, serviceName)
    names = service.thrift_services  # type: ignore[attr-defined]
    if methodName not in names:
        raise UsageError("%s has no method %s (methods: %s)" % (serviceName, methodName, ", ".join(names)))
    return Method(service, methodName)
