"""`backdrop dashboard`: the results store as a static site (backdrop/dashboard/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from backdrop.orchestration.commands.bench import StoreOpt
from backdrop.orchestration.commands.options import FormatOpt, check_format


def dashboard_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The site's folder (new, empty, or a site this command wrote).", file_okay=False)
    ] = Path("site"),
    store: StoreOpt = None,
    budget_ms: Annotated[
        float, typer.Option("--budget-ms", help="The end-to-end p50 budget of every tier (33 ms: 30 frames a second).", min=0.001)
    ] = 33.0,
    tier_budget: Annotated[
        list[str] | None,
        typer.Option("--tier-budget", help="A tier's own budget, TIER=MS (repeatable), e.g. android-sm8650=16.7."),
    ] = None,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Smallest change of the median that compare marks (0.05 = 5 %).")
    ] = 0.05,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level of compare's tests.")] = 0.01,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", "-c", help="The model the tier cards show first. Default: the bundled model.",
                     dir_okay=False),
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Build the latency dashboard from the results store: a static site (plain files that open
    from disk or any static host; plotly.js is copied in, nothing is fetched at view time).

    - index.html: a card per device tier: the newest p50 end to end and model only of the
      default model's fastest artifact per bucket against the tier's budget, the tier's parity
      status (verified / failed / not run: `backdrop parity --store`), and MediaPipe's selfie
      segmenter where it was measured.
    - tier-TIER.html: every artifact (p50/p90/p99 with the median's interval, load, memory,
      size, parity, runtime; sortable, filterable), the latency distributions, p50 over the
      runs with a mark only where `backdrop results compare` calls a change significant, and
      what changed in each run against the device's previous one.
    - device-DEVICE.html: what the device is, its runs, parity checks and gate readings.
      Emulated tiers carry a "functional only: not a latency claim" badge throughout.

    The site is built aside and swapped in whole: a failed build leaves the previous one.

    Example: backdrop dashboard --out site

    Example (a lab): backdrop dashboard --store postgresql://ci@db:5432/backdrop --out public --tier-budget android-sm8650=16.7
    """
    from tqdm import tqdm

    from backdrop.dashboard.build import DashboardSpec, build_dashboard
    from backdrop.dashboard.model import Budgets

    fmt = check_format(fmt)
    per_tier = {}
    for item in tier_budget or []:
        tier, sep, ms = item.partition("=")
        try:
            value = float(ms)
        except ValueError:
            value = -1.0
        if not sep or not tier.strip() or value <= 0:
            raise typer.BadParameter(f"{item!r}: give TIER=MS with a positive number of milliseconds, e.g. host-x86_64=33.",
                                     param_hint="--tier-budget")
        per_tier[tier.strip()] = value
    spec = DashboardSpec(store=store, out=out, budgets=Budgets(budget_ms, per_tier), threshold=threshold, alpha=alpha,
                         default_checkpoint=checkpoint)
    bar = tqdm(desc="dashboard", unit="step", file=sys.stderr, disable=fmt != "text")
    try:
        report = build_dashboard(spec, progress=lambda what: (bar.set_postfix_str(what[:60]), bar.update()))
    finally:
        bar.close()
    if fmt == "json":
        typer.echo(json.dumps({"out": str(report.out), "pages": [str(p) for p in report.pages], "tiers": report.tiers,
                               "runs": report.runs, "flagged": report.flagged}))
        return
    typer.echo(f"wrote {len(report.pages)} pages to {report.out}/ ({report.runs} runs in {len(report.tiers)} tiers: "
               f"{', '.join(report.tiers) or 'none'}; {report.flagged} significant changes marked)")
    typer.echo(f"open {report.out / 'index.html'}")
