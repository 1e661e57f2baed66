"""Larder's Python SDK: Feast's definition API (replace ``feast`` with ``larder`` in a repo's
imports) and the exporter that ``larder apply`` runs (``python -m larder.repo DIR``)."""

from larder.aggregation import Aggregation
from larder.data_format import JsonFormat
from larder.data_source import DataSource, KafkaSource, PushSource, RequestSource
from larder.entity import Entity
from larder.feature import Feature
from larder.feature_service import FeatureService
from larder.feature_store import FeatureStore, LarderError, OnlineResponse, PushMode, RetrievalJob
from larder.feature_view import FeatureView
from larder.field import Field
from larder.infra.offline_stores.file_source import FileSource
from larder.label_view import ConflictPolicy, LabelView
from larder.project import Project
from larder.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from larder.stream_feature_view import StreamFeatureView
from larder.value_type import ValueType

__all__ = [
    "Aggregation",
    "ConflictPolicy",
    "LabelView",
    "Project",
    "JsonFormat",
    "KafkaSource",
    "StreamFeatureView",
    "DataSource",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureStore",
    "LarderError",
    "OnlineResponse",
    "RetrievalJob",
    "FeatureView",
    "Field",
    "FileSource",
    "OnDemandFeatureView",
    "PushMode",
    "PushSource",
    "RequestSource",
    "ValueType",
    "on_demand_feature_view",
]
__version__ = "0.1.0"
