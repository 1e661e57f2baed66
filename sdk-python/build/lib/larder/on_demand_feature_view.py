"""On-demand feature views (Feast's ``feast.on_demand_feature_view``).

Besides Feast's ``pandas`` and ``python`` modes, Larder has ``mode="sql"``: the body is one SQL
expression per output feature, evaluated in the server.
"""

import inspect
import textwrap
from typing import Callable, Dict, List, Optional, Union

from larder.data_source import RequestSource
from larder.feature_view import BaseFeatureView, FeatureView, FeatureViewProjection
from larder.field import Field


class OnDemandFeatureView(BaseFeatureView):
    """Features computed at request time from feature views and request data."""

    def __init__(
        self,
        *,
        name: str,
        sources: List[Union[FeatureView, FeatureViewProjection, RequestSource]],
        schema: List[Field],
        udf: Optional[Callable] = None,
        udf_string: str = "",
        mode: str = "pandas",
        entities=None,
        description: str = "",
        tags: Optional[Dict[str, str]] = None,
        owner: str = "",
        write_to_online_store: bool = False,
        singleton: bool = False,
        expressions: Optional[Dict[str, str]] = None,
        **kwargs,
    ):
        if mode not in ("pandas", "python", "sql"):
            raise ValueError(f"OnDemandFeatureView {name!r}: mode must be 'pandas', 'python' or 'sql', got {mode!r}")
        self.name = name
        self.sources = list(sources)
        self.features = list(schema)
        self.schema = self.features
        self.udf = udf
        self.mode = mode
        self.expressions = dict(expressions or {})
        if udf is not None and not udf_string:
            try:
                udf_string = textwrap.dedent(inspect.getsource(udf))
            except (OSError, TypeError):
                udf_string = ""
        if mode == "sql" and self.expressions:
            udf_string = "\n".join(f"{k} = {v}" for k, v in self.expressions.items())
        self.udf_string = udf_string
        self.description = description
        self.tags = dict(tags or {})
        self.owner = owner
        self.write_to_online_store = write_to_online_store
        self.singleton = singleton

    def __repr__(self):
        return f"OnDemandFeatureView(name={self.name!r})"

    def to_dict(self) -> dict:
        views, requests = [], []
        for s in self.sources:
            if isinstance(s, RequestSource):
                requests.append(s.name)
            elif isinstance(s, FeatureViewProjection):
                views.append(s.to_dict())
            elif isinstance(s, FeatureView):
                views.append({"view": s.name, "features": [], "alias": None})
            else:
                raise TypeError(f"OnDemandFeatureView {self.name!r}: unsupported source {s!r}")
        return {
            "name": self.name,
            "sources": views,
            "request_sources": requests,
            "features": [f.to_dict() for f in self.features],
            "mode": self.mode,
            "udf_name": getattr(self.udf, "__name__", "") if self.udf else "",
            "udf_body": self.udf_string,
            "write_to_online_store": self.write_to_online_store,
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }


def on_demand_feature_view(
    *,
    sources: List[Union[FeatureView, FeatureViewProjection, RequestSource]],
    schema: List[Field],
    mode: str = "pandas",
    entities=None,
    description: str = "",
    tags: Optional[Dict[str, str]] = None,
    owner: str = "",
    write_to_online_store: bool = False,
    singleton: bool = False,
    **kwargs,
):
    """Decorator: turns a transformation function into an ``OnDemandFeatureView`` named after it."""

    def decorate(fn: Callable) -> OnDemandFeatureView:
        return OnDemandFeatureView(
            name=fn.__name__,
            sources=sources,
            schema=schema,
            udf=fn,
            mode=mode,
            entities=entities,
            description=description,
            tags=tags,
            owner=owner,
            write_to_online_store=write_to_online_store,
            singleton=singleton,
        )

    return decorate
