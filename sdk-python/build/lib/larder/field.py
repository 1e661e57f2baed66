"""``Field``: a named, typed column (Feast's ``feast.field.Field``)."""

from typing import Dict, Optional

from larder.types import FeastType, from_value_type
from larder.value_type import ValueType


class Field:
    """A schema field: ``Field(name="conv_rate", dtype=Float32)``."""

    def __init__(self, *, name: str, dtype: FeastType, description: str = "", tags: Optional[Dict[str, str]] = None,
                 vector_index: bool = False, vector_length: int = 0, vector_search_metric: Optional[str] = None):
        if isinstance(dtype, ValueType):
            dtype = from_value_type(dtype)
        if not isinstance(dtype, FeastType):
            raise TypeError(f"Field {name!r}: dtype must be a type from larder.types, got {dtype!r}")
        self.name = name
        self.dtype = dtype
        self.description = description
        self.tags = dict(tags or {})
        # Feast's vector-search declaration, kept in the registry.
        self.vector_index = bool(vector_index)
        self.vector_length = int(vector_length or 0)
        self.vector_search_metric = vector_search_metric

    def __repr__(self):
        return f"Field(name={self.name!r}, dtype={self.dtype!r})"

    def __eq__(self, other):
        return isinstance(other, Field) and (self.name, self.dtype) == (other.name, other.dtype)

    def __hash__(self):
        return hash((self.name, self.dtype))

    def to_dict(self) -> dict:
        d = {"name": self.name, "dtype": self.dtype.to_value_type().name}
        if self.description:
            d["description"] = self.description
        if self.tags:
            d["tags"] = self.tags
        if self.vector_index:
            d["vector_index"] = True
            if self.vector_length:
                d["vector_length"] = self.vector_length
            if self.vector_search_metric:
                d["vector_search_metric"] = self.vector_search_metric
        return d
