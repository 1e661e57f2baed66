"""Feast's own repos, unmodified. Feast 0.67 (from PyPI) writes the repo with `feast init`, then
applies, materializes and answers for it itself; Larder applies, materializes and serves the same
repo — its own feature_store.yaml (SQLite online store, `auth: no_auth`) and definition files
importing `feast` — and every answer is compared with Feast's, cell by cell. The same repo with
`feast` replaced by `larder` (run without Feast) gives the same answers, and the template's
`test_workflow.py`, s/feast/larder/, runs to the end in local mode."""

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import requests

from conftest import Larder, Server, free_port, larder_bin

FEAST_PYTHON = os.environ.get("FEAST_PYTHON")
NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
START, END = NOW - timedelta(days=3), NOW + timedelta(hours=1)

FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:avg_daily_trips",
    "driver_hourly_stats:driver_metadata",
    "driver_hourly_stats:driver_config",
    "driver_hourly_stats:driver_profile",
    "transformed_conv_rate:conv_rate_plus_val1",
    "transformed_conv_rate:conv_rate_plus_val2",
]
DRIVERS = [1001, 1002, 1003, 1004, 1005, 4242]
ONLINE_REQUEST = {
    "features": FEATURES,
    "entities": {"driver_id": DRIVERS, "val_to_add": [1, 2, 3, 4, 5, 6], "val_to_add_2": [10, 20, 30, 40, 50, 60]},
}
SERVICE_REQUEST = {
    "feature_service": "driver_activity_v2",
    "entities": {"driver_id": DRIVERS, "val_to_add": [1] * 6, "val_to_add_2": [2] * 6},
}

HISTORICAL = """
import sys
import pandas as pd
from feast import FeatureStore
entity_df = pd.read_parquet(sys.argv[2])
store = FeatureStore(repo_path=sys.argv[1])
df = store.get_historical_features(entity_df=entity_df, features=sys.argv[4].split(",")).to_df()
df.to_parquet(sys.argv[3])
"""


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def run(cmd, cwd, env=None, timeout=600):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    assert p.returncode == 0, f"{cmd} failed:\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def feast_python():
    if not FEAST_PYTHON or not Path(FEAST_PYTHON).exists():
        pytest.fail("Feast is not installed (scripts/test.sh installs feast==0.67.0 into ~/.cache/larder; "
                    "set FEAST_PYTHON to its interpreter)")
    probe = subprocess.run([FEAST_PYTHON, "-c", "import larder"], capture_output=True)
    if probe.returncode != 0:
        pytest.fail("the Larder SDK is not installed in Feast's virtualenv (scripts/test.sh installs it)")
    return FEAST_PYTHON


def feast_cli(feast_python):
    return Path(feast_python).parent / "feast"


@pytest.fixture(scope="module")
def template(tmp_path_factory, feast_python):
    """The repo `feast init` writes (its default, `local`, template)."""
    root = tmp_path_factory.mktemp("feast_init")
    run([feast_cli(feast_python), "init", "demo"], cwd=root)
    repo = root / "demo" / "feature_repo"
    assert (repo / "feature_store.yaml").read_text().count("type: sqlite") == 1
    return repo


def copy_repo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("registry.db*", "online_store.db*", "__pycache__"))
    return dst


def entity_df(path: Path) -> Path:
    """Entity rows inside the template's data (its last days), one per driver and time."""
    rows = []
    for i, d in enumerate(DRIVERS):
        for h in (2, 30, 50):
            rows.append({"driver_id": d, "event_timestamp": pd.Timestamp(NOW - timedelta(hours=h + i)),
                         "val_to_add": i + h, "val_to_add_2": 10 * i + h})
    df = pd.DataFrame(rows)
    df.to_parquet(path)
    return path


def post(url, body):
    r = requests.post(url + "/get-online-features", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def wait_http(url, proc, log: Path, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()}")
        try:
            requests.get(url + "/health", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not start")


@contextlib.contextmanager
def feast_serving(cli, repo: Path, log_path: Path):
    """Feast's own `feast serve` for `repo` while the block runs; yields its URL. Its output goes
    to `log_path` (a pipe nobody drains could block it)."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen([str(cli), "serve", "-p", str(port)], cwd=repo, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def feast_serve(cli, repo: Path, *bodies) -> list:
    """Feast's own `feast serve` for `repo`: the answers to each body at /get-online-features."""
    with feast_serving(cli, repo, repo / "feast_serve.log") as url:
        return [post(url, b) for b in bodies]


def feast_side(feast_python, repo: Path, edf: Path, features, window, online_request, service_request,
               env=None) -> dict:
    """What Feast 0.67 answers for `repo`: `feast apply`, `feast materialize` of `window`, the
    training set of the entity rows `edf` for `features`, and `feast serve`'s answers to the two
    requests."""
    cli = feast_cli(feast_python)
    run([cli, "apply"], cwd=repo, env=env)
    run([cli, "materialize", iso(window[0]), iso(window[1])], cwd=repo, env=env)
    out = edf.parent / "training.parquet"
    run([feast_python, "-c", HISTORICAL, repo, edf, out, ",".join(features)], cwd=repo, env=env)
    online, service = feast_serve(cli, repo, online_request, service_request)
    return {"online": online, "service": service, "training": pd.read_parquet(out), "entity_df": edf}


@pytest.fixture(scope="module")
def feast_answers(template, feast_python, tmp_path_factory):
    """What Feast 0.67 itself answers for the template repo."""
    tmp = tmp_path_factory.mktemp("feast_side")
    repo = copy_repo(template, tmp / "repo")
    return feast_side(feast_python, repo, entity_df(tmp / "entity_df.parquet"), FEATURES, (START, END),
                      ONLINE_REQUEST, SERVICE_REQUEST)


def columns(body):
    return {n: c for n, c in zip(body["metadata"]["feature_names"], body["results"])}


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


EPOCH = "1970-01-01T00:00:00Z"


def assert_online_equal(got, want, redis_missing_present=False):
    """Cell by cell: values, statuses, event timestamps. Feast's Redis store answers a key it
    does not have as PRESENT (with a null value and the epoch); its SQLite store, its docs and
    Larder answer NOT_FOUND. With `redis_missing_present`, exactly that case is accepted."""
    g, w = columns(got), columns(want)
    assert sorted(g) == sorted(w), (sorted(g), sorted(w))
    for name in w:
        assert len(g[name]["values"]) == len(w[name]["values"]), name
        for i, (a, b) in enumerate(zip(g[name]["values"], w[name]["values"])):
            assert same(a, b), f"{name}[{i}]: Larder {a!r}, Feast {b!r}"
        statuses = list(w[name]["statuses"])
        if redis_missing_present:
            statuses = ["NOT_FOUND" if (s == "PRESENT" and v is None and t == EPOCH and gs == "NOT_FOUND") else s
                        for s, v, t, gs in zip(statuses, w[name]["values"], w[name]["event_timestamps"],
                                               g[name]["statuses"])]
        assert g[name]["statuses"] == statuses, (name, g[name]["statuses"], w[name]["statuses"])
        assert g[name]["event_timestamps"] == w[name]["event_timestamps"], \
            (name, g[name]["event_timestamps"], w[name]["event_timestamps"])


def normalize(v):
    if isinstance(v, dict):
        return {k: normalize(x) for k, x in v.items()}
    if hasattr(v, "tolist"):
        return normalize(v.tolist())
    if isinstance(v, (list, tuple)):
        # Arrow map columns come back from pandas as lists of (key, value) pairs.
        if v and all(isinstance(x, tuple) and len(x) == 2 for x in v):
            return {k: normalize(x) for k, x in v}
        return [normalize(x) for x in v]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.tz_convert("UTC") if v.tzinfo else v.tz_localize("UTC")
    return v


def assert_training_equal(got: pd.DataFrame, want: pd.DataFrame):
    keys = ["driver_id", "event_timestamp", "val_to_add"]
    assert sorted(got.columns) == sorted(want.columns), (list(got.columns), list(want.columns))
    assert len(got) == len(want)
    g = got.sort_values(keys).reset_index(drop=True)
    w = want.sort_values(keys).reset_index(drop=True)
    cells = 0
    for c in w.columns:
        for i in range(len(w)):
            a, b = normalize(g[c][i]), normalize(w[c][i])
            assert a == b, f"{c} row {i} ({w['driver_id'][i]}, {w['event_timestamp'][i]}): Larder {a!r}, Feast {b!r}"
            cells += 1
    assert cells == len(w) * len(w.columns)


def larder_side(repo: Path, python: str, edf: Path):
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = python
    out = larder.run("apply")
    larder.run("materialize", iso(START), iso(END))
    server = Server(larder)
    try:
        online = server.online(ONLINE_REQUEST).json()
        service = server.online(SERVICE_REQUEST).json()
        from larder import FeatureStore

        training = FeatureStore(url=server.url).get_historical_features(
            entity_df=pd.read_parquet(edf), features=FEATURES).to_df()
    finally:
        server.stop()
    return {"apply": out, "online": online, "service": service, "training": training}


def test_feast_init_template_unmodified_matches_feast(template, feast_answers, feast_python, tmp_path):
    repo = copy_repo(template, tmp_path / "repo")
    before = {p.name: p.read_bytes() for p in repo.iterdir() if p.is_file()}
    got = larder_side(repo, feast_python, feast_answers["entity_df"])
    after = {p.name: p.read_bytes() for p in repo.iterdir() if p.is_file()}
    assert before == after, "the repo's own files are left as they are"
    # What Larder does not act on is said, not dropped silently.
    assert "logging_config" in got["apply"].stderr and "Project 'demo'" in got["apply"].stderr, got["apply"].stderr
    assert "Created feature view driver_quality_labels" in got["apply"].stdout
    assert_online_equal(got["online"], feast_answers["online"])
    assert_online_equal(got["service"], feast_answers["service"])
    present = columns(got["online"])["conv_rate"]["statuses"]
    assert present.count("PRESENT") == 5 and present[-1] == "NOT_FOUND", present
    assert_training_equal(got["training"], feast_answers["training"])


def test_template_with_larder_imports_matches_feast_without_feast(template, feast_answers, tmp_path):
    repo = copy_repo(template, tmp_path / "repo")
    for f in ["feature_definitions.py", "test_workflow.py"]:
        (repo / f).write_text((repo / f).read_text().replace("feast", "larder"))
    got = larder_side(repo, sys.executable, feast_answers["entity_df"])
    assert_online_equal(got["online"], feast_answers["online"])
    assert_online_equal(got["service"], feast_answers["service"])
    assert_training_equal(got["training"], feast_answers["training"])


def test_template_test_workflow_runs_in_local_mode(template, tmp_path):
    repo = copy_repo(template, tmp_path / "repo")
    for f in ["feature_definitions.py", "test_workflow.py"]:
        (repo / f).write_text((repo / f).read_text().replace("feast", "larder"))
    env = dict(os.environ, LARDER_PYTHON=sys.executable,
               PATH=f"{Path(larder_bin()).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("LARDER_URL", None)
    try:
        p = subprocess.run([sys.executable, "test_workflow.py"], cwd=repo, capture_output=True, text=True,
                           env=env, timeout=600)
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
        out = p.stdout
        assert "Registry version 1 applied" in out
        # The pushed event is served: its values replace driver 1001's.
        after_push = out.split("Online features again with updated values from a stream push")[1]
        assert "driver_1001_updated" in after_push and "'vehicle_type': 'truck'" in after_push, after_push
        assert "Removed the online data" in out
        state = json.loads((repo / ".larder/server.json").read_text())
        assert requests.get(state["url"] + "/health", timeout=5).status_code in (200, 503)
    finally:
        subprocess.run([sys.executable, "-m", "larder.local_server", "stop", str(repo)], env=env, timeout=60)
    assert not (repo / ".larder/server.json").exists()


# Errors a Feast user meets, each a clear message --------------------------------------------------

def test_a_broken_definition_file_is_reported_with_file_and_line(template, tmp_path):
    repo = copy_repo(template, tmp_path / "repo")
    (repo / "test_workflow.py").unlink()
    defs = repo / "feature_definitions.py"
    lines = defs.read_text().replace("feast", "larder").splitlines()
    lines.insert(40, "broken = undefined_name + 1")
    defs.write_text("\n".join(lines) + "\n")
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = sys.executable
    p = larder.run("apply", check=False)
    assert p.returncode != 0
    assert "feature_definitions.py:41: NameError" in p.stderr and "undefined_name" in p.stderr, p.stderr
    assert "internal error" not in p.stderr and "not installed" not in p.stderr, p.stderr


@pytest.mark.parametrize("yaml_edit, needle", [
    (("type: sqlite", "type: dynamodb"), "online_store"),
    (("registry: data/registry.db", "registry: gs://bucket/registry.db"), "gs://"),
    (("provider: local", "provider: ibm"), "provider"),
])
def test_unsupported_configuration_is_refused_naming_the_key(template, tmp_path, yaml_edit, needle):
    repo = copy_repo(template, tmp_path / "repo")
    cfg = repo / "feature_store.yaml"
    assert yaml_edit[0] in cfg.read_text()
    cfg.write_text(cfg.read_text().replace(*yaml_edit))
    p = subprocess.run([larder_bin(), "-c", str(repo), "plan"], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and needle in p.stderr and "feature_store.yaml" in p.stderr, p.stderr
    assert not (repo / "gs:").exists(), "a remote registry path must never become a local directory"


# A repo in the style real repos use: Redis online store, .feastignore, a source whose timestamp
# field Feast infers, a dictionary-encoded (pandas category) string column
# and keys older than the view's ttl. ----------------------------------------------------------

REDIS_DEFS = '''
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Float32, Int64, String
from feast.value_type import ValueType

rider = Entity(name="rider", join_keys=["rider_id"], value_type=ValueType.INT64)
rides = FileSource(name="rides", path="data/rides.parquet")
rider_stats = FeatureView(
    name="rider_stats", entities=[rider], ttl=timedelta(hours=6), source=rides,
    schema=[Field(name="score", dtype=Float32), Field(name="city", dtype=String), Field(name="rides", dtype=Int64)],
)
rider_service = FeatureService(name="rider_service", features=[rider_stats[["score", "city"]]])
'''


def redis_repo(root: Path, redis_port: int) -> Path:
    import numpy as np

    (root / "data").mkdir(parents=True)
    (root / "scratch").mkdir()
    (root / "scratch" / "broken.py").write_text("raise RuntimeError('scratch files are ignored')\n")
    (root / ".feastignore").write_text("scratch/\n")
    (root / "definitions.py").write_text(REDIS_DEFS)
    (root / "feature_store.yaml").write_text(
        "project: rides_demo\nregistry: data/registry.db\nprovider: local\n"
        f"online_store:\n  type: redis\n  connection_string: 127.0.0.1:{redis_port}\n"
        "entity_key_serialization_version: 3\n")
    rng = np.random.default_rng(7)
    rows = []
    for r in range(1, 9):
        newest = NOW - timedelta(hours=1 if r <= 6 else 10)  # riders 7 and 8: older than the 6 h ttl
        for k in range(4):
            t = newest - timedelta(hours=3 * k)
            rows.append({"rider_id": r, "event_timestamp": t,
                         "score": np.float32(rng.random()), "city": ["paris", "lyon", "nice"][(r + k) % 3],
                         "rides": int(rng.integers(0, 500))})
    df = pd.DataFrame(rows)
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    df["city"] = df["city"].astype("category")
    df.to_parquet(root / "data" / "rides.parquet", index=False)
    return root


RIDERS = list(range(1, 10))
RIDER_REQUEST = {"features": ["rider_stats:score", "rider_stats:city", "rider_stats:rides"],
                 "entities": {"rider_id": RIDERS}}


def test_a_redis_repo_with_feastignore_and_inferred_timestamp_matches_feast(feast_python, tmp_path):
    from conftest import RedisServer
    from larder import FeatureStore

    feast_redis, larder_redis = RedisServer(tmp_path), RedisServer(tmp_path)
    try:
        feast_repo = redis_repo(tmp_path / "feast", feast_redis.port)
        larder_repo = redis_repo(tmp_path / "larder", larder_redis.port)
        cli = feast_cli(feast_python)
        run([cli, "apply"], cwd=feast_repo)
        run([cli, "materialize", iso(START), iso(END)], cwd=feast_repo)
        edf = tmp_path / "entity_df.parquet"
        pd.DataFrame({"rider_id": [1, 2, 7, 8, 9, 3],
                      "event_timestamp": pd.to_datetime([NOW - timedelta(hours=h) for h in (2, 5, 11, 20, 1, 8)],
                                                        utc=True)}).to_parquet(edf)
        feats = RIDER_REQUEST["features"]
        out = tmp_path / "feast_training.parquet"
        run([feast_python, "-c", HISTORICAL, feast_repo, edf, out, ",".join(feats)], cwd=feast_repo)
        want, want_service = feast_serve(cli, feast_repo, RIDER_REQUEST,
                                         {"feature_service": "rider_service", "entities": {"rider_id": RIDERS}})

        larder = Larder(larder_repo)
        larder.env["LARDER_PYTHON"] = feast_python
        applied = larder.run("apply")
        assert "Created feature view rider_stats" in applied.stdout, applied.stdout + applied.stderr
        mat = larder.run("materialize", iso(START), iso(END)).stdout
        assert "2 of these 8 keys are already older than the view's ttl" in mat, mat
        # Served as Feast's Python server serves (ttl not enforced online) for migrating users...
        larder.env["LARDER_ONLINE_TTL"] = "ignore"
        server = Server(larder)
        try:
            assert_online_equal(server.online(RIDER_REQUEST).json(), want, redis_missing_present=True)
            assert_online_equal(server.online({"feature_service": "rider_service",
                                               "entities": {"rider_id": RIDERS}}).json(), want_service,
                                redis_missing_present=True)
            got = FeatureStore(url=server.url).get_historical_features(
                entity_df=pd.read_parquet(edf), features=feats).to_df()
        finally:
            server.stop()
        want_training = pd.read_parquet(out)
        keys = ["rider_id", "event_timestamp"]
        # Feast's file (Dask) store drops an entity row whose key has data but none eligible at
        # the row's time (rider 8 at -20 h: its rows start at -19 h) — its left merge, then ttl
        # filter, loses the row — while Feast's documented semantics (a LEFT JOIN; rows are never
        # dropped) and its SQL stores keep it with nulls, as Larder does. Every row Feast returns
        # must match Larder's cell by cell; Larder's one extra row must be exactly that one.
        merged = got.merge(want_training[keys], on=keys, how="left", indicator=True)
        extra = merged[merged["_merge"] == "left_only"]
        assert extra["rider_id"].tolist() == [8], extra
        assert extra[["score", "city", "rides"]].isna().all().all(), extra
        g = got[~got["rider_id"].eq(8)].sort_values(keys).reset_index(drop=True)
        w = want_training.sort_values(keys).reset_index(drop=True)
        assert sorted(g.columns) == sorted(w.columns) and len(g) == len(w) == 5
        for c in w.columns:
            for i in range(len(w)):
                assert normalize(g[c][i]) == normalize(w[c][i]), (c, i, g[c][i], w[c][i])
        # ... and by default the ttl is enforced online, as Feast's Go server does.
        larder.env.pop("LARDER_ONLINE_TTL")
        server = Server(larder)
        try:
            cols = columns(server.online(RIDER_REQUEST).json())
            assert cols["score"]["statuses"][6:] == ["OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE", "NOT_FOUND"]
            assert cols["score"]["values"][6:] == [None, None, None]
        finally:
            server.stop()
    finally:
        feast_redis.stop()
        larder_redis.stop()


# Feast's own client with `offline_store: {type: remote}` pointed at Larder's Flight port --------

REMOTE_CLIENT = """
import json, sys
from datetime import datetime, timezone
import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode

repo, edf_path, start, end, features = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split(",")
store = FeatureStore(repo_path=repo)
out = {}
training = store.get_historical_features(entity_df=pd.read_parquet(edf_path), features=features).to_df()
training.to_parquet(repo + "/remote_training.parquet")
store.materialize(datetime.fromisoformat(start), datetime.fromisoformat(end))
rows = [{"driver_id": d, "val_to_add": i + 1, "val_to_add_2": 10 * (i + 1)} for i, d in enumerate(%s)]
out["online"] = store.get_online_features(features=features, entity_rows=rows).to_dict()
now = datetime.now(timezone.utc).replace(microsecond=0)
pushed = pd.DataFrame({"driver_id": [777001], "event_timestamp": [now], "created": [now],
                       "conv_rate": [0.5], "acc_rate": [0.25], "avg_daily_trips": [7],
                       "driver_metadata": [{"vehicle_type": "van", "rating": "4.0"}],
                       "driver_config": ['{"max_distance_km": 1}'],
                       "driver_profile": [{"name": "pushed", "age": "30"}]})
store.push("driver_stats_push_source", pushed, to=PushMode.OFFLINE)
out["pushed_at"] = now.isoformat()
print("RESULT " + json.dumps(out, default=str))
""" % DRIVERS


def test_feast_client_with_larder_as_its_remote_offline_store(template, feast_answers, feast_python, tmp_path):
    """`feast apply` validates the sources over Flight (DoPut), training sets (with on-demand
    views), materialization (pull_latest) and a push to the offline store (offline_write_batch)
    all go to Larder; the answers equal Feast's own for the same repo."""
    from larder import FeatureStore

    larder_repo = copy_repo(template, tmp_path / "larder")
    larder = Larder(larder_repo)
    larder.env["LARDER_PYTHON"] = feast_python
    larder.run("apply")
    server = Server(larder)
    try:
        client_repo = copy_repo(template, tmp_path / "client")
        cfg = client_repo / "feature_store.yaml"
        port = server.flight_url.rsplit(":", 1)[1]
        cfg.write_text(cfg.read_text() + f"offline_store:\n    type: remote\n    host: 127.0.0.1\n    port: {port}\n")
        applied = run([feast_cli(feast_python), "apply"], cwd=client_repo)
        assert "Created feature view driver_hourly_stats" in applied.stdout, applied.stdout
        p = run([feast_python, "-c", REMOTE_CLIENT, client_repo, feast_answers["entity_df"], START.isoformat(),
                 END.isoformat(), ",".join(FEATURES)], cwd=client_repo)
        result = json.loads(next(l for l in p.stdout.splitlines() if l.startswith("RESULT "))[7:])
        # Training set through Larder's Flight == Feast's own, cell by cell.
        assert_training_equal(pd.read_parquet(client_repo / "remote_training.parquet"), feast_answers["training"])
        # Materialized by Feast's client from Larder's pull_latest == what Feast serves itself.
        want = columns(feast_answers["online"])
        got = result["online"]
        for name in ["conv_rate", "acc_rate", "avg_daily_trips", "driver_metadata", "driver_profile",
                     "conv_rate_plus_val1", "conv_rate_plus_val2"]:
            assert got[name] == want[name]["values"], (name, got[name], want[name]["values"])
        assert got["driver_config"] == [json.loads(v) if v else None for v in want["driver_config"]["values"]]
        # The push reached Larder's offline store: a part under the source's appends, and
        # Larder's own training set sees the pushed row.
        parts = list((larder_repo / "data" / "driver_stats.parquet.appends").glob("*.parquet"))
        assert len(parts) == 1, parts
        pushed_at = pd.Timestamp(result["pushed_at"])
        df = FeatureStore(url=server.url).get_historical_features(
            entity_df=pd.DataFrame({"driver_id": [777001], "event_timestamp": [pushed_at]}),
            features=["driver_hourly_stats:avg_daily_trips", "driver_hourly_stats:driver_profile"]).to_df()
        assert df["avg_daily_trips"].tolist() == [7] and df["driver_profile"][0] == {"name": "pushed", "age": "30"}, df
    finally:
        server.stop()


def test_unsupported_and_bad_flight_calls_get_grpc_errors(template, feast_python, tmp_path):
    import pyarrow as pa
    import pyarrow.flight as fl

    repo = copy_repo(template, tmp_path / "repo")
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    larder.run("apply")
    server = Server(larder)
    try:
        client = fl.FlightClient(server.flight_url)
        placeholder = pa.table({"key": ["mock_key"]})

        def exchange(cmd):
            writer, reader = client.do_exchange(fl.FlightDescriptor.for_command(json.dumps(cmd)))
            writer.begin(placeholder.schema)
            writer.write_table(placeholder)
            writer.done_writing()
            return reader.read_all()

        # pyarrow raises gRPC statuses as Arrow errors (UNIMPLEMENTED: ArrowNotImplementedError,
        # NOT_FOUND: ArrowKeyError, INVALID_ARGUMENT: ArrowInvalid); the message is checked.
        errors = (fl.FlightError, pa.ArrowException)
        with pytest.raises(pa.ArrowNotImplementedError, match="`no_such_call` is not offered"):
            exchange({"api": "no_such_call"})
        with pytest.raises(errors, match="not a retrieval"):
            exchange({"api": "persist", "data_source_name": "x", "retrieve_func": "persist"})
        with pytest.raises(pa.ArrowKeyError, match="DataSourceObjectNotFoundException"):
            exchange({"api": "pull_all_from_table_or_query", "data_source_name": "nope", "timestamp_field": "ts"})
        with pytest.raises(errors, match="bad parameters"):
            exchange({"api": "pull_latest_from_table_or_query"})
        with pytest.raises(errors, match="not a valid JSON"):
            exchange("{not json")
        with pytest.raises(errors, match="BATCH_BIGQUERY"):
            exchange({"api": "get_table_column_names_and_types_from_data_source",
                      "data_source_proto": json.dumps({"type": "BATCH_BIGQUERY", "name": "b"})})
        # pull_all: every row of the window, with the source's own column names.
        t = exchange({"api": "pull_all_from_table_or_query", "data_source_name": "driver_hourly_stats_source",
                      "join_key_columns": ["driver_id"], "feature_name_columns": ["conv_rate"],
                      "timestamp_field": "event_timestamp", "created_timestamp_column": "created",
                      "start_date": (NOW - timedelta(days=1)).isoformat(), "end_date": NOW.isoformat()})
        raw = pd.read_parquet(repo / "data" / "driver_stats.parquet")
        window = raw[(raw.event_timestamp >= pd.Timestamp(NOW - timedelta(days=1))) &
                     (raw.event_timestamp <= pd.Timestamp(NOW))]
        assert t.column_names == ["driver_id", "conv_rate", "event_timestamp", "created"]
        assert t.num_rows == len(window) > 0
        types = exchange({"api": "get_table_column_names_and_types_from_data_source",
                          "data_source_proto": json.dumps({"type": "BATCH_FILE", "name": "x",
                                                           "timestampField": "event_timestamp",
                                                           "fileOptions": {"uri": "data/driver_stats.parquet"}})})
        got = dict(zip(types.column("name").to_pylist(), types.column("type").to_pylist()))
        import pyarrow.parquet as pq
        want = {f.name: str(f.type) for f in pq.read_schema(repo / "data" / "driver_stats.parquet")}
        assert got == want, (got, want)
        assert requests.get(server.url + "/health").status_code == 200
    finally:
        server.stop()


# Feast's gRPC ServingService, called with Feast's own generated stubs ----------------------------

GRPC_CLIENT = """
import json, sys
import grpc
from google.protobuf.json_format import MessageToDict
from feast.protos.feast.serving import ServingService_pb2 as S, ServingService_pb2_grpc as G
from feast.protos.feast.types import Value_pb2 as V

target, features = sys.argv[1], sys.argv[2].split(",")
stub = G.ServingServiceStub(grpc.insecure_channel(target))
out = {"info": stub.GetFeastServingInfo(S.GetFeastServingInfoRequest()).version}
ids = V.RepeatedValue(val=[V.Value(int64_val=d) for d in %s])
ctx = {"val_to_add": V.RepeatedValue(val=[V.Value(int64_val=i) for i in range(1, 7)]),
       "val_to_add_2": V.RepeatedValue(val=[V.Value(int64_val=10 * i) for i in range(1, 7)])}
r = stub.GetOnlineFeatures(S.GetOnlineFeaturesRequest(features=S.FeatureList(val=features),
                                                      entities={"driver_id": ids}, request_context=ctx))
out["names"] = list(r.metadata.feature_names.val)
out["results"] = [MessageToDict(fv, preserving_proto_field_name=True) for fv in r.results]
try:
    stub.GetOnlineFeatures(S.GetOnlineFeaturesRequest(features=S.FeatureList(val=["nope:x"]),
                                                      entities={"driver_id": ids}))
except grpc.RpcError as e:
    out["error"] = [e.code().name, e.details()]
print("RESULT " + json.dumps(out))
""" % DRIVERS


def test_grpc_get_online_features_equals_the_http_route(template, feast_python, tmp_path):
    repo = copy_repo(template, tmp_path / "repo")
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    larder.run("apply")
    larder.run("materialize", iso(START), iso(END))
    server = Server(larder)
    try:
        target = server.flight_url.replace("grpc://", "")
        p = run([feast_python, "-c", GRPC_CLIENT, target, ",".join(FEATURES)], cwd=repo)
        got = json.loads(next(l for l in p.stdout.splitlines() if l.startswith("RESULT "))[7:])
        http = server.online(ONLINE_REQUEST).json()
    finally:
        server.stop()
    assert got["info"].startswith("larder ")
    assert got["error"][0] == "NOT_FOUND" and "nope" in got["error"][1], got["error"]
    assert got["names"] == http["metadata"]["feature_names"]
    kinds = {"int64Val", "int64_val", "doubleVal", "double_val", "floatVal", "float_val", "stringVal", "string_val",
             "jsonVal", "json_val"}
    for name, fv, col in zip(got["names"], got["results"], http["results"]):
        values = []
        for v in fv.get("values", []):
            if not v:
                values.append(None)
            elif "map_val" in v:
                values.append({k: x["string_val"] for k, x in v["map_val"].get("val", {}).items()})
            else:
                (kind, x), = v.items()
                assert kind in kinds, (name, v)
                if kind in ("int64_val", "int64Val"):
                    x = int(x)
                elif kind in ("float_val", "floatVal"):
                    # JSON prints a float32 in its shortest form; HTTP sends its f64 widening.
                    import struct
                    x = struct.unpack("<f", struct.pack("<f", x))[0]
                values.append(x)
        assert values == col["values"], (name, values, col["values"])
        assert fv["statuses"] == col["statuses"], (name, fv["statuses"], col["statuses"])
        ts = [t.replace(".000Z", "Z") if t != "1970-01-01T00:00:00Z" else t for t in fv["event_timestamps"]]
        assert ts == col["event_timestamps"], (name, ts, col["event_timestamps"])


def test_a_postgres_online_store_repo_matches_feast(template, feast_python, tmp_path):
    """The template with Feast's PostgreSQL online store (one database the test starts; Feast's
    tables and Larder's `larder_online` side by side): the same yaml and definitions for both,
    the same answers."""
    from conftest import PostgresServer

    pg = PostgresServer()
    try:
        block = (f"online_store:\n    type: postgres\n    host: 127.0.0.1\n    port: {pg.port}\n"
                 "    database: registry\n    db_schema: public\n    user: larder\n    password: unused\n"
                 "    sslmode: disable\n")

        def repo(name):
            r = copy_repo(template, tmp_path / name)
            cfg = r / "feature_store.yaml"
            text = cfg.read_text()
            old = "online_store:\n    type: sqlite\n    path: data/online_store.db\n"
            assert old in text
            cfg.write_text(text.replace(old, block))
            return r

        feast_repo, larder_repo = repo("feast"), repo("larder")
        cli = feast_cli(feast_python)
        run([cli, "apply"], cwd=feast_repo)
        run([cli, "materialize", iso(START), iso(END)], cwd=feast_repo)
        (want,) = feast_serve(cli, feast_repo, ONLINE_REQUEST)
        larder = Larder(larder_repo)
        larder.env["LARDER_PYTHON"] = feast_python
        larder.run("apply")
        larder.run("materialize", iso(START), iso(END))
        server = Server(larder)
        try:
            assert_online_equal(server.online(ONLINE_REQUEST).json(), want)
            assert requests.get(server.url + "/health", timeout=5).status_code == 200
        finally:
            server.stop()
    finally:
        pg.stop()


def test_the_template_on_a_sqlite_sql_registry(template, feast_answers, feast_python, tmp_path):
    """`registry: {registry_type: sql, path: sqlite:///data/registry.db}` (Feast's SQL registry on
    SQLite): Larder keeps its registry tables there; a CLI apply while the server runs is seen
    by the server; the answers are Feast's."""
    repo = copy_repo(template, tmp_path / "repo")
    cfg = repo / "feature_store.yaml"
    text = cfg.read_text()
    assert "registry: data/registry.db\n" in text
    cfg.write_text(text.replace("registry: data/registry.db\n",
                                "registry:\n    registry_type: sql\n    path: sqlite:///data/registry.db\n"))
    larder = Larder(repo)
    larder.env["LARDER_PYTHON"] = feast_python
    larder.run("apply")
    import sqlite3
    tables = {r[0] for r in sqlite3.connect(repo / "data" / "registry.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"larder_registry_state", "larder_registry_history"} <= tables, tables
    larder.run("materialize", iso(START), iso(END))
    server = Server(larder)
    try:
        assert_online_equal(server.online(ONLINE_REQUEST).json(), feast_answers["online"])
        defs = repo / "feature_definitions.py"
        defs.write_text(defs.read_text() + "\nfrom feast import ValueType\nextra_entity = Entity(name='extra_entity', join_keys=['extra_id'], value_type=ValueType.INT64)\n")
        larder.run("apply")
        deadline = time.time() + 10
        while True:
            names = [e["name"] for e in requests.get(server.url + "/registry", timeout=5).json()["doc"]["entities"]]
            if "extra_entity" in names:
                break
            assert time.time() < deadline, names
            time.sleep(0.2)
        history = larder.run("registry", "history").stdout
        assert "version 2" in history and "Created entity extra_entity" in history, history
    finally:
        server.stop()
