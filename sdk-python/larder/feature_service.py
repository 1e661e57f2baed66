"""``FeatureService`` (Feast's ``feast.feature_service.FeatureService``)."""

from typing import Dict, List, Optional, Union

from larder.feature_logging import logging_dict
from larder.feature_view import BaseFeatureView, FeatureViewProjection


class FeatureService:
    """A named list of features (whole views or projections), typically one per model."""

    def __init__(
        self,
        *,
        name: str,
        features: List[Union[BaseFeatureView, FeatureViewProjection]],
        tags: Optional[Dict[str, str]] = None,
        description: str = "",
        owner: str = "",
        logging_config=None,
        **kwargs,
    ):
        self.name = name
        self.feature_view_projections = []
        for f in features:
            if isinstance(f, FeatureViewProjection):
                self.feature_view_projections.append(f)
            elif isinstance(f, BaseFeatureView):
                self.feature_view_projections.append(FeatureViewProjection(f))
            else:
                raise TypeError(f"FeatureService {name!r}: unsupported feature {f!r}")
        self.tags = dict(tags or {})
        self.description = description
        self.owner = owner
        self.logging_config = logging_config

    def __repr__(self):
        return f"FeatureService(name={self.name!r})"

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "features": [p.to_dict() for p in self.feature_view_projections],
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }
        logging = logging_dict(self.logging_config)
        if logging is not None:
            out["logging"] = logging
        return out
