"""The SDK's definition classes follow Feast's constructors, and the exporter emits the
registry document the server reads."""

import json
import subprocess
import sys
from datetime import timedelta

import pytest

from larder import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource, ValueType
from larder.on_demand_feature_view import on_demand_feature_view
from larder.repo import RepoError, export
from larder.types import Array, Bool, Bytes, Float32, Float64, Int32, Int64, String, UnixTimestamp


def test_types_map_to_feast_value_types():
    assert [t.to_value_type().name for t in [Int32, Int64, Float32, Float64, String, Bytes, Bool, UnixTimestamp]] == [
        "INT32", "INT64", "FLOAT", "DOUBLE", "STRING", "BYTES", "BOOL", "UNIX_TIMESTAMP"]
    assert Array(Float32).to_value_type() == ValueType.FLOAT_LIST
    assert Field(name="x", dtype=Array(String)).to_dict() == {"name": "x", "dtype": "STRING_LIST"}
    with pytest.raises(ValueError):
        Array(Array(Int64))


def test_entity_join_keys_and_optional_value_type():
    assert Entity(name="driver").join_keys == ["driver"]
    assert Entity(name="driver", join_keys=["driver_id"]).to_dict()["value_type"] is None
    assert Entity(name="d", join_keys=["d"], value_type=ValueType.STRING).to_dict()["value_type"] == "STRING"
    with pytest.raises(ValueError):
        Entity(name="d", join_keys=["a", "b"])


def _repo_objects():
    driver = Entity(name="driver", join_keys=["driver_id"])
    src = FileSource(name="src", path="data/x.parquet", event_timestamp_column="ts")
    push = PushSource(name="push", batch_source=src)
    fv = FeatureView(name="fv", entities=[driver], ttl=timedelta(hours=2), source=push,
                     schema=[Field(name="driver_id", dtype=Int64), Field(name="a", dtype=Float32), Field(name="b", dtype=Int64)])
    req = RequestSource(name="req", schema=[Field(name="n", dtype=Int64)])
    return driver, src, push, fv, req


def test_feature_view_splits_entity_columns_and_exports_ttl():
    driver, src, push, fv, req = _repo_objects()
    d = fv.to_dict()
    assert d["entity_columns"] == [{"name": "driver_id", "dtype": "INT64"}]
    assert [f["name"] for f in d["features"]] == ["a", "b"]
    assert d["ttl_seconds"] == 7200 and d["source"] == "push"
    assert src.timestamp_field == "ts"
    assert fv[["a"]].to_dict() == {"view": "fv", "features": ["a"], "alias": None}
    with pytest.raises(ValueError):
        fv[["nope"]]
    with pytest.raises(ValueError):
        FeatureView(name="bad", source=req, entities=[driver])


def test_on_demand_view_keeps_its_source_text():
    driver, src, push, fv, req = _repo_objects()

    @on_demand_feature_view(sources=[fv, req], schema=[Field(name="out", dtype=Float64)])
    def plus(inputs):
        return inputs["a"] + inputs["n"]

    d = plus.to_dict()
    assert d["name"] == "plus" and d["mode"] == "pandas" and d["request_sources"] == ["req"]
    assert "def plus(inputs)" in d["udf_body"]
    svc = FeatureService(name="svc", features=[fv[["a"]], plus])
    assert [p["view"] for p in svc.to_dict()["features"]] == ["fv", "plus"]


def test_exporter_collects_nested_sources_once(tmp_path):
    (tmp_path / "a.py").write_text(
        "from datetime import timedelta\n"
        "from larder import Entity, FeatureView, Field, FileSource, PushSource\n"
        "from larder.types import Int64\n"
        "driver = Entity(name='driver', join_keys=['driver_id'])\n"
        "fv = FeatureView(name='fv', entities=[driver], source=PushSource(name='p', batch_source=FileSource(name='f', path='x.parquet', timestamp_field='ts')),\n"
        "                 schema=[Field(name='v', dtype=Int64)])\n")
    (tmp_path / "b.py").write_text("from a import driver, fv\n")
    doc = export(tmp_path)
    assert [e["name"] for e in doc["entities"]] == ["driver"]
    assert sorted(s["name"] for s in doc["data_sources"]) == ["f", "p"]
    assert [v["name"] for v in doc["feature_views"]] == ["fv"]


def test_exporter_refuses_two_objects_with_one_name(tmp_path):
    (tmp_path / "a.py").write_text("from larder import Entity\nx = Entity(name='e', join_keys=['a'])\ny = Entity(name='e', join_keys=['b'])\n")
    with pytest.raises(RepoError, match="two different entity definitions are named .e."):
        export(tmp_path)


def test_exporter_cli_prints_json(tmp_path):
    (tmp_path / "a.py").write_text("from larder import Entity\nx = Entity(name='e', join_keys=['a'])\n")
    out = subprocess.run([sys.executable, "-m", "larder.repo", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["entities"][0]["join_keys"] == ["a"]
    bad = subprocess.run([sys.executable, "-m", "larder.repo", str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a directory" in bad.stderr


LEGACY_DEFS = '''
from datetime import timedelta
from larder import Entity, Feature, FeatureView, FileSource, ValueType

driver = Entity(name="driver", join_keys=["driver_id"])
src = FileSource(name="driver_source", path="data/drivers.parquet", timestamp_field="event_timestamp",
                 created_timestamp_column="created")
legacy = FeatureView(name="legacy", entities=["driver"], batch_source=src, ttl=timedelta(days=30),
                     features=[Feature(name="conv_rate", dtype=ValueType.FLOAT),
                               Feature(name="trips", dtype=ValueType.INT64)])
'''


def test_feast_02x_api_declares_exactly_its_features(tmp_path):
    """`Feature(...)`, `features=`, `batch_source=` and entity names, as Feast 0.2x repos write
    them: the view gets the declared features only (not every Parquet column), served online."""
    from datetime import datetime, timezone

    from conftest import Larder, Server
    from e2e.repo_factory import make_repo

    now = datetime.now(timezone.utc).replace(microsecond=0)
    make_repo(tmp_path, now)
    (tmp_path / "definitions.py").write_text(LEGACY_DEFS)
    larder = Larder(tmp_path)
    applied = larder.run("apply")
    assert "Created feature view legacy" in applied.stdout, applied.stdout
    doc = json.loads(larder.run("registry", "dump").stdout)
    view = next(v for v in doc["feature_views"] if v["name"] == "legacy")
    assert [(f["name"], f["dtype"]) for f in view["features"]] == [("conv_rate", "FLOAT"), ("trips", "INT64")]
    assert view["entity_columns"] == [{"name": "driver_id", "dtype": "INT64"}]
    larder.run("materialize", (now - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%S"), now.strftime("%Y-%m-%dT%H:%M:%S"))
    s = Server(larder)
    try:
        r = s.online({"features": ["legacy:trips"], "entities": {"driver_id": [1]}})
        assert r.status_code == 200 and r.json()["results"][1]["values"] == [777], r.text
        assert s.online({"features": ["legacy:acc_rate"], "entities": {"driver_id": [1]}}).status_code == 404
    finally:
        s.stop()


def test_vector_fields_are_kept_in_the_registry(tmp_path):
    """Feast's `Field(vector_index=True, vector_length=, vector_search_metric=)` is stored, not
    dropped (vector search itself is issue 23's)."""
    import pandas as pd

    from conftest import Larder

    (tmp_path / "data").mkdir()
    pd.DataFrame({"doc_id": [1], "embedding": [[0.1, 0.2, 0.3, 0.4]],
                  "event_timestamp": pd.to_datetime(["2024-01-01"], utc=True)}).to_parquet(tmp_path / "data/docs.parquet")
    (tmp_path / "feature_store.yaml").write_text(
        "project: vec\nregistry: data/registry.json\nprovider: local\nonline_store:\n  type: sqlite\n"
        "  path: data/online.db\nentity_key_serialization_version: 3\n")
    (tmp_path / "defs.py").write_text('''
from larder import Entity, FeatureView, Field, FileSource
from larder.types import Array, Float32
doc = Entity(name="doc", join_keys=["doc_id"])
docs = FeatureView(name="docs", entities=[doc], source=FileSource(name="docs_src", path="data/docs.parquet",
    timestamp_field="event_timestamp"),
    schema=[Field(name="embedding", dtype=Array(Float32), vector_index=True, vector_length=4,
                  vector_search_metric="COSINE")])
''')
    larder = Larder(tmp_path)
    larder.run("apply")
    doc = json.loads(larder.run("registry", "dump").stdout)
    field = doc["feature_views"][0]["features"][0]
    assert field == {"name": "embedding", "dtype": "FLOAT_LIST", "vector_index": True, "vector_length": 4,
                     "vector_search_metric": "COSINE"}, field


def test_a_file_logging_destination_is_registered_with_its_service():
    from larder import FeatureService
    from larder.feature_logging import LoggingConfig, LoggingDestination
    from larder.infra.offline_stores.file_source import FileLoggingDestination

    view = FeatureView(name="v", entities=[Entity(name="e", join_keys=["k"])], schema=[Field(name="x", dtype=Float32)],
                       source=FileSource(name="s", path="data/s.parquet", timestamp_field="ts"))
    logged = FeatureService(name="svc", features=[view], logging_config=LoggingConfig(
        destination=FileLoggingDestination(path="logs", partition_by=["__log_date"]), sample_rate=0.25))
    assert logged.to_dict()["logging"] == {"sample_rate": 0.25, "path": "logs", "partition_by": ["__log_date"]}
    assert "logging" not in FeatureService(name="plain", features=[view]).to_dict()
    # A destination without a path (a warehouse) is not registered.
    elsewhere = FeatureService(name="w", features=[view], logging_config=LoggingConfig(destination=LoggingDestination()))
    assert "logging" not in elsewhere.to_dict()
