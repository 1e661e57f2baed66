"""``FeatureView`` (Feast's ``feast.feature_view.FeatureView``) and its projections."""

from datetime import timedelta
from typing import Dict, List, Optional

from larder.data_source import DataSource, RequestSource
from larder.entity import Entity
from larder.field import Field


class FeatureViewProjection:
    """A view narrowed to some features (``fv[["a", "b"]]``) and/or renamed (``fv.with_name``)."""

    def __init__(self, view, features: Optional[List[str]] = None, alias: Optional[str] = None):
        self.view = view
        self.features = list(features or [])
        self.alias = alias

    @property
    def name(self) -> str:
        return self.view.name

    def with_name(self, alias: str) -> "FeatureViewProjection":
        return FeatureViewProjection(self.view, self.features, alias)

    def to_dict(self) -> dict:
        return {"view": self.view.name, "features": self.features, "alias": self.alias}


class BaseFeatureView:
    """What feature views and on-demand feature views share."""

    name: str

    def __getitem__(self, features) -> FeatureViewProjection:
        if isinstance(features, str):
            features = [features]
        known = {f.name for f in self.features}
        for f in features:
            if f not in known:
                raise ValueError(f"{self.name!r} has no feature {f!r}")
        return FeatureViewProjection(self, list(features))

    def with_name(self, alias: str) -> FeatureViewProjection:
        return FeatureViewProjection(self, [], alias)


class FeatureView(BaseFeatureView):
    """Features of some entities read from one batch (or push) source."""

    def __init__(
        self,
        *,
        name: str,
        source: Optional[DataSource] = None,
        schema: Optional[List[Field]] = None,
        entities: Optional[List[Entity]] = None,
        ttl: Optional[timedelta] = timedelta(days=0),
        online: bool = True,
        offline: bool = False,
        description: str = "",
        tags: Optional[Dict[str, str]] = None,
        owner: str = "",
        **kwargs,
    ):
        # Feast 0.2x's API: `batch_source=` for `source=`, `features=[Feature(...)]` for
        # `schema=`, entities given by name.
        legacy_source = kwargs.pop("batch_source", None) or kwargs.pop("stream_source", None)
        legacy_features = kwargs.pop("features", None)
        if source is None and legacy_source is not None:
            source = legacy_source
        if legacy_features is not None:
            import warnings

            warnings.warn(f"FeatureView {name!r}: features= is deprecated (as in Feast): use schema=",
                          DeprecationWarning, stacklevel=2)
            schema = list(schema or []) + [f for f in legacy_features if f not in (schema or [])]
        if isinstance(source, RequestSource):
            raise ValueError(f"FeatureView {name!r}: a RequestSource cannot be the source of a feature view")
        if source is None:
            raise ValueError(f"FeatureView {name!r} needs a source")
        self.name = name
        self.source = source
        self.entities = list(entities or [])
        for e in self.entities:
            if not isinstance(e, (Entity, str)):
                raise TypeError(f"FeatureView {name!r}: entities must be Entity objects or names, got {e!r}")
        join_keys = {k for e in self.entities if isinstance(e, Entity) for k in e.join_keys}
        schema = list(schema or [])
        self.entity_columns = [f for f in schema if f.name in join_keys]
        self.features = [f for f in schema if f.name not in join_keys]
        self.schema = schema
        if ttl is not None and not isinstance(ttl, timedelta):
            raise TypeError(f"FeatureView {name!r}: ttl must be a timedelta")
        self.ttl = ttl
        self.online = online
        self.offline = offline
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner
        # Feast 0.67 keywords that Larder accepts but does not act on (reported at apply).
        self.enable_validation = bool(kwargs.pop("enable_validation", False))
        self.version = kwargs.pop("version", "latest")

    def __repr__(self):
        return f"FeatureView(name={self.name!r})"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "entities": [e if isinstance(e, str) else e.name for e in self.entities],
            "features": [f.to_dict() for f in self.features],
            "entity_columns": [f.to_dict() for f in self.entity_columns],
            "source": self.source.name,
            "ttl_seconds": int(self.ttl.total_seconds()) if self.ttl is not None else None,
            "online": self.online,
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }
