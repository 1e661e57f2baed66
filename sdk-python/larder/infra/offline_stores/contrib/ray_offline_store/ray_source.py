"""``RaySource`` (Feast's ``feast.infra.offline_stores.contrib.ray_offline_store.ray_source.RaySource``)."""

from typing import Any, Dict, Optional

from larder.infra.offline_stores.file_source import FileSource


class RaySource(FileSource):
    """Feast's Ray source. With ``reader_type="parquet"`` it is a Parquet file source (Larder's
    offline engine reads it, ``offline_store: {type: ray}`` included); other readers are refused."""

    def __init__(
        self,
        *,
        name: str,
        reader_type: str,
        path: Optional[str] = None,
        reader_options: Optional[Dict[str, Any]] = None,
        created_timestamp_column: Optional[str] = None,
        field_mapping: Optional[Dict[str, str]] = None,
        description: Optional[str] = "",
        tags: Optional[Dict[str, str]] = None,
        owner: Optional[str] = "",
        timestamp_field: Optional[str] = None,
    ):
        if reader_type != "parquet" or not path:
            raise ValueError(f"RaySource {name!r}: reader_type {reader_type!r} is not supported "
                             "(Larder reads Parquet: reader_type='parquet' with a path)")
        super().__init__(name=name, path=path, timestamp_field=timestamp_field or "",
                         created_timestamp_column=created_timestamp_column or "", field_mapping=field_mapping,
                         description=description, tags=tags, owner=owner)
        self.reader_type = reader_type
        self.reader_options = dict(reader_options or {})
