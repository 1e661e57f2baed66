"""The web UI at /ui in a real headless Chromium (Debian's, driven by Playwright), against a real
server on a repo made here: object lists and search, the lineage graph's edges, freshness with a
stale view, the history of applies, the try-it form, and the token prompt when auth is on.
A screenshot is saved to tests/artifacts/ui-*.png."""

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import Larder, Server
from e2e.repo_factory import make_repo

NOW = datetime.now(timezone.utc).replace(microsecond=0)
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM = os.environ.get("LARDER_CHROMIUM", "/usr/bin/chromium")

EXTRA = """
short_ttl = FeatureView(
    name="short_ttl", entities=[driver], ttl=timedelta(hours=1), tags={"team": "pricing"},
    schema=[Field(name="trips", dtype=Int64)], source=driver_source, owner="ana@example.com",
)

from larder import OnDemandFeatureView, RequestSource

bonus = RequestSource(name="bonus", schema=[Field(name="bonus", dtype=Float64)])
boosted = OnDemandFeatureView(
    name="boosted", sources=[driver_stats, bonus], mode="sql",
    schema=[Field(name="boosted_rate", dtype=Float64)],
    expressions={"boosted_rate": "acc_rate + bonus"},
)
scoring = FeatureService(name="scoring", features=[boosted, driver_trips])
"""


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    repo = tmp_path_factory.mktemp("ui")
    make_repo(repo, NOW)
    defs = repo / "definitions.py"
    defs.write_text(defs.read_text() + EXTRA)
    larder = Larder(repo)
    larder.run("apply")
    larder.run("materialize", iso(NOW - timedelta(days=2)), iso(NOW))
    defs.write_text(defs.read_text() + '\nextra = FeatureView(name="extra", entities=[driver], schema=[Field(name="trips", dtype=Int64)], source=driver_source)\n')
    larder.run("apply")
    server = Server(larder)
    yield server
    server.stop()


def open_ui(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url + "/ui")
    page.wait_for_selector("body[data-loaded=true]", timeout=15000)
    return page


def test_objects_and_search(browser, deployed):
    page = open_ui(browser, deployed.url)
    names = page.eval_on_selector_all(".obj", "els => els.map(e => e.dataset.kind + ':' + e.dataset.name)")
    for want in ["entity:driver", "entity:customer", "feature view:driver_stats", "feature view:customer_profile",
                 "feature service:svc", "data source:driver_source", "feature view:short_ttl",
                 "on-demand view:boosted", "data source:bonus", "feature service:scoring"]:
        assert want in names, names
    assert "project e2e_project · registry version 2" in page.inner_text("#project")
    page.fill("#search", "team=pricing")
    assert page.eval_on_selector_all(".obj", "els => els.map(e => e.dataset.name)") == ["short_ttl"]
    card = page.inner_text(".obj")
    assert "ana@example.com" in card and "3600 s" in card
    page.fill("#search", "customer")
    shown = page.eval_on_selector_all(".obj", "els => els.map(e => e.dataset.name)")
    assert set(shown) == {"customer", "customer_source", "customer_profile"}, shown
    ARTIFACTS.mkdir(exist_ok=True)
    page.fill("#search", "")
    page.screenshot(path=str(ARTIFACTS / "ui-objects.png"), full_page=True)


def test_lineage_graph_has_the_right_edges(browser, deployed):
    page = open_ui(browser, deployed.url)
    page.click("#tabs button[data-tab=lineage]")
    edges = set(page.eval_on_selector_all("#lineage .edge", "els => els.map(e => e.dataset.from + '>' + e.dataset.to)"))
    for want in ["src:driver_source>fv:driver_stats", "src:customer_source>fv:customer_profile",
                 "fv:driver_stats>fs:svc", "fv:customer_profile>fs:svc", "src:driver_source>fv:short_ttl",
                 "fv:driver_stats>odfv:boosted", "src:bonus>odfv:boosted", "odfv:boosted>fs:scoring",
                 "fv:driver_trips>fs:scoring"]:
        assert want in edges, edges
    assert "fv:driver_trips>fs:svc" not in edges and "fv:driver_stats>fs:scoring" not in edges
    page.click('#lineage .node[data-id="fv:driver_stats"]')
    assert "driver_stats" in page.inner_text("#detail")
    hot = page.eval_on_selector_all("#lineage .edge.hot", "els => els.map(e => e.dataset.from + '>' + e.dataset.to)")
    assert set(hot) == {"src:driver_source>fv:driver_stats", "fv:driver_stats>fs:svc", "fv:driver_stats>odfv:boosted"}, hot
    page.screenshot(path=str(ARTIFACTS / "ui-lineage.png"), full_page=True)


def test_freshness_marks_views_older_than_their_ttl(browser, deployed):
    page = open_ui(browser, deployed.url)
    page.click("#tabs button[data-tab=freshness]")
    stale = page.eval_on_selector_all(".fresh-row.stale", "els => els.map(e => e.dataset.view)")
    assert "short_ttl" in stale and "driver_stats" not in stale, stale
    assert page.eval_on_selector_all('.fresh-row[data-view="driver_stats"] .interval', "els => els.length") == 1
    assert page.inner_text('.fresh-row[data-view="extra"] .newest-ts') == "none"
    # A time axis (UTC) under the chart: ticks from the oldest interval start to now.
    ticks = page.eval_on_selector_all("#fresh-axis .tick text", "els => els.map(e => e.textContent)")
    assert len(ticks) == 5, ticks
    assert ticks[0] == (NOW - timedelta(days=2)).strftime("%m-%d %H:%M"), ticks
    now = datetime.now(timezone.utc)
    last = min((datetime.strptime(f"{y}-{ticks[-1]}", "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
                for y in (now.year - 1, now.year)), key=lambda t: abs((now - t).total_seconds()))
    assert abs((now - last).total_seconds()) < 180, ticks
    page.screenshot(path=str(ARTIFACTS / "ui-freshness.png"), full_page=True)


def test_history_shows_what_each_apply_changed(browser, deployed):
    page = open_ui(browser, deployed.url)
    page.click("#tabs button[data-tab=history]")
    versions = page.eval_on_selector_all(".version", "els => els.map(e => e.dataset.version)")
    assert versions == ["2", "1"]
    assert "Created feature view extra" in page.inner_text('.version[data-version="2"]')
    assert "Created feature view driver_stats" in page.inner_text('.version[data-version="1"]')


def test_try_it_returns_the_online_values(browser, deployed):
    page = open_ui(browser, deployed.url)
    page.click("#tabs button[data-tab=try]")
    page.select_option("#try-target", "fv:driver_stats")
    page.fill("#key-driver_id", "1, 999999")
    page.click("#try-run")
    page.wait_for_selector("#try-table")
    rows = page.eval_on_selector_all("#try-table tr", "rows => rows.map(r => [...r.children].map(c => c.textContent))")
    header = rows[0]
    assert header[0] == "driver_id" and "trips" in header
    assert rows[1][header.index("trips")] == "777" and rows[2][header.index("trips")] == "null"
    page.screenshot(path=str(ARTIFACTS / "ui-try.png"), full_page=True)


def test_the_ui_asks_for_a_token_when_auth_is_on(browser, tmp_path):
    make_repo(tmp_path, NOW)
    token = "ui-token-0123456789abcdef"
    cfg = tmp_path / "feature_store.yaml"
    cfg.write_text(cfg.read_text() + f"auth:\n  type: token\n  tokens:\n    - {{name: ui, token: {token}, roles: [read_online]}}\n")
    larder = Larder(tmp_path)
    larder.run("apply")
    server = Server(larder)
    try:
        page = browser.new_page()
        page.goto(server.url + "/ui")
        page.wait_for_selector("#login", state="visible")
        page.fill("#token", token)
        page.click("#token-save")
        page.wait_for_selector("body[data-loaded=true]", timeout=15000)
        assert "feature view:driver_stats" in page.eval_on_selector_all(".obj", "els => els.map(e => e.dataset.kind + ':' + e.dataset.name)")
    finally:
        server.stop()
