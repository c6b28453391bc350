"""
Thrift services loaded at run time by thriftpy2, without code generation:
plain Python, no Twisted.

thriftpy2 (C{thriftpy2.load("x.thrift").TestService}) describes each struct
with a C{thrift_spec} dict, C{{id: (ttype, name, [type args,] required)}},
where Apache Thrift's generated code has a tuple indexed by field id,
C{(id, ttype, name, type args, default)}.  L{runtimeMethods} turns the
first into the second, keeping thriftpy2's own classes as the struct
classes: Apache Thrift's C{fastbinary} then encodes thriftpy2 objects and
decodes into them (it builds a nested struct or exception as C{cls(**fields)},
which thriftpy2's generated C{__init__} takes), so calls and replies take the
path and the bytes of generated code.

thriftpy2 itself is imported only by L{loadIdl}, the optional extra
C{txscales[idl]}; a service it loaded is recognised by its shape.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from txscales.errors import IdlError, MissingExtraError, UnsupportedError

# thriftpy2's TType values (thriftpy2.thrift.TType): Apache Thrift's, plus
# BINARY, a string of bytes.
_BOOL, _BYTE, _DOUBLE, _I16, _I32, _I64 = 2, 3, 4, 6, 8, 10
_STRING, _STRUCT, _MAP, _SET, _LIST, _BINARY = 11, 12, 13, 14, 15, 18
_SCALARS = frozenset([_BOOL, _BYTE, _DOUBLE, _I16, _I32, _I64])

RuntimeMethod = Tuple[str, type, tuple, Optional[type], Optional[tuple], List[str]]
"""
One method of a runtime service: (name, args class, args spec, result
class or None for a one-way method, result spec or None, argument names in
IDL order).
"""


def isRuntimeService(service: object) -> bool:
    """
    @return: whether C{service} is a service class loaded by thriftpy2 (it
        lists its methods in C{thrift_services}), not a generated C{Iface}.
    """
    return isinstance(service, type) and isinstance(getattr(service, "thrift_services", None), list)


def runtimeMethods(service: type) -> List[RuntimeMethod]:
    """
    Describe the methods of a service loaded by thriftpy2, with Apache
    Thrift style C{thrift_spec} tuples.

    @param service: a service class, as L{isRuntimeService} recognises.
    @raise UnsupportedError: for a field type or id Apache Thrift's
        encoder cannot take (a negative field id, say).
    """
    structs: Dict[type, list] = {}
    methods: List[RuntimeMethod] = []
    for name in service.thrift_services:  # type: ignore[attr-defined]
        argsClass = getattr(service, name + "_args")
        resultClass = getattr(service, name + "_result")
        argsSpec = _structArgs(argsClass, structs)[1]
        argNames = [field[1] for field in argsClass.thrift_spec.values()]
        if getattr(resultClass, "oneway", False):
            methods.append((name, argsClass, argsSpec, None, None, argNames))
        else:
            methods.append((name, argsClass, argsSpec, resultClass, _structArgs(resultClass, structs)[1], argNames))
    return methods


def _structArgs(cls: type, structs: Dict[type, list]) -> list:
    """
    @return: the Apache Thrift type arguments of struct C{cls}, C{[cls,
        thrift_spec]}: made once per class, so that a recursive struct
        refers to itself, as generated code's C{fix_spec} does.
    """
    typeArgs = structs.get(cls)
    if typeArgs is None:
        typeArgs = structs[cls] = [cls, None]
        fields: Dict[int, tuple] = cls.thrift_spec  # type: ignore[attr-defined]
        defaults = dict(getattr(cls, "default_spec", ()))
        spec: List[Optional[tuple]] = [None] * (max(fields, default=-1) + 1)
        for fid, field in fields.items():
            if fid < 0:
                raise UnsupportedError("%s.%s: negative field id %d" % (cls.__name__, field[1], fid))
            ttype, args = _typeArgs(field[0], field[2] if len(field) == 4 else None, structs)
            spec[fid] = (fid, ttype, field[1], args, defaults.get(field[1]))
        typeArgs[1] = tuple(spec)
    return typeArgs


def _typeArgs(ttype: int, args: Any, structs: Dict[type, list]) -> Tuple[int, Any]:
    """
    @param ttype: a thriftpy2 field or element type.
    @param args: its thriftpy2 type arguments: the class of a struct or an
        enum, the element of a list or set, (key, value) of a map.
    @return: the Apache Thrift (type, type arguments).
    """
    if ttype in _SCALARS:
        # An enum (a class as args) is an i32 to generated code too.
        return ttype, None
    if ttype == _STRING:
        return _STRING, "UTF8"
    if ttype == _BINARY:
        return _STRING, "BINARY"
    if ttype == _STRUCT:
        return _STRUCT, _structArgs(args, structs)
    if ttype in (_LIST, _SET):
        return ttype, _typeArgs(*_element(args), structs) + (False,)
    if ttype == _MAP:
        return _MAP, _typeArgs(*_element(args[0]), structs) + _typeArgs(*_element(args[1]), structs) + (False,)
    raise UnsupportedError("Thrift type %r is not supported" % (ttype,))


def _element(spec: Any) -> Tuple[int, Any]:
    """
    @return: (type, type arguments) of a thriftpy2 element spec: a type, or
        a (type, arguments) pair.
    """
    if isinstance(spec, tuple):
        return spec[0], spec[1]
    return spec, None


def loadIdl(path: str, moduleName: Optional[str] = None, includeDirs: Optional[Sequence[str]] = None) -> Any:
    """
    Load a Thrift IDL file with thriftpy2 (the optional extra
    C{txscales[idl]}).  Its services can be given wherever a generated
    C{Iface} is taken: C{ThriftMux.newClient(loadIdl("x.thrift").MyService,
    dest)}.

    @param path: the C{.thrift} file.
    @param moduleName: the name to register the module under in
        C{sys.modules} (it must end with C{_thrift}), so that its objects
        can be pickled; by default it is not registered.
    @param includeDirs: folders to look for its includes in.
    @return: the module thriftpy2 made: its services, structs, exceptions,
        enums and constants, by IDL name.
    @raise MissingExtraError: when thriftpy2 is not installed.
    @raise IdlError: when the file cannot be read or is not valid Thrift.
    """
    try:
        import thriftpy2
    except ImportError as e:
        raise MissingExtraError("idl", "loading a Thrift IDL file needs thriftpy2: %s" % (e,))
    try:
        return thriftpy2.load(path, module_name=moduleName, include_dirs=list(includeDirs) if includeDirs else None)
    except Exception as e:
        raise IdlError("%s: %s: %s" % (path, type(e).__name__, e)) from e


def idlServices(module: Any) -> Dict[str, type]:
    """
    @param module: a module L{loadIdl} returned.
    @return: its services, by IDL name.
    """
    return {name: value for name, value in vars(module).items() if isRuntimeService(value)}


def idlService(module: Any, name: str) -> type:
    """
    @param module: a module L{loadIdl} returned.
    @param name: the IDL name of one of its services.
    @return: that service.
    @raise IdlError: when the module has no service of that name.
    """
    services = idlServices(module)
    service = services.get(name)
    if service is None:
        raise IdlError(
            "%s defines no service %r (services: %s)"
            % (getattr(module, "__thrift_file__", module.__name__), name, ", ".join(sorted(services)) or "none")
        )
    return service
