"""``Entity`` (Feast's ``feast.entity.Entity``)."""

from typing import Dict, List, Optional

from larder.value_type import ValueType


class Entity:
    """An entity, identified by its join key: ``Entity(name="driver", join_keys=["driver_id"])``.

    ``value_type`` may be omitted: ``larder apply`` infers it from the views' schema or the
    source column, as Feast does.
    """

    def __init__(
        self,
        *,
        name: str,
        join_keys: Optional[List[str]] = None,
        value_type: Optional[ValueType] = None,
        description: str = "",
        tags: Optional[Dict[str, str]] = None,
        owner: str = "",
        join_key: Optional[str] = None,
    ):
        self.name = name
        if join_keys is None:
            join_keys = [join_key] if join_key else [name]
        if len(join_keys) != 1:
            raise ValueError(f"Entity {name!r}: exactly one join key is supported, got {join_keys}")
        self.join_keys = list(join_keys)
        self.join_key = self.join_keys[0]
        if value_type is not None and not isinstance(value_type, ValueType):
            raise TypeError(f"Entity {name!r}: value_type must be a ValueType, got {value_type!r}")
        self.value_type = None if value_type in (None, ValueType.UNKNOWN) else value_type
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    def __repr__(self):
        return f"Entity(name={self.name!r}, join_keys={self.join_keys!r})"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "join_keys": self.join_keys,
            "value_type": self.value_type.name if self.value_type else None,
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }
