"""Feast 0.2x's ``Feature(name=..., dtype=ValueType.X)``, the older form of ``Field``.

Accepted as Feast accepted it (a ``DeprecationWarning`` says to use ``Field``); a view's
``features=[Feature(...)]`` becomes its schema."""

import warnings
from typing import Dict, Optional

from larder.field import Field
from larder.value_type import ValueType


class Feature(Field):
    """``Feature(name="conv_rate", dtype=ValueType.FLOAT)``."""

    def __init__(self, name: str, dtype: ValueType, labels: Optional[Dict[str, str]] = None, description: str = ""):
        warnings.warn("Feature(name=, dtype=ValueType.X) is deprecated (as in Feast): use Field(name=, dtype=Float32)",
                      DeprecationWarning, stacklevel=2)
        if not isinstance(dtype, ValueType):
            raise TypeError(f"Feature {name!r}: dtype must be a ValueType, got {dtype!r}")
        super().__init__(name=name, dtype=dtype, description=description, tags=labels)
