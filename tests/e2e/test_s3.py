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

from conftest import Larder, Server, free_port
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
