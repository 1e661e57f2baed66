"""The SDK as a user installs it: `pip install` into a fresh virtualenv, used from outside the
checkout. Its declared dependencies must be enough for `FeatureStore` against a running server
(pandas and pyarrow are the `pandas` extra and are not installed here), and it ships `py.typed`."""

import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import Larder, Server
from e2e.repo_factory import make_repo

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(timezone.utc).replace(microsecond=0)

SCRIPT = """
import importlib.util, json, pathlib, sys
import larder
from larder import FeatureStore
assert "site-packages" in larder.__file__, larder.__file__
assert (pathlib.Path(larder.__file__).parent / "py.typed").is_file()
assert importlib.util.find_spec("pandas") is None, "pandas is an extra, not a dependency"
store = FeatureStore(url=sys.argv[1])
out = store.get_online_features(["driver_stats:trips", "driver_stats:acc_rate"], [{"driver_id": 1}, {"driver_id": 2}])
print(json.dumps({"online": out.to_dict(), "views": sorted(v.name for v in store.list_feature_views())}))
"""


def test_a_fresh_install_has_what_feature_store_needs(tmp_path):
    repo = tmp_path / "repo"
    make_repo(repo, NOW)
    larder = Larder(repo)
    larder.run("apply")
    larder.run("materialize", (NOW - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%S"), NOW.strftime("%Y-%m-%dT%H:%M:%S"))
    server = Server(larder)
    try:
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # Built from a copy: a build writes into its source directory.
        sdk = tmp_path / "sdk"
        shutil.copytree(ROOT / "sdk-python", sdk, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        pip = subprocess.run([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", str(sdk)],
                             capture_output=True, text=True)
        assert pip.returncode == 0, pip.stderr
        run = subprocess.run([str(venv / "bin/python"), "-c", SCRIPT, server.url], cwd=tmp_path, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout)
        body = server.online({"features": ["driver_stats:trips", "driver_stats:acc_rate"], "entities": {"driver_id": [1, 2]}}).json()
        expected = {n: c["values"] for n, c in zip(body["metadata"]["feature_names"], body["results"])}
        assert got["online"] == expected
        assert all(v is not None for v in expected["trips"]), expected
        assert got["views"] == ["customer_profile", "driver_stats", "driver_trips"], got["views"]
    finally:
        server.stop()
