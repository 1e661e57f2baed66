"""Data sources (Feast's ``feast.data_source``): ``PushSource``, ``RequestSource``; the file
source lives in ``larder.infra.offline_stores.file_source`` as in Feast."""

import enum
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


class KafkaSource(DataSource):
    """Feast's ``KafkaSource``: a topic of JSON events that Larder's stream workers consume
    (``larder serve`` or ``larder stream``); ``batch_source`` receives the offline copy."""

    def __init__(self, *, name: str, timestamp_field: str, message_format=None, topic: str = "",
                 bootstrap_servers: Optional[str] = None, kafka_bootstrap_servers: Optional[str] = None,
                 batch_source: Optional[DataSource] = None, created_timestamp_column: str = "",
                 field_mapping: Optional[Dict[str, str]] = None, watermark_delay_threshold=None,
                 description: str = "", tags=None, owner: str = ""):
        super().__init__(name=name, description=description, tags=tags, owner=owner)
        servers = bootstrap_servers or kafka_bootstrap_servers
        if not servers:
            raise ValueError(f"KafkaSource {name!r} needs bootstrap_servers")
        if not topic:
            raise ValueError(f"KafkaSource {name!r} needs a topic")
        if batch_source is None:
            raise ValueError(f"KafkaSource {name!r} needs a batch_source (where Larder keeps the offline copy)")
        self.bootstrap_servers = servers
        self.topic = topic
        self.timestamp_field = timestamp_field
        self.created_timestamp_column = created_timestamp_column
        self.field_mapping = dict(field_mapping or {})
        self.batch_source = batch_source
        self.message_format = message_format
        self.watermark_delay_threshold = watermark_delay_threshold

    def to_dict(self) -> dict:
        fmt = self.message_format
        kind = type(fmt).__name__ if fmt is not None else "JsonFormat"
        delay = self.watermark_delay_threshold
        return {
            "type": "kafka", **self._meta(),
            "bootstrap_servers": self.bootstrap_servers,
            "topic": self.topic,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column or None,
            "field_mapping": self.field_mapping,
            "batch_source": self.batch_source.name,
            "message_format": "json" if kind == "JsonFormat" else kind,
            "schema_json": getattr(fmt, "schema_json", "") or "",
            "watermark_delay_seconds": int(delay.total_seconds()) if delay is not None else None,
        }


class PushMode(enum.Enum):
    """Feast's ``PushMode`` (``feast.data_source.PushMode``): where ``FeatureStore.push`` writes."""

    ONLINE = "online"
    OFFLINE = "offline"
    ONLINE_AND_OFFLINE = "online_and_offline"
