"""
JSON to Thrift values and back, by the types of a thriftpy2-loaded IDL:
plain Python, no Twisted, no thriftpy2 import.

A thriftpy2 struct class has a C{thrift_spec} dict C{{id: (ttype, name,
required)}}, or C{{id: (ttype, name, type argument, required)}} for
structs (the class), enums (the class, on an i32), lists and sets (the
element's type) and maps (the key's and value's types); a type argument is
a ttype, or C{(ttype, type argument)}.

The mapping (both ways):
  - bool, integers, double and string: JSON's own;
  - binary: a base64 string (RFC 4648, with padding);
  - an enum: its name, or its number on input;
  - a struct (or exception): an object by field name; unset fields are
    left out;
  - list and set: an array (a set's elements sorted when they can be);
  - map: an object whose member names are the keys (strings as they are,
    binary in base64, enums by name, numbers and booleans as their JSON
    text, e.g. C{{"1": "a"}}); a map whose keys are structs or containers
    is an array of C{[key, value]} pairs.  Either form is read for any map.
"""

import base64
import binascii
import json
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.python.usage import UsageError

from txscales.errors import ApplicationError

# thriftpy2's TType codes.
BOOL = 2
BYTE = 3
DOUBLE = 4
I16 = 6
I32 = 8
I64 = 10
STRING = 11
STRUCT = 12
MAP = 13
SET = 14
LIST = 15
BINARY = 18

_BITS = {BYTE: 8, I16: 16, I32: 32, I64: 64}
_NAMES = {
    BOOL: "bool",
    BYTE: "i8",
    DOUBLE: "double",
    I16: "i16",
    I32: "i32",
    I64: "i64",
    STRING: "string",
    BINARY: "binary",
}
_CONTAINERS = (LIST, SET, MAP)

Type = Tuple[int, Any]
"""A ttype and its type argument (None for the scalars)."""


def splitType(spec: Any) -> Type:
    """
    @param spec: a type argument of a thriftpy2 spec: a ttype, or C{(ttype,
        type argument)}.
    @return: C{(ttype, type argument or None)}.
    """
    if isinstance(spec, tuple):
        return spec[0], spec[1]
    return spec, None


def fields(cls: type) -> List[Tuple[int, str, Type, bool]]:
    """
    @param cls: a thriftpy2 struct, exception or args class.
    @return: C{(id, name, type, required)} of each of its fields, in
        declaration order.
    """
    found = []
    for fieldId, spec in cls.thrift_spec.items():  # type: ignore[attr-defined]
        if len(spec) == 3:
            found.append((fieldId, spec[1], (spec[0], None), spec[2]))
        else:
            found.append((fieldId, spec[1], (spec[0], spec[2]), spec[3]))
    return found


def isEnum(kind: Type) -> bool:
    """
    @return: whether C{kind} is an enum (an i32 with its enum class).
    """
    return kind[0] == I32 and kind[1] is not None


def typeName(kind: Type) -> str:
    """
    @param kind: C{(ttype, type argument)}.
    @return: the type as the IDL writes it (typedefs resolved).
    """
    ttype, arg = kind
    if ttype == STRUCT or isEnum(kind):
        return str(arg.__name__)
    if ttype in (LIST, SET):
        return "%s<%s>" % ("list" if ttype == LIST else "set", typeName(splitType(arg)))
    if ttype == MAP:
        return "map<%s, %s>" % (typeName(splitType(arg[0])), typeName(splitType(arg[1])))
    return _NAMES.get(ttype, "ttype %d" % (ttype,))


def _bad(where: str, expected: str, value: Any) -> UsageError:
    return UsageError("%s: expected %s, not %s" % (where, expected, json.dumps(value)[:80]))


def _decodeBase64(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _bad(where, "base64 (binary)", value)


def _enumFromJson(enum: Any, value: Any, where: str) -> int:
    names = enum._NAMES_TO_VALUES
    if isinstance(value, str) and value in names:
        return int(names[value])
    if isinstance(value, int) and not isinstance(value, bool) and value in enum._VALUES_TO_NAMES:
        return value
    raise _bad(where, "%s: one of %s" % (enum.__name__, ", ".join(names)), value)


def fromJson(kind: Type, value: Any, where: str) -> Any:
    """
    @param kind: the Thrift type of C{value}.
    @param value: a JSON value (as C{json.loads} gives it).
    @param where: where C{value} is, for errors (C{"query: x"}).
    @return: the value thriftpy2 takes for that type.
    @raise UsageError: when C{value} does not fit the type.
    """
    ttype, arg = kind
    if ttype == BOOL:
        if value is True or value is False:
            return value
        raise _bad(where, "true or false", value)
    if ttype in _BITS:
        if arg is not None:
            return _enumFromJson(arg, value, where)
        bits = _BITS[ttype]
        if isinstance(value, int) and not isinstance(value, bool) and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return value
        raise _bad(where, "an integer of %d bits (%s)" % (bits, _NAMES[ttype]), value)
    if ttype == DOUBLE:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _bad(where, "a number (double)", value)
    if ttype == STRING:
        if isinstance(value, str):
            return value
        raise _bad(where, "a string", value)
    if ttype == BINARY:
        if isinstance(value, str):
            return _decodeBase64(value, where)
        raise _bad(where, "a base64 string (binary)", value)
    if ttype == STRUCT:
        return structFromJson(arg, value, where)
    if ttype in (LIST, SET):
        if not isinstance(value, list):
            raise _bad(where, "an array (%s)" % (typeName(kind),), value)
        element = splitType(arg)
        items = [fromJson(element, item, "%s[%d]" % (where, i)) for i, item in enumerate(value)]
        return _set(items) if ttype == SET else items
    if ttype == MAP:
        return _mapFromJson(arg, value, where)
    raise UsageError("%s: the type %s is not supported" % (where, typeName(kind)))


def _set(items: List[Any]) -> Any:
    try:
        return set(items)
    except TypeError:
        # Elements Python cannot hash (structs): a list, which thriftpy2
        # writes as the set's elements.
        return items


def _mapFromJson(arg: Any, value: Any, where: str) -> Dict[Any, Any]:
    keyKind, valueKind = splitType(arg[0]), splitType(arg[1])
    if isinstance(value, dict):
        pairs = [
            (_keyFromText(keyKind, key, where), item, "%s[%s]" % (where, json.dumps(key))) for key, item in value.items()
        ]
    elif isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        pairs = [
            (fromJson(keyKind, p[0], "%s[%d] key" % (where, i)), p[1], "%s[%d] value" % (where, i))
            for i, p in enumerate(value)
        ]
    else:
        raise _bad(where, "an object, or an array of [key, value] pairs (%s)" % (typeName((MAP, arg)),), value)
    result = {}
    for key, item, itemWhere in pairs:
        try:
            result[key] = fromJson(valueKind, item, itemWhere)
        except TypeError:
            raise UsageError("%s: a key Python cannot hash" % (itemWhere,))
    return result


def _keyFromText(kind: Type, key: str, where: str) -> Any:
    where = "%s key %s" % (where, json.dumps(key))
    if kind[0] == STRING:
        return key
    if kind[0] == BINARY:
        return _decodeBase64(key, where)
    if isEnum(kind) and key in kind[1]._NAMES_TO_VALUES:
        return fromJson(kind, key, where)
    try:
        parsed = json.loads(key)
    except ValueError:
        raise _bad(where, "the JSON text of a %s" % (typeName(kind),), key)
    return fromJson(kind, parsed, where)


def structFromJson(cls: type, value: Any, where: str) -> Any:
    """
    @param cls: a thriftpy2 struct class.
    @param value: a JSON object by field name (null fields are unset).
    @return: a C{cls} instance.
    @raise UsageError: for an unknown field, a missing required one, or a
        value that does not fit its field.
    """
    if not isinstance(value, dict):
        raise _bad(where, "an object (%s)" % (cls.__name__,), value)
    return cls(**_fieldsFromJson(cls, value, where))


def _fieldsFromJson(cls: type, value: Dict[str, Any], where: str, owner: Optional[str] = None) -> Dict[str, Any]:
    """
    @param owner: the arguments' method (None for a struct's fields).
    """
    noun = "argument" if owner else "field"
    owner = owner or cls.__name__
    prefix = "" if owner == where else where + ": "
    known = {name: (kind, required) for _, name, kind, required in fields(cls)}
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise UsageError(
            "%s%s has no %s %s (its %ss: %s)"
            % (prefix, owner, noun, ", ".join(unknown), noun, ", ".join(known) or "none")
        )
    missing = [name for name, (_, required) in known.items() if required and value.get(name) is None]
    if missing:
        raise UsageError("%s%s's required %s %s is missing" % (prefix, owner, noun, ", ".join(missing)))
    return {
        name: fromJson(known[name][0], item, "%s.%s" % (where, name))
        for name, item in value.items()
        if item is not None
    }


def argumentsFromJson(argsClass: type, value: Any, where: str) -> Dict[str, Any]:
    """
    @param argsClass: a method's thriftpy2 C{<method>_args} class.
    @param value: the arguments: a JSON object by name, an array in
        declaration order (null, or a shorter array, leaves an argument
        unset), or None for none.
    @param where: the method, for errors.
    @return: the arguments by name, as thriftpy2 values.
    @raise UsageError: when C{value} does not fit the method.
    """
    if value is None:
        value = {}
    names = [name for _, name, _, _ in fields(argsClass)]
    if isinstance(value, list):
        if len(value) > len(names):
            raise UsageError(
                "%s takes %d argument%s (%s), not %d"
                % (where, len(names), "" if len(names) == 1 else "s", ", ".join(names), len(value))
            )
        value = dict(zip(names, value))
    if not isinstance(value, dict):
        raise _bad(where, "arguments as an object by name or an array in order", value)
    return _fieldsFromJson(argsClass, value, where, where)


def toJson(kind: Type, value: Any) -> Any:
    """
    @param kind: the Thrift type of C{value}.
    @param value: a value thriftpy2 decoded.
    @return: it as a JSON value (for C{json.dumps}).
    """
    ttype, arg = kind
    if value is None:
        return None
    if isEnum(kind):
        return arg._VALUES_TO_NAMES.get(value, value)
    if ttype == BINARY:
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, bytes):
        # A string that is not UTF-8 reaches here as bytes.
        return value.decode("utf-8", "backslashreplace")
    if ttype == STRUCT:
        return structToJson(value)
    if ttype in (LIST, SET):
        element = splitType(arg)
        items = [toJson(element, item) for item in value]
        return _sorted(items) if ttype == SET else items
    if ttype == MAP:
        return _mapToJson(arg, value)
    return value


def _sorted(items: List[Any]) -> List[Any]:
    try:
        return sorted(items)
    except TypeError:
        return items


def _mapToJson(arg: Any, value: Dict[Any, Any]) -> Any:
    keyKind, valueKind = splitType(arg[0]), splitType(arg[1])
    if keyKind[0] in _CONTAINERS or keyKind[0] == STRUCT:
        return [[toJson(keyKind, key), toJson(valueKind, item)] for key, item in value.items()]
    textOf: Callable[[Any], str] = json.dumps
    if keyKind[0] in (STRING, BINARY) or isEnum(keyKind):
        textOf = str
    return {textOf(toJson(keyKind, key)): toJson(valueKind, item) for key, item in value.items()}


def structToJson(value: Any) -> Dict[str, Any]:
    """
    @param value: a thriftpy2 struct or exception instance.
    @return: its set fields as a JSON object, in declaration order.
    """
    result = {}
    for _, name, kind, _ in fields(type(value)):
        item = getattr(value, name, None)
        if item is not None:
            result[name] = toJson(kind, item)
    return result


def exceptionToJson(value: Any) -> Dict[str, Any]:
    """
    @param value: a declared exception (a thriftpy2 exception instance).
    @return: C{{"exception": its type's name, "fields": its fields}}.
    """
    return {"exception": type(value).__name__, "fields": structToJson(value)}


def applicationExceptionToJson(error: ApplicationError) -> Dict[str, Any]:
    """
    @param error: the server's C{TApplicationException}, as txscales
        raises it.
    @return: C{{"exception": "TApplicationException", "fields": {"message":
        ..., "type": ...}}}, as a declared exception prints.
    """
    return {"exception": "TApplicationException", "fields": {"message": error.message, "type": error.type}}


def defaultText(kind: Type, value: Any) -> Optional[str]:
    """
    @return: a field's default value as JSON text, or None without one.
    """
    if value is None:
        return None
    return json.dumps(toJson(kind, value))
