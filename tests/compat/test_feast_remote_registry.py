"""A Feast 0.67 client that keeps no state of its own: its feature_store.yaml names Larder as its
registry (`registry_type: remote`, Feast's RegistryServer gRPC service on Larder's Flight port),
its online store (`type: remote`) and its offline store (`type: remote`, Arrow Flight). The
template's own `test_workflow.py` runs unmodified against a `larder serve` that starts with an
empty registry: `feast apply` registers the definitions through Larder, and every answer the
workflow prints equals, value by value, what the same workflow prints with Feast alone."""

import ast
import json
import os
import subprocess
from pathlib import Path

import requests

from compat.test_feast_repos import copy_repo, feast_cli, template, feast_python  # noqa: F401  (fixtures)
from conftest import Larder, Server


# The template's features of Feast type Json.
JSON_FEATURES = {"driver_config"}


def project_of(repo: Path) -> str:
    """The project named in a repo's feature_store.yaml."""
    return next(l.split(":", 1)[1].strip() for l in (repo / "feature_store.yaml").read_text().splitlines()
                if l.startswith("project:"))


def remote_yaml(project: str, server: Server) -> str:
    flight_port = server.flight_url.rsplit(":", 1)[1]
    return (
        f"project: {project}\nprovider: local\n"
        f"registry:\n  registry_type: remote\n  path: 127.0.0.1:{flight_port}\n"
        f"online_store:\n  type: remote\n  path: {server.url}\n"
        f"offline_store:\n  type: remote\n  host: 127.0.0.1\n  port: {flight_port}\n"
        "entity_key_serialization_version: 3\nauth:\n  type: no_auth\n"
    )


def empty_larder(template: Path, tmp_path: Path, feast_python: str) -> tuple[Path, Server]:
    """A `larder serve` on a copy of the template's directory (its data), nothing applied."""
    repo = copy_repo(template, tmp_path / "larder")
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    return repo, Server(larder)


def remote_client(template: Path, path: Path, project: str, server: Server) -> Path:
    """The template's definitions with a feature_store.yaml naming `server` for everything."""
    client = copy_repo(template, path)
    (client / "feature_store.yaml").write_text(remote_yaml(project, server))
    return client


def feast_apply(repo: Path, feast_python: str) -> subprocess.CompletedProcess:
    p = subprocess.run([str(feast_cli(feast_python)), "apply"], cwd=repo, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def run_workflow(repo: Path, feast_python: str) -> subprocess.CompletedProcess:
    """The template's test_workflow.py as a user runs it (`feast` on the PATH)."""
    env = dict(os.environ, PATH=f"{Path(feast_python).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    p = subprocess.run([feast_python, "test_workflow.py"], cwd=repo, capture_output=True, text=True, env=env,
                       timeout=900)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    # The workflow does not check its `feast apply` / `feast teardown` subprocesses: their
    # failures only show as tracebacks.
    assert "Traceback" not in p.stdout + p.stderr, p.stdout[-4000:] + p.stderr[-4000:]
    return p


def online_sections(out: str) -> list[dict]:
    """Every `fetch_online_features` print of the workflow: feature name -> its values."""
    sections = []
    for chunk in out.split("\n--- ")[1:]:
        title, _, body = chunk.partition("\n")
        if not title.startswith("Online features"):
            continue
        values = {}
        for line in body.splitlines():
            name, sep, value = line.partition("  :  ")
            if sep:
                values[name.strip()] = ast.literal_eval(value)
        sections.append({"title": title, "values": values})
    return sections


def test_template_workflow_runs_unmodified_with_larder_as_registry_online_and_offline_store(
        template, feast_python, tmp_path):
    project = project_of(template)
    assert all(f'name="{n}", dtype=Json' in (template / "feature_definitions.py").read_text() for n in JSON_FEATURES)
    # Feast alone, the template as `feast init` wrote it.
    feast_side = copy_repo(template, tmp_path / "feast_side")
    want = online_sections(run_workflow(feast_side, feast_python).stdout)
    assert len(want) == 4 and all(s["values"] for s in want), want

    # Larder: the template's directory (its data), nothing applied.
    _, server = empty_larder(template, tmp_path, feast_python)
    try:
        assert requests.get(server.url + "/registry", timeout=10).status_code >= 400, "starts empty"
        client = remote_client(template, tmp_path / "client", project, server)
        # The client has no registry file and no data of its own.
        import shutil
        shutil.rmtree(client / "data")

        p = run_workflow(client, feast_python)
        assert not (client / "data").exists(), "the client wrote no local registry or store"
        got = online_sections(p.stdout)
        assert [s["title"] for s in got] == [s["title"] for s in want]
        cells = 0
        for g, w in zip(got, want):
            assert sorted(g["values"]) == sorted(w["values"]), (g["title"], sorted(g["values"]), sorted(w["values"]))
            for name, values in w["values"].items():
                mine = g["values"][name]
                if name in JSON_FEATURES:
                    # Feast's remote online store types response values by their JSON kind: a
                    # Json feature arrives as its text, from Feast's own feature server as from
                    # Larder (whose HTTP answer equals `feast serve`'s: test_feast_repos.py).
                    mine = [json.loads(v) if isinstance(v, str) else v for v in mine]
                assert mine == values, f"{g['title']}: {name}: Larder {mine!r}, Feast {values!r}"
                cells += len(values)
        assert cells >= 40, cells
        # The pushed event is served (values Feast's own run shows too).
        assert got[-1]["values"]["conv_rate"][0] == 1.0
        # `feast teardown` went to Larder: its registry is gone.
        assert requests.get(server.url + "/registry", timeout=10).status_code >= 400
    finally:
        server.stop()


def test_a_second_client_sees_what_the_first_applied_and_errors_keep_feast_classes(template, feast_python, tmp_path):
    """Two clients share Larder's registry: what one applies the other lists at once; a missing
    object is Feast's own exception class; Larder's history names the apply."""
    project = project_of(template)
    _, server = empty_larder(template, tmp_path, feast_python)
    try:
        first = remote_client(template, tmp_path / "first", project, server)
        feast_apply(first, feast_python)
        second = tmp_path / "second"
        second.mkdir()
        (second / "feature_store.yaml").write_text(remote_yaml(project, server))
        script = """
import sys
from feast import FeatureStore
from feast.errors import FeatureViewNotFoundException, EntityNotFoundException
store = FeatureStore(repo_path=sys.argv[1])
print("VIEWS", sorted(v.name for v in store.list_feature_views()))
print("ODFVS", sorted(v.name for v in store.list_on_demand_feature_views()))
print("SERVICES", sorted(s.name for s in store.list_feature_services()))
print("ENTITIES", sorted(e.name for e in store.list_entities()))
fv = store.get_feature_view("driver_hourly_stats")
print("FEATURES", sorted(f.name for f in fv.features), fv.ttl.total_seconds())
odfv = store.get_on_demand_feature_view("transformed_conv_rate")
import pandas as pd
out = odfv.feature_transformation.udf(pd.DataFrame({"conv_rate": [0.5], "val_to_add": [1], "val_to_add_2": [2]}))
print("UDF", out["conv_rate_plus_val1"].tolist(), out["conv_rate_plus_val2"].tolist())
try:
    store.get_feature_view("nope")
except FeatureViewNotFoundException as e:
    print("MISSING_VIEW", type(e).__name__)
try:
    store.get_entity("nope")
except EntityNotFoundException as e:
    print("MISSING_ENTITY", type(e).__name__)
"""
        p = subprocess.run([feast_python, "-c", script, str(second)], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        lines = {l.split(" ", 1)[0]: l.split(" ", 1)[1] for l in p.stdout.splitlines() if " " in l}
        # What the template defines (read from its own definitions file, not from Larder).
        defs = (template / "feature_definitions.py").read_text()
        for view in ast.literal_eval(lines["VIEWS"]):
            assert f'name="{view}"' in defs, view
        assert "driver_hourly_stats" in lines["VIEWS"] and "driver_hourly_stats_fresh" in lines["VIEWS"]
        assert ast.literal_eval(lines["ODFVS"]) == ["transformed_conv_rate", "transformed_conv_rate_fresh"]
        assert "driver_activity_v1" in lines["SERVICES"] and "driver" in lines["ENTITIES"]
        assert "conv_rate" in lines["FEATURES"] and lines["FEATURES"].endswith("86400.0")
        # The function rebuilt from the source text Larder handed back: 0.5 + 1 and 0.5 + 2.
        assert lines["UDF"] == "[1.5] [2.5]"
        assert lines["MISSING_VIEW"] == "FeatureViewNotFoundException"
        assert lines["MISSING_ENTITY"] == "EntityNotFoundException"
        history = requests.get(server.url + "/registry/history", timeout=10).json()
        assert any("feast client (registry server)" in str(h) for h in history), history
        # Applying the same repo again keeps every object (Feast's client deletes the label view
        # it reads back as a feature view after re-applying it as a label view).
        feast_apply(first, feast_python)
        doc = requests.get(server.url + "/registry", timeout=10).json()["doc"]
        names = {v["name"] for v in doc["feature_views"]}
        assert {"driver_hourly_stats", "driver_hourly_stats_fresh", "driver_quality_labels"} <= names, names
    finally:
        server.stop()


BAD_CALLS = """
import sys, grpc
from feast.protos.feast.registry import RegistryServer_pb2 as r, RegistryServer_pb2_grpc as g
from feast.protos.feast.core.Entity_pb2 import Entity, EntitySpecV2
from feast.protos.feast.core.FeatureView_pb2 import FeatureView, FeatureViewSpec
from feast.protos.feast.core.DataSource_pb2 import DataSource
channel = grpc.insecure_channel(sys.argv[1])
stub = g.RegistryServerStub(channel)
def code(call):
    try:
        call()
        return "OK"
    except grpc.RpcError as e:
        return e.code().name + " " + e.details()
# An entity for another project than the one served.
print("OTHER_PROJECT", code(lambda: stub.ApplyEntity(r.ApplyEntityRequest(
    entity=Entity(spec=EntitySpecV2(name="e", join_key="k", project="elsewhere")), project="elsewhere", commit=True))))
# A view whose source Larder cannot read (BigQuery).
bq = DataSource(name="bq", type=DataSource.SourceType.BATCH_BIGQUERY, bigquery_options=DataSource.BigQueryOptions(table="t"))
print("BIGQUERY", code(lambda: stub.ApplyFeatureView(r.ApplyFeatureViewRequest(
    feature_view=FeatureView(spec=FeatureViewSpec(name="v", project=sys.argv[2], batch_source=bq)), project=sys.argv[2], commit=True))))
# A view naming an entity that does not exist: refused at commit by Larder's validation.
ok_source = DataSource(name="s", type=DataSource.SourceType.BATCH_FILE, timestamp_field="event_timestamp",
                       file_options=DataSource.FileOptions(uri="data/driver_stats.parquet"))
print("INVALID", code(lambda: stub.ApplyFeatureView(r.ApplyFeatureViewRequest(
    feature_view=FeatureView(spec=FeatureViewSpec(name="v", project=sys.argv[2], entities=["ghost"], batch_source=ok_source)),
    project=sys.argv[2], commit=True))))
# Bytes that are not the message.
raw = channel.unary_unary("/feast.registry.RegistryServer/ApplyEntity", request_serializer=lambda b: b, response_deserializer=lambda b: b)
print("GARBAGE", code(lambda: raw(bytes([255] * 4))))
print("UNKNOWN", code(lambda: channel.unary_unary("/feast.registry.RegistryServer/Nope", request_serializer=lambda b: b,
                                                  response_deserializer=lambda b: b)(b"")))
print("PERMISSION", code(lambda: stub.ApplyPermission(r.ApplyPermissionRequest(project=sys.argv[2]))))
print("DATASET_JOBS", code(lambda: stub.ListDatasetJobs(r.ListDatasetJobsRequest(project=sys.argv[2]))))
"""


def test_bad_registry_calls_get_grpc_errors_and_change_nothing(template, feast_python, tmp_path):
    project = project_of(template)
    _, server = empty_larder(template, tmp_path, feast_python)
    try:
        target = "127.0.0.1:" + server.flight_url.rsplit(":", 1)[1]
        p = subprocess.run([feast_python, "-c", BAD_CALLS, target, project], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        got = {l.split(" ", 1)[0]: l.split(" ", 1)[1] for l in p.stdout.splitlines()}
        assert got["OTHER_PROJECT"].startswith("FAILED_PRECONDITION") and f"serves project `{project}`" in got["OTHER_PROJECT"]
        assert got["BIGQUERY"].startswith("INVALID_ARGUMENT") and "BigqueryOptions" in got["BIGQUERY"], got["BIGQUERY"]
        assert got["INVALID"].startswith("INVALID_ARGUMENT") and "ghost" in got["INVALID"], got["INVALID"]
        assert not got["GARBAGE"].startswith("OK") and "decode" in got["GARBAGE"].lower(), got["GARBAGE"]
        assert got["UNKNOWN"].startswith("UNIMPLEMENTED"), got["UNKNOWN"]
        assert got["PERMISSION"].startswith("INVALID_ARGUMENT") and "no Permission" in got["PERMISSION"]
        assert got["DATASET_JOBS"].startswith("UNIMPLEMENTED") and "dataset jobs" in got["DATASET_JOBS"]
        # Nothing was recorded, and the server still answers.
        assert requests.get(server.url + "/registry", timeout=10).status_code >= 400
        assert server.proc.poll() is None
    finally:
        server.stop()



WRITE_LOGS = """
import sys
from datetime import datetime, timezone
import pyarrow as pa, pyarrow.compute as pc
from feast import FeatureStore
from feast.feature_logging import FeatureServiceLoggingSource
store = FeatureStore(repo_path=sys.argv[1])
service = store.get_feature_service("driver_activity_v1")
assert service.logging_config is not None, "the service's logging_config did not come back"
schema = FeatureServiceLoggingSource(service, store.project).get_schema(store.registry)
now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
columns = {}
for f in schema:
    if pa.types.is_timestamp(f.type):
        columns[f.name] = pa.array([now, now], type=f.type)
    elif pa.types.is_date32(f.type):
        columns[f.name] = pa.array([now.date(), now.date()], type=f.type)
    elif pa.types.is_string(f.type):
        columns[f.name] = pa.array(["a", "b"], type=f.type)
    elif pa.types.is_integer(f.type):
        columns[f.name] = pa.array([1001, 1002], type=f.type)
    else:
        columns[f.name] = pa.array([0.5, 0.25], type=f.type)
table = pa.table(columns, schema=schema)
store.write_logged_features(logs=table, source=service)
print("SCHEMA", ",".join(schema.names))
"""


def test_feast_clients_write_logged_features_where_the_service_says(template, feast_python, tmp_path):
    """Feast's `write_logged_features` through the remote offline store: the service (and its
    logging_config) comes from Larder's registry, the log table is built by Feast for Feast's
    log schema, and Larder writes it in the service's FileLoggingDestination — the same rows
    Feast's own file store writes for the same call."""
    import pyarrow.parquet as pq

    project = project_of(template)
    # Feast alone.
    feast_side = copy_repo(template, tmp_path / "feast_side")
    feast_apply(feast_side, feast_python)
    before = set((feast_side / "data").glob("*.parquet"))
    p = subprocess.run([feast_python, "-c", WRITE_LOGS, str(feast_side)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    feast_logs = sorted(set((feast_side / "data").glob("*.parquet")) - before)
    assert len(feast_logs) == 1, feast_logs

    larder_repo, server = empty_larder(template, tmp_path, feast_python)
    try:
        client = remote_client(template, tmp_path / "client", project, server)
        feast_apply(client, feast_python)
        before = set((larder_repo / "data").glob("*.parquet"))
        client_before = set((client / "data").rglob("*"))
        p = subprocess.run([feast_python, "-c", WRITE_LOGS, str(client)], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "driver_hourly_stats__conv_rate__status" in p.stdout, p.stdout
        larder_logs = sorted(set((larder_repo / "data").glob("*.parquet")) - before)
        assert len(larder_logs) == 1, larder_logs
        got, want = pq.read_table(larder_logs[0]), pq.read_table(feast_logs[0])
        assert got.schema.names == want.schema.names
        assert got.to_pylist() == want.to_pylist()
        assert got.num_rows == 2
        # Nothing was written on the client's side.
        assert set((client / "data").rglob("*")) == client_before
    finally:
        server.stop()


SAVED_DATASET = """
import sys
import pandas as pd
from feast import FeatureStore
from feast.infra.offline_stores.file_source import SavedDatasetFileStorage
store = FeatureStore(repo_path=sys.argv[1])
now = pd.Timestamp.now(tz="UTC").floor("h")
entity_df = pd.DataFrame({"driver_id": [1001, 1002, 1003, 4242],
                          "event_timestamp": [now - pd.Timedelta(hours=h) for h in (2, 5, 30, 3)]})
features = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"]
job = store.get_historical_features(entity_df=entity_df, features=features)
training = job.to_df()
store.create_saved_dataset(from_=job, name="my_training_ds", storage=SavedDatasetFileStorage(path=sys.argv[2]),
                           allow_overwrite=True, tags={"team": "drivers"})
saved = store.get_saved_dataset("my_training_ds")
print("FEATURES", ",".join(saved.features))
print("LIST", ",".join(d.name for d in store.list_saved_datasets()))
back = saved.to_df()
cols = ["driver_id", "event_timestamp", "conv_rate", "avg_daily_trips"]
key = ["driver_id", "event_timestamp"]
a = training[cols].sort_values(key).reset_index(drop=True)
b = back[cols].sort_values(key).reset_index(drop=True)
print("ROWS", len(a), len(b))
print("SAME", a.astype(str).values.tolist() == b.astype(str).values.tolist())
try:
    store.create_saved_dataset(from_=job, name="again", storage=SavedDatasetFileStorage(path=sys.argv[2]))
    print("AGAIN OK")
except Exception as e:
    print("AGAIN", type(e).__name__, str(e)[:300].replace("\\n", " "))
"""

DATASET_SOURCE = """
from feast import FileSource
saved_training_data = FileSource(name="saved_training_data", path="data/my_training_ds.parquet",
                                 timestamp_field="event_timestamp")
"""


def test_feast_clients_save_datasets_through_larder(template, feast_python, tmp_path):
    """Feast's `create_saved_dataset` with only remote settings: `persist` over Flight writes the
    training set as the registered source the storage names (Feast's remote protocol names it
    by its path: the source registered at that path), the registry server keeps the SavedDataset, and `get_saved_dataset().to_df()`
    reads back the same rows the training set had. Without `allow_overwrite`, a second save to
    the same place is refused and the file is left as it was."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    project = project_of(template)
    larder_repo, server = empty_larder(template, tmp_path, feast_python)
    try:
        # The dataset's source must exist to be registered: a placeholder with its timestamp.
        target = larder_repo / "data" / "my_training_ds.parquet"
        pq.write_table(pa.table({"event_timestamp": pa.array([], pa.timestamp("us", tz="UTC"))}), target)
        client = remote_client(template, tmp_path / "client", project, server)
        (client / "saved_data.py").write_text(DATASET_SOURCE)
        feast_apply(client, feast_python)
        p = subprocess.run([feast_python, "-c", SAVED_DATASET, str(client), "data/my_training_ds.parquet"],
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
        lines = dict(line.split(" ", 1) for line in p.stdout.splitlines() if " " in line)
        assert lines["FEATURES"] == "driver_hourly_stats:conv_rate,driver_hourly_stats:avg_daily_trips", lines
        assert lines["LIST"] == "my_training_ds", lines
        assert lines["ROWS"] == "4 4" and lines["SAME"] == "True", lines
        assert not lines["AGAIN"].startswith("OK") and "allow_overwrite" in lines["AGAIN"], lines["AGAIN"]
        written = pq.read_table(target)
        assert written.num_rows == 4 and "conv_rate" in written.schema.names
        # Larder's history records the save; a later apply of the repo keeps the dataset.
        history = requests.get(server.url + "/registry/history", timeout=10).json()
        assert "saved dataset my_training_ds" in json.dumps(history), history
        feast_apply(client, feast_python)
        doc = requests.get(server.url + "/registry", timeout=10).json()["doc"]
        assert [o["name"] for o in doc.get("feast_objects", []) if o["kind"] == "saved_dataset"] == ["my_training_ds"]
        # A persist into a source that holds a feature view's data is refused.
        bad = subprocess.run([feast_python, "-c", SAVED_DATASET.replace('name="my_training_ds"', 'name="bad"'),
                              str(client), "driver_hourly_stats_source"], capture_output=True, text=True, timeout=600)
        assert bad.returncode != 0 and "holds the data of feature view" in bad.stdout + bad.stderr, bad.stderr[-2000:]
    finally:
        server.stop()


PERMISSIONS = """
from feast.feature_view import FeatureView
from feast.feature_service import FeatureService
from feast.permissions.action import AuthzedAction
from feast.permissions.permission import Permission
from feast.permissions.policy import RoleBasedPolicy
online_readers = Permission(name="online_readers", types=[FeatureView, FeatureService], name_patterns=["driver_.*"],
                            policy=RoleBasedPolicy(roles=["reader"]), actions=[AuthzedAction.READ_ONLINE])
"""

READ_PERMISSIONS = """
import sys
from feast import FeatureStore
store = FeatureStore(repo_path=sys.argv[1])
print("LIST", ",".join(p.name for p in store.list_permissions()))
p = store.get_permission("online_readers")
print("TYPES", ",".join(sorted(t.__name__ for t in p.types)))
print("PATTERNS", ",".join(p.name_patterns))
print("ROLES", ",".join(p.policy.roles))
print("ACTIONS", ",".join(a.name for a in p.actions))
"""


def test_feast_permissions_from_a_repo_are_kept_and_read_back_by_feast_clients(template, feast_python, tmp_path):
    """A repo's `Permission` (Feast's objects, applied by `larder apply` with Feast's API) is
    registered as Feast wrote it — not enforced, and `apply` says so — and a Feast client with
    only remote settings lists it and reads it back field by field; removing it from the repo
    deletes it."""
    project = project_of(template)
    repo = copy_repo(template, tmp_path / "larder")
    (repo / "permissions.py").write_text(PERMISSIONS)
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    out = larder.run("apply")
    assert "Created permission online_readers" in out.stdout, out.stdout
    assert "permission 'online_readers'" in out.stderr and "not enforce" in out.stderr, out.stderr
    server = Server(larder)
    try:
        client = remote_client(template, tmp_path / "client", project, server)
        p = subprocess.run([feast_python, "-c", READ_PERMISSIONS, str(client)], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        lines = dict(line.split(" ", 1) for line in p.stdout.splitlines() if " " in line)
        assert lines == {"LIST": "online_readers", "TYPES": "FeatureService,FeatureView",
                         "PATTERNS": "driver_.*", "ROLES": "reader", "ACTIONS": "READ_ONLINE"}, lines
    finally:
        server.stop()
    (repo / "permissions.py").unlink()
    out = larder.run("apply")
    assert "Deleted permission online_readers" in out.stdout, out.stdout
