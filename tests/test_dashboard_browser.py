"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright; `make
test-browser`): every page, opened from disk, loads with no console error and no request that
leaves the site's folder, draws its plots, and shows the store's tiers and artifacts; the
planted regression is marked and the same-code rerun is not; the tables sort and filter; the
overview fits a phone's width. A screenshot of each page is kept in build/dashboard-screenshots/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backdrop.dashboard.build import EMULATED_BADGE, DashboardSpec, build_dashboard

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parent.parent / "build" / "dashboard-screenshots"
DRAWN = "Array.from(document.querySelectorAll('div.plot')).every(d => d.querySelector('.main-svg'))"


@pytest.fixture(scope="module")
def site(dashboard_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("browser-site") / "site"
    build_dashboard(DashboardSpec(store=str(dashboard_store["store"]), out=out))
    return out


@pytest.fixture(scope="module")
def browser():
    from backdrop.dashboard.browser import chromium

    with chromium() as context:
        yield context


def _open(browser, path: Path, width: int = 1280):
    """The page at ``path`` loaded and drawn, with what it logged and requested."""
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_function(DRAWN, timeout=30_000)
    return page, errors, requests


def _inside(site: Path, url: str) -> bool:
    return url.startswith("data:") or url.startswith(site.resolve().as_uri() + "/")


def test_every_page_loads_offline_without_errors_and_is_screenshotted(site, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = sorted(site.glob("*.html"))
    assert len(pages) >= 5
    for path in pages:
        page, errors, requests = _open(browser, path)
        assert errors == [], f"{path.name}: {errors}"
        outside = [u for u in requests if not _inside(site, u)]
        assert outside == [], f"{path.name} requested {outside}"
        assert any(u.endswith("/assets/plotly.min.js") for u in requests)
        n_plots = page.locator("div.plot").count()
        assert page.locator("div.plot .main-svg").count() >= n_plots
        page.screenshot(path=str(SHOTS / f"{path.stem}.png"), full_page=True)
        page.close()


def test_the_overview_shows_the_tiers_and_fits_a_phone(site, browser, dashboard_store):
    page, errors, _ = _open(browser, site / "index.html")
    host = dashboard_store["host_tier"]
    tiers = page.locator("section.card").evaluate_all("cards => cards.map(c => c.dataset.tier)")
    assert sorted(tiers) == sorted([host, "emulated-arm64"])
    emulated = page.locator('section.card[data-tier="emulated-arm64"]')
    assert EMULATED_BADGE in emulated.inner_text()
    assert "parity not run" in emulated.inner_text()
    host_card = page.locator(f'section.card[data-tier="{host}"]')
    assert "parity verified" in host_card.inner_text() and EMULATED_BADGE not in host_card.inner_text()
    assert "4 significant changes" in host_card.inner_text()
    # The card's plot holds the measured p50 of the bucket's best artifact, and the budget line.
    bars = page.locator(f"#card-{host} div.plot").evaluate("d => d.data.map(t => [t.name, t.x])")
    summary = json.loads((site / "site.json").read_text())
    (latest,) = next(t for t in summary["tiers"] if t["tier"] == host)["latest"]
    assert ["best artifact, end to end", [latest["e2e_p50_ms"]]] in bars
    page.close()

    phone, errors, _ = _open(browser, site / "index.html", width=390)
    assert errors == []
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the overview is {overflow}px wider than a phone's screen"
    phone.screenshot(path=str(SHOTS / "index-phone.png"), full_page=True)
    phone.close()


def test_the_tier_page_marks_the_planted_regression_only(site, browser, dashboard_store):
    host = dashboard_store["host_tier"]
    page, errors, _ = _open(browser, site / f"tier-{host}.html")
    assert errors == []
    keys = page.locator("#artifact-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert keys == ["a/onnx-fp32-explicit", "a/ort-fp32-explicit"]

    planted = page.locator(f"#run-{dashboard_store['planted'][:12]}")
    verdicts = planted.locator("tr[data-verdict]").evaluate_all("rows => rows.map(r => r.dataset.verdict)")
    assert verdicts == ["regression"] * 4
    assert "4 regressions" in planted.inner_text()
    same = page.locator(f"#run-{dashboard_store['same'][:12]}")
    assert same.locator("tr[data-verdict]").count() == 0 and "0 regressions, 0 improvements" in same.inner_text()
    first = page.locator(f"#run-{dashboard_store['base'][:12]}")
    assert "nothing to compare" in first.inner_text()

    # Over time: one regression mark per artifact, at the planted run; none elsewhere.
    marks = page.locator("div.plot[data-figure='fig-time-a']").evaluate(
        "d => d.data.filter(t => t.name === 'regression' || t.name === 'improvement').map(t => [t.name, t.x.length])"
    )
    assert marks == [["regression", 2]]

    # Sorting by p50 and filtering by text work on the rendered table.
    header = page.locator("#artifact-table th", has_text="p50 ms").first
    header.click()
    values = page.locator("#artifact-table tbody tr td:nth-child(5)").evaluate_all("cells => cells.map(c => +c.dataset.v)")
    assert values == sorted(values)
    header.click()
    values = page.locator("#artifact-table tbody tr td:nth-child(5)").evaluate_all("cells => cells.map(c => +c.dataset.v)")
    assert values == sorted(values, reverse=True)
    page.fill("input[data-filter-for='artifact-table']", "ort")
    assert page.locator("#artifact-table tbody tr:not([hidden])").count() == 1
    assert page.locator("[data-count-for='artifact-table']").inner_text() == "1 of 2 artifacts"
    page.close()


def test_the_emulated_device_page_says_what_it_is(site, browser):
    page, errors, _ = _open(browser, site / "device-qemu-arm64.html")
    assert errors == []
    text = page.inner_text("main")
    assert EMULATED_BADGE in text and "aarch64" in text and "Gate readings" in text
    page.close()
