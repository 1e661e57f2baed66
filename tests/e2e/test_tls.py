"""TLS on the HTTP and Arrow Flight listeners (`larder serve --cert --key`), with a certificate
for 127.0.0.1 signed by a CA made here with `openssl`."""

import subprocess
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import requests

from conftest import Larder, free_port, larder_bin
from e2e.repo_factory import make_repo
from larder import FeatureStore

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def openssl(d, *args):
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=larder-test-ca")
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    repo = d / "repo"
    make_repo(repo, NOW)
    larder = Larder(repo)
    larder.run("apply")
    larder.run("materialize", (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S"), NOW.strftime("%Y-%m-%dT%H:%M:%S"))
    port, fport = free_port(), free_port()
    proc = subprocess.Popen([larder_bin(), "-c", str(repo), "serve", "--port", str(port), "--flight-port", str(fport),
                             "--cert", str(d / "server.crt"), "--key", str(d / "server.key")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=larder.env)
    url = f"https://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if requests.get(url + "/health", verify=str(d / "ca.crt"), timeout=1).status_code == 200:
                break
        except requests.exceptions.RequestException:
            time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError(proc.stdout.read())
    yield {"url": url, "flight": f"grpc+tls://127.0.0.1:{fport}", "ca": d / "ca.crt", "port": port}
    proc.terminate()
    proc.wait(timeout=10)


def test_https_with_the_ca_and_refusals_without(tls_server):
    body = {"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}}
    r = requests.post(tls_server["url"] + "/get-online-features", json=body, verify=str(tls_server["ca"]))
    assert r.status_code == 200 and r.json()["results"][1]["values"] == [777]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_server["url"] + "/health", timeout=5)  # not in the system trust store
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_server['port']}/health", timeout=5)  # plain HTTP is not spoken


def test_sdk_over_https_and_flight_tls(tls_server):
    entity_df = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [pd.Timestamp(NOW)] * 2})
    for flight in (None, tls_server["flight"]):
        store = FeatureStore(url=tls_server["url"], flight_url=flight, tls_root_certs=tls_server["ca"])
        df = store.get_historical_features(entity_df=entity_df, features=["driver_stats:trips"]).to_df()
        assert df["trips"].tolist()[0] == 777
    store = FeatureStore(url=tls_server["url"], tls_root_certs=tls_server["ca"])
    assert store.get_online_features(["driver_stats:trips"], [{"driver_id": 1}]).to_dict()["trips"] == [777]
