"""Feast's type system (``feast.types``): ``Int64``, ``Float32``, ``Array(String)``..."""

from larder.value_type import ValueType


class FeastType:
    """Base of Larder's (Feast's) field types."""

    def to_value_type(self) -> ValueType:
        raise NotImplementedError

    def __eq__(self, other):
        return isinstance(other, FeastType) and self.to_value_type() == other.to_value_type()

    def __hash__(self):
        return hash(self.to_value_type())


class PrimitiveFeastType(FeastType):
    """A scalar type."""

    def __init__(self, name: str, value_type: ValueType):
        self.name = name
        self._value_type = value_type

    def to_value_type(self) -> ValueType:
        return self._value_type

    def __repr__(self):
        return self.name

    __str__ = __repr__


Invalid = PrimitiveFeastType("Invalid", ValueType.UNKNOWN)
Bytes = PrimitiveFeastType("Bytes", ValueType.BYTES)
String = PrimitiveFeastType("String", ValueType.STRING)
Bool = PrimitiveFeastType("Bool", ValueType.BOOL)
Int32 = PrimitiveFeastType("Int32", ValueType.INT32)
Int64 = PrimitiveFeastType("Int64", ValueType.INT64)
Float32 = PrimitiveFeastType("Float32", ValueType.FLOAT)
Float64 = PrimitiveFeastType("Float64", ValueType.DOUBLE)
UnixTimestamp = PrimitiveFeastType("UnixTimestamp", ValueType.UNIX_TIMESTAMP)
Map = PrimitiveFeastType("Map", ValueType.MAP)
Json = PrimitiveFeastType("Json", ValueType.JSON)


class Struct(FeastType):
    """Named, typed fields, e.g. ``Struct({"name": String, "age": Int64})`` (Feast's ``Struct``).
    Values are served as JSON objects."""

    def __init__(self, fields):
        if not isinstance(fields, dict) or not fields:
            raise ValueError("Struct needs a non-empty dict of field names to types")
        self.fields = dict(fields)

    def to_value_type(self) -> ValueType:
        return ValueType.STRUCT

    def __repr__(self):
        return f"Struct({self.fields!r})"

    __str__ = __repr__

_LIST_OF = {
    ValueType.BYTES: ValueType.BYTES_LIST,
    ValueType.STRING: ValueType.STRING_LIST,
    ValueType.INT32: ValueType.INT32_LIST,
    ValueType.INT64: ValueType.INT64_LIST,
    ValueType.DOUBLE: ValueType.DOUBLE_LIST,
    ValueType.FLOAT: ValueType.FLOAT_LIST,
    ValueType.BOOL: ValueType.BOOL_LIST,
    ValueType.UNIX_TIMESTAMP: ValueType.UNIX_TIMESTAMP_LIST,
    ValueType.MAP: ValueType.MAP_LIST,
    ValueType.JSON: ValueType.JSON_LIST,
    ValueType.STRUCT: ValueType.STRUCT_LIST,
}


class Array(FeastType):
    """A list of a primitive type, e.g. ``Array(Float32)``."""

    def __init__(self, base_type: FeastType):
        if not isinstance(base_type, (PrimitiveFeastType, Struct)) or base_type.to_value_type() not in _LIST_OF:
            raise ValueError(f"Array of {base_type!r} is not supported")
        self.base_type = base_type

    def to_value_type(self) -> ValueType:
        return _LIST_OF[self.base_type.to_value_type()]

    def __repr__(self):
        return f"Array({self.base_type!r})"

    __str__ = __repr__


_BY_VALUE_TYPE = {t.to_value_type(): t for t in [Bytes, String, Bool, Int32, Int64, Float32, Float64, UnixTimestamp,
                                                 Map, Json]}


def from_value_type(value_type: ValueType) -> FeastType:
    """The Feast type of a ``ValueType``."""
    if value_type in _BY_VALUE_TYPE:
        return _BY_VALUE_TYPE[value_type]
    for base, lst in _LIST_OF.items():
        if lst == value_type and base in _BY_VALUE_TYPE:
            return Array(_BY_VALUE_TYPE[base])
    raise ValueError(f"no Feast type for {value_type}")
