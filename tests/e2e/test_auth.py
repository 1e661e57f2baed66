"""Bearer-token authentication with roles per project: 401 without a valid token, 403 without
the role, decided before the body is read (an unknown feature is not revealed); /health stays
public; the SDK and Arrow Flight carry the token."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import requests

from conftest import Larder, Server
from e2e.repo_factory import make_repo
from e2e.test_ingest import PUSH_DEFS
from larder import FeatureStore, LarderError

NOW = datetime.now(timezone.utc).replace(microsecond=0)
READER, TRAINER, WRITER, ADMIN = "reader-secret-0123456789", "trainer-secret-0123456789", "writer-secret-0123456789", "admin-secret-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("auth")
    make_repo(repo, NOW)
    (repo / "definitions.py").write_text((repo / "definitions.py").read_text() + PUSH_DEFS)
    cfg = repo / "feature_store.yaml"
    (repo / "tokens.yaml").write_text(f"- {{name: trainer, token: {TRAINER}, roles: {{e2e_project: [read_offline]}}}}\n")
    cfg.write_text(cfg.read_text() + f"""auth:
  type: token
  tokens_file: tokens.yaml
  tokens:
    - {{name: reader, token: "${{TEST_READER_TOKEN}}", roles: [read_online]}}
    - {{name: writer, token: {WRITER}, roles: {{e2e_project: [write, read_online]}}}}
    - {{name: admin, token: {ADMIN}, roles: {{"*": [admin]}}}}
    - {{name: elsewhere, token: elsewhere-secret-0123456789, roles: {{other_project: [admin]}}}}
""")
    larder = Larder(repo)
    larder.env["TEST_READER_TOKEN"] = READER
    larder.run("apply")
    s = Server(larder)
    yield s
    s.stop()


def post(server, path, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(server.url + path, json=body, headers=headers, timeout=30)


ONLINE = {"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}}


def test_health_and_docs_are_public(server):
    assert requests.get(server.url + "/health").status_code == 200
    assert requests.get(server.url + "/openapi.json").status_code == 200


def test_no_or_wrong_token_is_401_and_reveals_nothing(server):
    r = post(server, "/get-online-features", ONLINE)
    assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer", r.text
    unknown = post(server, "/get-online-features", {"features": ["secret_view:x"], "entities": {"driver_id": [1]}}, "wrong-token-0123456789")
    assert unknown.status_code == 401 and "secret_view" not in unknown.text
    assert post(server, "/get-online-features", ONLINE, READER[:-1]).status_code == 401
    assert requests.get(server.url + "/metrics").status_code == 401
    assert requests.get(server.url + "/registry").status_code == 401


def test_roles_per_route_and_project(server):
    assert post(server, "/get-online-features", ONLINE, READER).status_code == 200
    r = post(server, "/push", {"push_source_name": "driver_push", "df": {"driver_id": [1]}}, READER)
    assert r.status_code == 403 and "reader" in r.text
    # A token for another project only.
    assert post(server, "/get-online-features", ONLINE, "elsewhere-secret-0123456789").status_code == 403
    t = (NOW - timedelta(minutes=1)).isoformat()
    r = post(server, "/push", {"push_source_name": "driver_push", "df": {"driver_id": [1], "event_timestamp": [t], "trips": [5]}}, WRITER)
    assert r.status_code == 200, r.text
    assert post(server, "/apply", {"definitions": {"project": ""}}, WRITER).status_code == 403
    assert post(server, "/materialize", {"start_ts": "2024-01-01", "end_ts": "2024-01-02"}, READER).status_code == 403
    assert requests.get(server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert requests.get(server.url + "/registry", headers={"Authorization": f"Bearer {READER}"}).status_code == 200


def test_sdk_and_flight_carry_the_token(server):
    entity_df = pd.DataFrame({"driver_id": [1], "event_timestamp": [pd.Timestamp(NOW)]})
    for flight in (None, server.flight_url):
        df = FeatureStore(url=server.url, flight_url=flight, token=TRAINER).get_historical_features(
            entity_df=entity_df, features=["driver_stats:trips"]).to_df()
        assert df["trips"].tolist() == [777]
        with pytest.raises(LarderError) as e:
            FeatureStore(url=server.url, flight_url=flight, token=READER).get_historical_features(
                entity_df=entity_df, features=["driver_stats:trips"]).to_df()
        assert e.value.status == 403
        with pytest.raises(LarderError) as e:
            FeatureStore(url=server.url, flight_url=flight).get_historical_features(
                entity_df=entity_df, features=["driver_stats:trips"]).to_df()
        assert e.value.status == 401
    store = FeatureStore(url=server.url, token=WRITER)
    assert store.get_online_features(["driver_fresh:trips"], [{"driver_id": 1}]).to_dict()["trips"] == [5]


def test_bad_auth_config_is_refused_naming_the_key(tmp_path):
    make_repo(tmp_path, NOW)
    cfg = tmp_path / "feature_store.yaml"
    cfg.write_text(cfg.read_text() + "auth:\n  type: token\n  tokens:\n    - {name: a, token: short, roles: [admin]}\n")
    p = Larder(tmp_path).run("apply", check=False)
    assert p.returncode != 0 and "16 characters" in p.stderr, p.stderr
