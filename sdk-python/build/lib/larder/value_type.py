"""Feast's ``ValueType`` enum (same names and numbers as ``feast.value_type.ValueType``)."""

import enum


class ValueType(enum.Enum):
    """Type of a feature or entity key value."""

    UNKNOWN = 0
    BYTES = 1
    STRING = 2
    INT32 = 3
    INT64 = 4
    DOUBLE = 5
    FLOAT = 6
    BOOL = 7
    UNIX_TIMESTAMP = 8
    BYTES_LIST = 11
    STRING_LIST = 12
    INT32_LIST = 13
    INT64_LIST = 14
    DOUBLE_LIST = 15
    FLOAT_LIST = 16
    BOOL_LIST = 17
    UNIX_TIMESTAMP_LIST = 18
    NULL = 19
    MAP = 20
    MAP_LIST = 21
    JSON = 32
    JSON_LIST = 33
    STRUCT = 34
    STRUCT_LIST = 35
