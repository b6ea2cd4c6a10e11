"""`backdrop dashboard`: the site built from a store of real runs (this host's A/B of one export,
the emulated arm64 device, a parity check) plus a planted regression. What the pages say is
checked here; tests/test_dashboard_browser.py opens them in chromium."""

from __future__ import annotations

import json
import re
import sys

import pytest

from backdrop.core.errors import ConfigError
from backdrop.dashboard.build import EMULATED_BADGE, MARKER, DashboardSpec, build_dashboard
from backdrop.dashboard.model import Budgets
from backdrop.results import StoreError, open_store

# Measures time: `make test` runs this file alone, after the tests spread over the cores.
pytestmark = pytest.mark.timed


@pytest.fixture(scope="module")
def site(dashboard_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    report = build_dashboard(DashboardSpec(store=str(dashboard_store["store"]), out=out))
    return out, report, json.loads((out / "site.json").read_text())


def _tier(summary, name):
    return next(t for t in summary["tiers"] if t["tier"] == name)


def test_the_site_shows_every_tier_artifact_and_only_the_planted_regression(site, dashboard_store):
    out, report, summary = site
    host = dashboard_store["host_tier"]
    assert set(report.tiers) == {host, "emulated-arm64"} and report.runs == 4
    names = {p.name for p in report.pages}
    assert {"index.html", f"tier-{host}.html", "tier-emulated-arm64.html", "device-host.html", "device-qemu-arm64.html"} <= names
    assert (out / MARKER).is_file() and (out / "assets" / "plotly.min.js").stat().st_size > 1_000_000

    tier = _tier(summary, host)
    assert tier["artifacts"] == ["a/onnx-fp32-explicit", "a/ort-fp32-explicit"] and tier["parity"] == "verified"
    runs = {r["run_id"]: r for r in tier["runs"]}
    assert runs[dashboard_store["base"]]["previous"] == ""
    assert runs[dashboard_store["same"]]["previous"] == dashboard_store["base"]
    assert runs[dashboard_store["same"]]["flagged"] == [], "a same-code rerun in one session was marked"
    planted = runs[dashboard_store["planted"]]
    assert planted["previous"] == dashboard_store["same"]
    assert {(c["key"], c["metric"], c["verdict"]) for c in planted["flagged"]} == {
        (k, m, "regression") for k in tier["artifacts"] for m in ("e2e", "model")
    }
    assert all(c["ratio"] == pytest.approx(1.3) for c in planted["flagged"])
    # The card: the newest run of the bucket (the planted one), its fastest artifact, measured numbers.
    (card,) = tier["latest"]
    assert card["run_id"] == dashboard_store["planted"] and card["default_model"] and card["e2e_p50_ms"] > 0

    emulated = _tier(summary, "emulated-arm64")
    assert emulated["emulated"] and emulated["parity"] == "not run" and emulated["runs"][0]["previous"] == ""
    assert emulated["artifacts"] == ["a/onnx-fp32-explicit"]

    index = (out / "index.html").read_text()
    assert f'data-tier="{host}"' in index and 'data-tier="emulated-arm64"' in index
    assert index.count(EMULATED_BADGE) == 1 and "parity verified" in index and "parity not run" in index
    host_page = (out / f"tier-{host}.html").read_text()
    assert host_page.count('data-verdict="regression"') == 4 and 'data-verdict="improvement"' not in host_page
    assert 'data-key="a/ort-fp32-explicit"' in host_page and "parity verified" in host_page
    device = (out / "device-qemu-arm64.html").read_text()
    assert EMULATED_BADGE in device and "aarch64" in device


def test_every_page_references_only_files_of_the_site(site):
    out, report, _ = site
    for page in [*report.pages, out / "assets" / "site.css", out / "assets" / "site.js"]:
        text = page.read_text()
        refs = re.findall(r'(?:src|href)="([^"]*)"', text) + re.findall(r"url\(([^)]*)\)", text)
        for ref in refs:
            if ref.startswith("#") or ref == "data:,":
                continue
            assert "://" not in ref and not ref.startswith("//"), f"{page.name} fetches {ref}"
            assert (out / ref.split("#")[0]).is_file(), f"{page.name} links to a missing {ref}"


def test_an_empty_store_says_so_and_a_failed_build_keeps_the_old_site(tmp_path):
    out = tmp_path / "site"
    report = build_dashboard(DashboardSpec(store=str(tmp_path / "empty.db"), out=out))
    assert report.tiers == [] and report.runs == 0
    assert "holds no runs yet" in (out / "index.html").read_text()
    before = (out / "index.html").read_text()
    with pytest.raises(StoreError):
        build_dashboard(DashboardSpec(store="postgresql://nobody@127.0.0.1:1/none", out=out))
    assert (out / "index.html").read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "site"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not a backdrop site"):
        build_dashboard(DashboardSpec(store=str(tmp_path / "empty.db"), out=mine))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_budgets_are_per_tier_and_checked():
    assert Budgets(33.0, {"android-sm8650": 16.7}).of("android-sm8650") == 16.7
    assert Budgets().of("host-x86_64") == 33.0
    with pytest.raises(ConfigError, match="positive"):
        Budgets(0.0)


def test_cli_builds_the_site_and_refuses_a_bad_budget(dashboard_store, tmp_path, monkeypatch, capsys):
    from backdrop.orchestration import cli

    def main(*args):
        monkeypatch.setattr(sys, "argv", ["backdrop", "dashboard", *args])
        with pytest.raises(SystemExit) as e:
            cli.main()
        return e.value.code, capsys.readouterr()

    out = tmp_path / "site"
    store = str(dashboard_store["store"])
    code, captured = main("--store", store, "--out", str(out), "--tier-budget", "emulated-arm64=5000", "--format", "json")
    assert code in (0, None), captured.err
    assert json.loads(captured.out)["runs"] == 4
    assert _tier(json.loads((out / "site.json").read_text()), "emulated-arm64")["budget_ms"] == 5000
    code, captured = main("--store", store, "--out", str(out), "--tier-budget", "host=fast")
    assert code == 2 and "TIER=MS" in captured.err
    with open_store(store) as db:
        assert len(db.runs()) == 4, "building the site wrote to the store"
