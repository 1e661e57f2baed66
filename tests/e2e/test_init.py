"""`larder init` writes a repo that works at once (apply, materialize-incremental now, serve,
answer), with data ending at the current hour; `larder validate` checks definitions as apply
does without applying them."""

import subprocess
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from conftest import Larder, Server, larder_bin


def larder(cwd, *args, check=True):
    p = subprocess.run([larder_bin(), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                       env=Larder(cwd).env)
    if check:
        assert p.returncode == 0, f"larder {' '.join(args)}:\n{p.stdout}\n{p.stderr}"
    return p


def test_an_initialized_repo_applies_materializes_and_serves_its_newest_rows(tmp_path):
    p = larder(tmp_path, "init", "demo")
    assert "larder apply" in p.stdout
    repo = tmp_path / "demo"
    data = pd.read_parquet(repo / "data" / "driver_stats.parquet")
    now = datetime.now(timezone.utc)
    newest = data["event_timestamp"].max()
    assert now - timedelta(hours=1) <= newest <= now
    assert newest - data["event_timestamp"].min() == pd.Timedelta(days=15)
    v = larder(repo, "validate")
    assert "valid" in v.stdout and "Created feature view driver_hourly_stats" in v.stdout, v.stdout
    assert not (repo / "data" / "registry.json").exists(), "validate applied something"
    larder(repo, "apply")
    larder(repo, "materialize-incremental", "now")
    server = Server(Larder(repo))
    try:
        drivers = [1001, 1002, 1003, 1004, 1005]
        r = server.online({"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips",
                                        "transformed_conv_rate:conv_rate_plus_val1"],
                           "entities": {"driver_id": drivers, "val_to_add": [10] * 5, "val_to_add_2": [20] * 5}})
        assert r.status_code == 200, r.text
        body = r.json()
        got = {n: res["values"] for n, res in zip(body["metadata"]["feature_names"], body["results"])}
        latest = data.sort_values("event_timestamp").groupby("driver_id").tail(1).set_index("driver_id")
        assert got["avg_daily_trips"] == [int(latest.loc[d, "avg_daily_trips"]) for d in drivers]
        for i, d in enumerate(drivers):
            assert got["conv_rate"][i] == pytest.approx(float(latest.loc[d, "conv_rate"]), rel=1e-6)
            assert got["conv_rate_plus_val1"][i] == pytest.approx(float(latest.loc[d, "conv_rate"]) + 10, rel=1e-6)
    finally:
        server.stop()


def test_init_refuses_a_non_empty_directory_and_unknown_templates(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    p = larder(tmp_path, "init", "taken", check=False)
    assert p.returncode != 0 and "not empty" in p.stderr, p.stderr
    p = larder(tmp_path, "init", "other", "-t", "no_such_template", check=False)
    assert p.returncode != 0 and "unknown template" in p.stderr, p.stderr
    assert not (tmp_path / "other").exists()


def test_validate_names_the_problem_and_applies_nothing(tmp_path):
    larder(tmp_path, "init", "demo")
    repo = tmp_path / "demo"
    larder(repo, "apply")
    before = (repo / "data" / "registry.json").read_bytes()
    defs = repo / "feature_repo.py"
    defs.write_text(defs.read_text().replace("entities=[driver],", "entities=[driver, Entity(name=\"ghost\", join_keys=[\"ghost_id\"])],", 1))
    p = larder(repo, "validate", check=False)
    assert p.returncode != 0 and "ghost" in (p.stderr + p.stdout), p.stdout + p.stderr
    assert (repo / "data" / "registry.json").read_bytes() == before


def test_serve_takes_its_settings_from_the_environment(tmp_path):
    """As in a container: the repo, address and limits from LARDER_* variables, no flags."""
    import os
    import time

    import requests

    from conftest import free_port

    larder(tmp_path, "init", "demo")
    repo = tmp_path / "demo"
    larder(repo, "apply")
    port = free_port()
    env = dict(Larder(repo).env, LARDER_REPO=str(repo), LARDER_HOST="127.0.0.1", LARDER_PORT=str(port),
               LARDER_FLIGHT_PORT="0", LARDER_MAX_ENTITIES="2")
    proc = subprocess.Popen([larder_bin(), "serve"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.time() < deadline, "larder serve did not start from the environment"
            time.sleep(0.05)
        body = {"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001, 1002, 1003]}}
        r = requests.post(url + "/get-online-features", json=body, timeout=10)
        assert r.status_code == 422 and "2" in r.text, r.text  # LARDER_MAX_ENTITIES applies
        body["entities"]["driver_id"] = [1001, 1002]
        assert requests.post(url + "/get-online-features", json=body, timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
