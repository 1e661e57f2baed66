"""``FileSource`` (Feast's ``feast.infra.offline_stores.file_source.FileSource``)."""

from typing import Dict, Optional

from larder.data_source import DataSource


class FileSource(DataSource):
    """Parquet data: ``FileSource(path="data/driver_stats.parquet", timestamp_field="event_timestamp")``.

    Relative paths resolve against the feature repo directory.
    """

    def __init__(
        self,
        *,
        path: str,
        name: Optional[str] = "",
        event_timestamp_column: Optional[str] = "",
        file_format=None,
        created_timestamp_column: Optional[str] = "",
        field_mapping: Optional[Dict[str, str]] = None,
        s3_endpoint_override: Optional[str] = None,
        description: Optional[str] = "",
        tags: Optional[Dict[str, str]] = None,
        owner: Optional[str] = "",
        timestamp_field: Optional[str] = "",
    ):
        super().__init__(name=name or path, description=description or "", tags=tags, owner=owner or "")
        self.path = path
        self.timestamp_field = timestamp_field or event_timestamp_column or ""
        if not self.timestamp_field:
            raise ValueError(f"FileSource {self.name!r} needs a timestamp_field")
        self.created_timestamp_column = created_timestamp_column or None
        self.field_mapping = dict(field_mapping or {})
        self.file_format = file_format

    def to_dict(self) -> dict:
        return {
            "type": "file",
            **self._meta(),
            "path": self.path,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
            "field_mapping": self.field_mapping,
        }


class FileLoggingDestination:
    """Feast's ``FileLoggingDestination(path=...)`` for a feature service's ``LoggingConfig``:
    the directory of the Parquet log files (relative to the repo)."""

    def __init__(self, *, path: str, s3_endpoint_override: str = "", partition_by=None):
        self.path = path
        self.s3_endpoint_override = s3_endpoint_override
        self.partition_by = list(partition_by or [])

    def __repr__(self):
        return f"FileLoggingDestination(path={self.path!r})"
