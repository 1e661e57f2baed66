"""Reads definitions written with the real ``feast`` package (when it is installed), so a Feast
repo can be applied to Larder unmodified. Objects are recognised by class name and module;
their attributes are Feast 0.67's."""

from typing import List, Optional, Tuple

from larder.feature_logging import logging_dict

FEAST_KINDS = {
    "Entity": "entity",
    "FileSource": "data source",
    "PostgreSQLSource": "data source",
    "RaySource": "data source",
    "PushSource": "data source",
    "KafkaSource": "data source",
    "RequestSource": "data source",
    "FeatureView": "feature view",
    "BatchFeatureView": "feature view",
    "StreamFeatureView": "feature view",
    "OnDemandFeatureView": "on-demand feature view",
    "FeatureService": "feature service",
    "LabelView": "feature view",
    "Permission": "feast object",
}

# Feast definition objects Larder keeps no record of: collected only to be reported.
FEAST_NOT_ACTED_ON = {
    "Project": "the project comes from feature_store.yaml",
    "ValidationReference": "validation references are not run",
    "SavedDataset": "saved datasets are not stored",
}


def not_acted_on(obj) -> Optional[str]:
    """Why a Feast object found in a definition file is not registered, or None for objects
    that are registered (or are not Feast's)."""
    cls = type(obj)
    if not cls.__module__.startswith("feast."):
        return None
    for klass in cls.__mro__:
        if klass.__name__ in FEAST_NOT_ACTED_ON:
            return f"{klass.__name__} {getattr(obj, 'name', '')!r}: {FEAST_NOT_ACTED_ON[klass.__name__]}"
    return None


def warnings_of(obj) -> List[str]:
    """What Larder does not act on in a registered Feast object."""
    out = []
    name = getattr(obj, "name", "")
    cls = type(obj).__name__
    config = getattr(obj, "logging_config", None)
    if config is not None:
        if logging_dict(config) is None:
            out.append(f"feature service {name!r}: logging_config with {type(config.destination).__name__} is not "
                       "stored (Larder logs to files: FileLoggingDestination)")
        else:
            out.append(f"feature service {name!r}: logging_config is registered; `larder serve` logs the features "
                       "it serves there when feature_store.yaml enables feature_server.feature_logging")
    if cls == "Permission":
        out.append(f"permission {name!r}: registered as Feast wrote it (Feast's clients read it back); Larder does "
                   "not enforce it — its token roles (feature_store.yaml `auth`) decide access")
    if cls == "LabelView":
        policy = getattr(getattr(obj, "conflict_policy", None), "name", "LAST_WRITE_WINS")
        if policy != "LAST_WRITE_WINS":
            out.append(f"label view {name!r}: conflict_policy {policy} is not applied; the newest event time wins")
    if cls in ("FeatureView", "LabelView") and getattr(obj, "enable_validation", False):
        out.append(f"feature view {name!r}: enable_validation is not applied at materialization")
    return out


def feast_kind(obj) -> Optional[str]:
    """The registry kind of a Feast object, or None for anything else."""
    cls = type(obj)
    if not cls.__module__.startswith("feast."):
        return None
    for klass in cls.__mro__:
        if klass.__name__ in FEAST_KINDS and klass.__module__.startswith("feast."):
            return FEAST_KINDS[klass.__name__]
    return None


def _meta(o) -> dict:
    return {"name": o.name, "description": getattr(o, "description", "") or "", "tags": dict(getattr(o, "tags", {}) or {}),
            "owner": getattr(o, "owner", "") or ""}


def _field(f) -> dict:
    d = {"name": f.name, "dtype": f.dtype.to_value_type().name}
    if getattr(f, "description", ""):
        d["description"] = f.description
    if getattr(f, "tags", None):
        d["tags"] = dict(f.tags)
    if getattr(f, "vector_index", False):
        d["vector_index"] = True
        if getattr(f, "vector_length", 0):
            d["vector_length"] = int(f.vector_length)
        if getattr(f, "vector_search_metric", None):
            d["vector_search_metric"] = str(f.vector_search_metric)
    return d


def _value_type(vt) -> Optional[str]:
    name = getattr(vt, "name", None)
    return None if name in (None, "UNKNOWN", "INVALID") else name


def _aggregations(view) -> dict:
    aggs = list(getattr(view, "aggregations", None) or [])
    if not aggs:
        return {}
    out = []
    for a in aggs:
        slide = getattr(a, "slide_interval", None)
        out.append({"column": a.column, "function": a.function,
                    "time_window_seconds": int(a.time_window.total_seconds()),
                    "slide_interval_seconds": int(slide.total_seconds()) if slide else None,
                    "name": getattr(a, "name", None) or None})
    return {"aggregations": out, "features": []}


def to_dict(obj) -> Tuple[str, dict, list]:
    """``(kind, registry dict, nested objects)`` of a Feast object."""
    kind = feast_kind(obj)
    name = type(obj).__name__
    if kind == "entity":
        join_keys = list(getattr(obj, "join_keys", None) or [obj.join_key])
        return kind, {**_meta(obj), "join_keys": join_keys, "value_type": _value_type(obj.value_type)}, []
    if kind == "data source":
        if name == "PushSource" or hasattr(obj, "batch_source") and type(obj).__name__ == "PushSource":
            return kind, {"type": "push", **_meta(obj), "batch_source": obj.batch_source.name}, [obj.batch_source]
        if name == "KafkaSource":
            opts = obj.kafka_options
            delay = getattr(opts, "watermark_delay_threshold", None)
            fmt = getattr(opts, "message_format", None)
            return kind, {
                "type": "kafka", **_meta(obj),
                "bootstrap_servers": opts.kafka_bootstrap_servers, "topic": opts.topic,
                "timestamp_field": obj.timestamp_field,
                "created_timestamp_column": obj.created_timestamp_column or None,
                "field_mapping": dict(obj.field_mapping or {}),
                "batch_source": obj.batch_source.name,
                "message_format": "json" if type(fmt).__name__ == "JsonFormat" else type(fmt).__name__,
                "schema_json": getattr(fmt, "schema_json", "") or "",
                "watermark_delay_seconds": int(delay.total_seconds()) if delay is not None else None,
            }, [obj.batch_source]
        if name == "RequestSource":
            return kind, {"type": "request", **_meta(obj), "schema": [_field(f) for f in obj.schema]}, []
        if name == "RaySource":
            # Feast's Ray offline store reads it with ray.data; a Parquet one is a file source.
            if obj.reader_type != "parquet":
                raise ValueError(f"RaySource {obj.name!r}: reader_type {obj.reader_type!r} is not supported "
                                 "(Larder reads Parquet: reader_type='parquet')")
            return kind, {
                "type": "file", **_meta(obj), "path": obj.path, "timestamp_field": obj.timestamp_field,
                "created_timestamp_column": obj.created_timestamp_column or None,
                "field_mapping": dict(obj.field_mapping or {}),
            }, []
        if name == "PostgreSQLSource":
            options = obj._postgres_options
            return kind, {
                "type": "file", **_meta(obj), "path": "", "timestamp_field": obj.timestamp_field,
                "created_timestamp_column": obj.created_timestamp_column or None,
                "field_mapping": dict(obj.field_mapping or {}),
                "postgres": {"table": options._table or "", "query": options._query or ""},
            }, []
        return kind, {
            "type": "file", **_meta(obj), "path": obj.path, "timestamp_field": obj.timestamp_field,
            "created_timestamp_column": obj.created_timestamp_column or None,
            "field_mapping": dict(obj.field_mapping or {}),
        }, []
    if kind == "feature view":
        source = getattr(obj, "stream_source", None) or obj.batch_source
        ttl = obj.ttl.total_seconds() if obj.ttl is not None else None
        return kind, {
            **_meta(obj),
            "entities": [e if isinstance(e, str) else e.name for e in obj.entities],
            "features": [_field(f) for f in obj.features],
            # A LabelView types its entity columns before the entities' value types are known
            # (STRING for an untyped entity); Larder infers them from the source instead.
            "entity_columns": [] if type(obj).__name__ == "LabelView" else [_field(f) for f in obj.entity_columns],
            "source": source.name,
            "ttl_seconds": int(ttl) if ttl is not None else None,
            "online": bool(getattr(obj, "online", True)),
            **_aggregations(obj),
        }, [source]
    if kind == "on-demand feature view":
        transformation = getattr(obj, "feature_transformation", None)
        udf = getattr(transformation, "udf", None)
        return kind, {
            **_meta(obj),
            "sources": [{"view": p.name, "features": [f.name for f in p.features], "alias": p.name_alias or None}
                        for p in obj.source_feature_view_projections.values()],
            "request_sources": list(obj.source_request_sources.keys()),
            "features": [_field(f) for f in obj.features],
            "mode": obj.mode if obj.mode in ("pandas", "python") else "pandas",
            "udf_name": getattr(udf, "__name__", "") or "",
            "udf_body": getattr(transformation, "udf_string", "") or "",
            "write_to_online_store": bool(getattr(obj, "write_to_online_store", False)),
        }, list(obj.source_request_sources.values())
    if kind == "feast object":
        import base64

        return kind, {"kind": "permission", "name": obj.name,
                      "proto": base64.b64encode(obj.to_proto().SerializeToString()).decode()}, []
    if kind == "feature service":
        service = {
            **_meta(obj),
            "features": [{"view": p.name, "features": [f.name for f in p.features], "alias": p.name_alias or None}
                         for p in obj.feature_view_projections],
        }
        logging = logging_dict(getattr(obj, "logging_config", None))
        if logging is not None:
            service["logging"] = logging
        return kind, service, []
    raise TypeError(f"not a Feast definition: {obj!r}")
