"""``StreamFeatureView`` (Feast's ``feast.StreamFeatureView``): a feature view fed by a stream
(a ``KafkaSource`` that Larder consumes, or a ``PushSource``), optionally with windowed
``aggregations`` whose outputs are its features."""

from datetime import timedelta
from typing import List, Optional

from larder.aggregation import Aggregation
from larder.feature_view import FeatureView
from larder.field import Field


class StreamFeatureView(FeatureView):
    """A feature view kept fresh from a stream."""

    def __init__(self, *, name: str, source=None, entities=None, ttl: Optional[timedelta] = timedelta(days=0),
                 schema: Optional[List[Field]] = None, aggregations: Optional[List[Aggregation]] = None,
                 timestamp_field: str = "", mode: str = "", udf=None, online: bool = True, description: str = "",
                 tags=None, owner: str = "", **kwargs):
        if udf is not None:
            raise ValueError(f"StreamFeatureView {name!r}: Larder does not run stream UDFs; "
                             "declare aggregations, or compute derived values in an on-demand feature view")
        super().__init__(name=name, source=source, schema=schema, entities=entities, ttl=ttl, online=online,
                         description=description, tags=tags, owner=owner, **kwargs)
        self.aggregations = list(aggregations or [])
        self.timestamp_field = timestamp_field
        self.mode = mode
        if self.aggregations:
            # The features are the aggregations' outputs (the server types them).
            self.features = [f for f in self.features if f.name in {a.output_name for a in self.aggregations}]

    def __repr__(self):
        return f"StreamFeatureView(name={self.name!r})"

    def to_dict(self) -> dict:
        d = super().to_dict()
        if self.aggregations:
            d["aggregations"] = [a.to_dict() for a in self.aggregations]
            d["features"] = []
        return d
