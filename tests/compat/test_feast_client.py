"""Real Feast clients against Larder: Feast 0.67 (from PyPI, in its own virtualenv) configured
with `online_store: {type: remote, path: <larder url>}` gets Larder's answers."""

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import Larder, Server
from e2e.repo_factory import make_repo

NOW = datetime.now(timezone.utc).replace(microsecond=0)
FEAST_PYTHON = os.environ.get("FEAST_PYTHON")

CLIENT = """
import json, sys
from feast import FeatureStore
store = FeatureStore(repo_path=sys.argv[1])
out = store.get_online_features(features=json.loads(sys.argv[2]), entity_rows=json.loads(sys.argv[3])).to_dict()
print(json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def feast_python():
    if not FEAST_PYTHON or not Path(FEAST_PYTHON).exists():
        pytest.fail("Feast is not installed (scripts/test.sh installs feast==0.67.0 into ~/.cache/larder; "
                    "set FEAST_PYTHON to its interpreter)")
    return FEAST_PYTHON


def test_feast_remote_online_store_reads_from_larder(tmp_path, feast_python):
    larder_repo = tmp_path / "larder_repo"
    make_repo(larder_repo, NOW)
    larder = Larder(larder_repo)
    larder.run("apply")
    larder.run("materialize", (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S"), NOW.strftime("%Y-%m-%dT%H:%M:%S"))
    server = Server(larder)
    try:
        feast_repo = tmp_path / "feast_repo"
        feast_repo.mkdir()
        (feast_repo / "data").symlink_to(larder_repo / "data")
        (feast_repo / "definitions.py").write_text((larder_repo / "definitions.py").read_text().replace("from larder", "from feast"))
        (feast_repo / "feature_store.yaml").write_text(
            "project: e2e_project\nregistry: feast_registry.db\nprovider: local\n"
            f"online_store:\n  type: remote\n  path: {server.url}\n"
            "offline_store:\n  type: file\nentity_key_serialization_version: 3\n")
        feast_bin = str(Path(feast_python).parent / "feast")
        p = subprocess.run([feast_bin, "apply"], cwd=feast_repo, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        features = ["driver_stats:conv_rate", "driver_stats:trips", "customer_profile:tier"]
        rows = [{"driver_id": 1, "customer_id": "A"}, {"driver_id": 999, "customer_id": "B"}]
        p = subprocess.run([feast_python, "-c", CLIENT, str(feast_repo), json.dumps(features), json.dumps(rows)],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        got = json.loads(p.stdout.strip().splitlines()[-1])
        want = server.online({"features": features, "entities": {"driver_id": [1, 999], "customer_id": ["A", "B"]}}).json()
        want = {n: c["values"] for n, c in zip(want["metadata"]["feature_names"], want["results"])}
        assert got["driver_id"] == [1, 999]
        assert got["trips"] == want["trips"] and got["trips"][0] == 777 and got["trips"][1] is None
        assert got["conv_rate"][0] == pytest.approx(want["conv_rate"][0]) and got["conv_rate"][1] is None
        assert got["tier"] == want["tier"]
    finally:
        server.stop()


def test_a_repo_written_with_feast_applies_unmodified(tmp_path, feast_python):
    """The reference repo's definitions import `feast`; with Feast installed, `larder apply`
    reads them as they are, and the training set still matches Feast's."""
    import shutil
    import sys

    import pandas as pd

    from larder import FeatureStore
    from offline.test_reference import FEATURES, REFERENCE, compare

    probe = subprocess.run([feast_python, "-c", "import larder"], capture_output=True)
    if probe.returncode != 0:
        pytest.fail("the Larder SDK is not installed in Feast's virtualenv (scripts/test.sh installs it)")
    repo = tmp_path / "repo"
    shutil.copytree(REFERENCE / "repo", repo)
    shutil.copytree(REFERENCE / "data", repo / "data")
    assert "from feast import" in (repo / "definitions.py").read_text()
    (repo / "feature_store.yaml").write_text(
        "project: driver_ref\nregistry: data/registry.json\nprovider: local\n"
        "online_store:\n  type: rocksdb\n  path: data/online_store\nentity_key_serialization_version: 3\n")
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    out = larder.run("apply").stdout
    assert "Created on-demand feature view transformed_conv_rate" in out and "Created feature service driver_activity_v2" in out, out
    server = Server(larder)
    try:
        store = FeatureStore(url=server.url)
        df = store.get_historical_features(entity_df=pd.read_parquet(REFERENCE / "entity_df.parquet"), features=FEATURES).to_df()
        print(compare(REFERENCE / "expected" / "expected_ffn_false.parquet", df, tmp_path))
    finally:
        server.stop()


FEAST_STREAM_DEFS = """
from datetime import timedelta
from feast import Entity, Field, FileSource, KafkaSource, StreamFeatureView
from feast.aggregation import Aggregation
from feast.data_format import JsonFormat
from feast.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"])
tx_batch = FileSource(name="tx_batch", path="data/tx", timestamp_field="event_timestamp")
tx_stream = KafkaSource(name="tx_stream", kafka_bootstrap_servers="127.0.0.1:9", topic="tx", timestamp_field="ts",
    batch_source=tx_batch, message_format=JsonFormat(schema_json="user_id bigint, amount double, ts timestamp"),
    watermark_delay_threshold=timedelta(minutes=5))
tx_aggs = StreamFeatureView(name="tx_aggs", entities=[user], source=tx_stream, ttl=timedelta(days=1),
    schema=[Field(name="user_id", dtype=Int64), Field(name="amount", dtype=Float64)],
    aggregations=[Aggregation(column="amount", function="sum", time_window=timedelta(hours=1),
                              slide_interval=timedelta(minutes=10))],
    timestamp_field="ts", online=True, mode="spark")
"""


def test_a_feast_stream_feature_view_applies_unmodified(tmp_path, feast_python):
    """Feast's KafkaSource, StreamFeatureView and Aggregation, as Feast users write them."""
    import pyarrow.parquet as pq

    probe = subprocess.run([feast_python, "-c", "import larder"], capture_output=True)
    if probe.returncode != 0:
        pytest.fail("the Larder SDK is not installed in Feast's virtualenv (scripts/test.sh installs it)")
    repo = tmp_path / "repo"
    repo.mkdir()
    # No data yet (the stream has not run): the batch source's directory does not exist.
    (repo / "definitions.py").write_text(FEAST_STREAM_DEFS)
    (repo / "feature_store.yaml").write_text(
        "project: feast_stream\nregistry: data/registry.json\nprovider: local\n"
        "online_store:\n  type: rocksdb\n  path: data/online_store\nentity_key_serialization_version: 3\n")
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    larder.run("apply")
    doc = json.loads(larder.run("registry", "dump").stdout)
    doc = doc.get("doc", doc)
    view = next(v for v in doc["feature_views"] if v["name"] == "tx_aggs")
    assert [(f["name"], f["dtype"]) for f in view["features"]] == [("sum_amount_1h", "DOUBLE")]
    assert view["aggregations"][0]["slide_interval_seconds"] == 600
    src = next(s for s in doc["data_sources"] if s["name"] == "tx_stream")
    assert (src["type"], src["topic"], src["batch_source"], src["watermark_delay_seconds"]) == ("kafka", "tx", "tx_batch", 300)
    # The batch source was created empty, with the columns the definitions declare: the join
    # key, the aggregated column typed by the KafkaSource's schema_json, the batch timestamp
    # (the stream's `ts`, renamed as the offline copy writes it).
    (created,) = (repo / "data" / "tx").glob("*.parquet")
    schema = pq.read_schema(created)
    assert [(f.name, str(f.type)) for f in schema] == [
        ("user_id", "int64"), ("amount", "double"), ("event_timestamp", "timestamp[us, tz=UTC]")], schema
    assert pq.read_table(created).num_rows == 0
    # Applying again finds the source and leaves it as it is.
    again = larder.run("apply")
    assert "Created" not in again.stdout and list((repo / "data" / "tx").glob("*.parquet")) == [created]
