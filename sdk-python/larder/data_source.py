"""Data sources (Feast's ``feast.data_source``): ``PushSource``, ``RequestSource``; the file
source lives in ``larder.infra.offline_stores.file_source`` as in Feast."""

from typing import Dict, List, Optional

from larder.field import Field


class DataSource:
    """Base class of data sources."""

    name: str

    def __init__(self, *, name: str, description: str = "", tags: Optional[Dict[str, str]] = None, owner: str = ""):
        if not name:
            raise ValueError(f"{type(self).__name__} needs a name")
        self.name = name
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner

    def _meta(self) -> dict:
        return {"name": self.name, "description": self.description, "tags": self.tags, "owner": self.owner}

    def to_dict(self) -> dict:
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class PushSource(DataSource):
    """A source fed through ``POST /push``; ``batch_source`` holds its offline data."""

    def __init__(self, *, name: str, batch_source: DataSource, description: str = "", tags=None, owner: str = ""):
        super().__init__(name=name, description=description, tags=tags, owner=owner)
        if batch_source is None:
            raise ValueError(f"PushSource {name!r} needs a batch_source")
        self.batch_source = batch_source

    def to_dict(self) -> dict:
        return {"type": "push", **self._meta(), "batch_source": self.batch_source.name}


class RequestSource(DataSource):
    """Typed values that arrive with each request (inputs of on-demand feature views)."""

    def __init__(self, *, name: str, schema: List[Field], description: str = "", tags=None, owner: str = ""):
        super().__init__(name=name, description=description, tags=tags, owner=owner)
        self.schema = list(schema)

    def to_dict(self) -> dict:
        return {"type": "request", **self._meta(), "schema": [f.to_dict() for f in self.schema]}
