"""``backdrop dashboard``: the results store as a static site (plain files: it opens from disk
or any static host, and fetches nothing at view time).

Pages: ``index.html`` (a card per device tier), ``tier-<tier>.html`` (every artifact, the
latency distributions, p50 over time with compare's change marks, what changed per run) and
``device-<device>.html`` (what the device is, its runs, parity checks and gate readings).
``site.json`` holds what the pages show, for machines. ``assets/`` has plotly.js (from the
plotly package), the style sheet and the small script that draws the plots and sorts and
filters the tables.

The site is written into a temporary folder next to ``out`` and swapped in whole, so a failed
build leaves the previous site (or nothing) as it was. ``out`` must be empty, missing, or a
site this command wrote (it has the ``.backdrop-site`` marker): nothing else is overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from backdrop.bench.compare import ALPHA, THRESHOLD
from backdrop.core.errors import ConfigError
from backdrop.dashboard import figures
from backdrop.dashboard.model import Budgets, SiteData, TierView, collect, slug

MARKER = ".backdrop-site"
EMULATED_BADGE = "functional only: not a latency claim"


@dataclass(frozen=True)
class DashboardSpec:
    """What to build.

    Attributes:
        store: the results store (URL or SQLite path; None: results/backdrop.db).
        out: the site's folder.
        budgets: the end-to-end p50 budget per tier.
        threshold, alpha: compare's criteria for marking a change.
        default_checkpoint: the model whose artifacts the tier cards prefer (None: the bundled
            default model).
    """

    store: str | None
    out: Path
    budgets: Budgets = field(default_factory=Budgets)
    threshold: float = THRESHOLD
    alpha: float = ALPHA
    default_checkpoint: Path | None = None


@dataclass(frozen=True)
class SiteReport:
    """What was built: the folder, its pages, the tiers, runs and flagged changes shown."""

    out: Path
    pages: list[Path]
    tiers: list[str]
    runs: int
    flagged: int


def build_dashboard(spec: DashboardSpec, progress: Callable[[str], None] | None = None) -> SiteReport:
    """Read the store and write the site (see the module docstring).

    Raises:
        StoreError: the store cannot be opened or read.
        ConfigError: ``out`` holds files that are not a backdrop site.
    """
    from backdrop.core.fsutil import file_sha256
    from backdrop.results import open_store

    out = Path(spec.out)
    _check_out(out)
    checkpoint = spec.default_checkpoint
    if checkpoint is None:
        from backdrop.models.checkpoint import default_checkpoint_path

        checkpoint = default_checkpoint_path()
    default_sha = file_sha256(checkpoint)
    with open_store(spec.store) as store:
        data = collect(store, spec.budgets, default_sha, spec.threshold, spec.alpha, progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        pages = render_site(data, tmp, progress)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SiteReport(out, [out / p.relative_to(tmp) for p in pages], [t.tier for t in data.tiers], data.runs,
                      sum(len(r.flagged) for t in data.tiers for r in t.runs))


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; name a folder for the site.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(
            f"--out {out} holds files that are not a backdrop site (no {MARKER} marker), so the dashboard will not "
            "overwrite them: name an empty or new folder."
        )


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp`` (both in one folder, so each rename is atomic)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("backdrop.dashboard", "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["ms"] = _ms
    env.filters["slug"] = slug
    env.filters["mb"] = lambda v: "not measured" if v is None else f"{v:.1f}"
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M UTC") if d else ""
    env.filters["short"] = lambda s, n=12: (s or "")[:n]
    env.filters["versions"] = lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items()))
    return env


def _ms(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "not measured"
    return f"{value:.{digits}f}" if value < 1000 else f"{value:,.0f}"


def render_site(data: SiteData, folder: Path, progress: Callable[[str], None] | None = None) -> list[Path]:
    """Write every page and asset of ``data`` into ``folder``; the pages written."""
    env = _environment()
    assets = folder / "assets"
    assets.mkdir(parents=True)
    from plotly.offline import get_plotlyjs

    (assets / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    static = resources.files("backdrop.dashboard").joinpath("static")
    for name in ("site.css", "site.js"):
        (assets / name).write_text(static.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
    common = {
        "site": data, "tiers": data.tiers, "devices": data.devices, "badge": EMULATED_BADGE,
        "plot_config": figures.config_json(), "version": _version(),
    }
    pages = []

    def write(name: str, template: str, **context) -> None:
        if progress:
            progress(f"page {name}")
        figs = context.pop("figs", {})
        payload = {k: figures.figure_payload(f) for k, f in figs.items() if f is not None}
        html = env.get_template(template).render(**common, **context, figs=payload, page=name)
        path = folder / name
        path.write_text(html, encoding="utf-8")
        pages.append(path)

    write("index.html", "overview.html", figs={f"card-{t.slug}": figures.tier_card_figure(t) for t in data.tiers})
    for tier in data.tiers:
        figs = {"distribution": figures.distribution_figure(tier.rows)}
        buckets = sorted({r.bucket for r in tier.rows})
        for b in buckets:
            figs[f"time-{b}"] = figures.over_time_figure(tier, b)
        write(f"tier-{tier.slug}.html", "tier.html", tier=tier, buckets=buckets, figs=figs)
    for device in data.devices:
        write(f"device-{device.slug}.html", "device.html", device=device, tier_slug=_tier_slug(data, device.tier))
    (folder / "site.json").write_text(json.dumps(site_summary(data), indent=1, default=str) + "\n", encoding="utf-8")
    (folder / MARKER).write_text("written by backdrop dashboard; the whole folder is replaced on each build\n")
    return pages


def _tier_slug(data: SiteData, tier: str) -> str:
    return next((t.slug for t in data.tiers if t.tier == tier), "")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("backdrop")
    except PackageNotFoundError:
        return "unknown"


def site_summary(data: SiteData) -> dict:
    """What the pages show, as plain JSON: per tier its cards' numbers, parity, and every
    flagged change per run."""
    return {
        "generated_at": data.generated_at.isoformat(), "store": data.store_url, "threshold": data.threshold,
        "alpha": data.alpha, "default_checkpoint_sha256": data.default_checkpoint_sha256,
        "tiers": [_tier_summary(t) for t in data.tiers],
        "devices": [{"name": d.name, "tier": d.tier, "emulated": d.emulated, "runs": len(d.runs)} for d in data.devices],
    }


def _tier_summary(t: TierView) -> dict:
    return {
        "tier": t.tier, "emulated": t.emulated, "budget_ms": t.budget_ms, "parity": t.parity.status,
        "page": f"tier-{t.slug}.html", "artifacts": [r.key for r in t.rows],
        "latest": [
            {"bucket": b.bucket, "artifact": b.best.key, "default_model": b.default_model, "run_id": b.best.run_id,
             "e2e_p50_ms": b.best.stats["e2e"].p50 if "e2e" in b.best.stats else None,
             "model_p50_ms": b.best.stats["model"].p50 if "model" in b.best.stats else None,
             "peer_e2e_p50_ms": b.peer.stats["e2e"].p50 if b.peer and "e2e" in b.peer.stats else None}
            for b in t.latest
        ],
        "runs": [
            {"run_id": r.run_id, "started_at": r.started_at.isoformat(), "device": r.device_name, "previous": r.previous,
             "flagged": [{"key": c.key, "metric": c.metric, "verdict": c.verdict, "ratio": c.ratio, "p_value": c.p_value}
                         for c in r.flagged]}
            for r in t.runs
        ],
    }


__all__ = ["EMULATED_BADGE", "MARKER", "DashboardSpec", "SiteReport", "build_dashboard", "render_site", "site_summary"]
