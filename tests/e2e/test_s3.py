"""Sources on object storage: `s3://` paths read through object_store from a local
S3-compatible server (moto, started here on a free port): apply (schema inference),
materialize and training sets all read from S3."""

import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from conftest import Larder, Server, free_port, larder_bin
from e2e.repo_factory import expected_latest, make_repo

NOW = datetime.now(timezone.utc).replace(microsecond=0)
START, END = NOW - timedelta(days=2), NOW
BUCKET = "larder-test"


@pytest.fixture(scope="module")
def s3():
    try:
        import moto  # noqa: F401
    except ImportError:
        pytest.fail("moto[server] is missing: scripts/test.sh installs it with the SDK's test extras")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_sources_on_s3(s3, tmp_path, monkeypatch):
    import boto3

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    data = make_repo(tmp_path, NOW)
    client = boto3.client("s3", endpoint_url=s3)
    client.create_bucket(Bucket=BUCKET)
    for name in ["drivers", "customers"]:
        client.upload_file(str(tmp_path / f"data/{name}.parquet"), BUCKET, f"features/{name}.parquet")
        (tmp_path / f"data/{name}.parquet").unlink()  # only S3 has the data now
    defs = tmp_path / "definitions.py"
    defs.write_text(defs.read_text().replace('path="data/', f'path="s3://{BUCKET}/features/'))
    cfg = tmp_path / "feature_store.yaml"
    cfg.write_text(cfg.read_text().replace("offline_store:\n  type: file\n",
                                           f"offline_store:\n  type: file\n  s3_endpoint_override: {s3}\n"))
    larder = Larder(tmp_path)
    out = larder.run("apply").stdout
    assert "Created feature view driver_stats" in out, out
    assert "driver_stats: 20 rows" in larder.run("materialize", START.strftime("%Y-%m-%dT%H:%M:%S"), END.strftime("%Y-%m-%dT%H:%M:%S")).stdout
    server = Server(larder)
    try:
        exp = expected_latest(data["drivers"], "driver_id", "event_timestamp", pd.Timestamp(START), pd.Timestamp(END), "created")
        r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": list(range(1, 21))}})
        assert r.status_code == 200, r.text
        assert r.json()["results"][1]["values"] == [int(exp.loc[d]["trips"]) for d in range(1, 21)]
        from larder import FeatureStore

        entity_df = pd.DataFrame({"driver_id": [1, 5], "event_timestamp": [pd.Timestamp(END)] * 2})
        df = FeatureStore(url=server.url).get_historical_features(entity_df=entity_df, features=["driver_stats:trips"]).to_df()
        assert df["trips"].tolist() == [int(exp.loc[1]["trips"]), int(exp.loc[5]["trips"])]
    finally:
        server.stop()
    # A wrong bucket is a clear error naming the source.
    defs.write_text(defs.read_text().replace(f"s3://{BUCKET}/", "s3://no-such-bucket/"))
    p = larder.run("plan", check=False)
    assert p.returncode != 0 and "driver_source" in (p.stdout + p.stderr), p.stdout + p.stderr


def s3_env(larder: Larder, endpoint: str) -> None:
    larder.env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint})


def test_registry_on_s3_keeps_every_version_under_concurrent_applies(s3, tmp_path):
    import json

    import boto3

    client = boto3.client("s3", endpoint_url=s3, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    bucket = "larder-registry"
    client.create_bucket(Bucket=bucket)
    key = "team/registry.db"
    data = make_repo(tmp_path / "main", NOW)
    repos = [tmp_path / "main"] + [tmp_path / f"writer{i}" for i in range(4)]
    for i, repo in enumerate(repos):
        if i:
            make_repo(repo, NOW)
            # Each writer's definitions differ (a description), so each apply is a change.
            defs = repo / "definitions.py"
            defs.write_text(defs.read_text().replace('name="driver_stats",', f'name="driver_stats", description="writer {i}",'))
            assert f"writer {i}" in defs.read_text()
        cfg = repo / "feature_store.yaml"
        cfg.write_text(cfg.read_text().replace("registry: data/registry.json", f"registry: s3://{bucket}/{key}"))
    main = Larder(repos[0])
    s3_env(main, s3)
    assert "Created feature view driver_stats" in main.run("apply").stdout
    assert not (repos[0] / "data/registry.json").exists(), "the registry is on S3, not local"
    state = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert state["version"] == 1 and {v["name"] for v in state["doc"]["feature_views"]} >= {"driver_stats"}

    # Four applies at once, from four processes: conditional writes keep every one.
    writers = []
    for repo in repos[1:]:
        w = Larder(repo)
        s3_env(w, s3)
        writers.append(subprocess.Popen([larder_bin(), "-c", str(repo), "apply"], env=w.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for w in writers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, out + err
    history = main.run("registry", "history").stdout
    versions = [int(line.split()[1]) for line in history.splitlines() if line.startswith("version ")]
    assert versions == [1, 2, 3, 4, 5], history
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=key + ".history/")["Contents"])
    assert keys == [f"{key}.history/v{v:08}.json" for v in range(1, 6)], keys
    final = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert final["version"] == 5
    described = [v["description"] for v in final["doc"]["feature_views"] if v["name"] == "driver_stats"]
    assert described[0] in {f"writer {i}" for i in range(1, 5)}, described

    # Materialization records live in the S3 state too; a server serves from it.
    start, end = START.strftime("%Y-%m-%dT%H:%M:%S"), END.strftime("%Y-%m-%dT%H:%M:%S")
    assert "driver_stats: 20 rows" in main.run("materialize", start, end).stdout
    state = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert state["materializations"]["driver_stats"][0]["end"].startswith(END.strftime("%Y-%m-%dT%H:%M:%S"))
    server = Server(main)
    try:
        exp = expected_latest(data["drivers"], "driver_id", "event_timestamp", pd.Timestamp(START), pd.Timestamp(END), "created")
        r = server.online({"features": ["driver_stats:trips"], "entities": {"driver_id": [1, 2, 3]}})
        assert r.status_code == 200, r.text
        assert r.json()["results"][1]["values"] == [int(exp.loc[d]["trips"]) for d in (1, 2, 3)]
    finally:
        server.stop()
    main.run("teardown")
    assert client.list_objects_v2(Bucket=bucket, Prefix="team/").get("KeyCount", 0) == 0


def test_a_missing_bucket_is_a_clear_error(s3, tmp_path):
    make_repo(tmp_path, NOW)
    cfg = tmp_path / "feature_store.yaml"
    cfg.write_text(cfg.read_text().replace("registry: data/registry.json", "registry: s3://no-such-bucket/registry.db"))
    larder = Larder(tmp_path)
    s3_env(larder, s3)
    p = larder.run("apply", check=False)
    assert p.returncode != 0 and "s3://no-such-bucket/registry.db" in p.stderr, p.stdout + p.stderr
    assert "panicked" not in p.stderr
