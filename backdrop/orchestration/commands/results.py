"""`backdrop results`: the results store: import runs measured elsewhere, list, show, export, compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backdrop.orchestration.commands.bench import StoreOpt, summary_table
from backdrop.orchestration.commands.options import FormatOpt, check_format, reflow_help, text_table

app = typer.Typer(
    name="results",
    help=reflow_help(
        """The results store (SQLite by default, PostgreSQL for a device lab): import runs that
        the demo apps or another host measured, list and show runs, export one as JSON, and compare
        two runs (a change is called a regression or an improvement only when it is larger than a
        threshold and statistically significant). `backdrop results COMMAND --help` for each."""
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _store(url: str | None):
    from backdrop.results import open_store

    return open_store(url)


def import_command(
    files: Annotated[list[Path], typer.Argument(help="Results documents (JSON, backdrop/schemas/results.schema.json).",
                                                dir_okay=False)],
    store: StoreOpt = None,
    fmt: FormatOpt = "text",
) -> None:
    """Store results documents measured elsewhere (the Android and iOS demo apps' benchmark
    mode, another lab host, `backdrop bench --out`). Each file is checked against the schema and
    stored in one transaction; a file already stored adds nothing.

    Example: backdrop results import bench-pixel8.json --store postgresql://postgres@127.0.0.1:55432/backdrop
    """
    fmt = check_format(fmt)
    outcomes = []
    with _store(store) as db:
        for path in files:
            outcome = db.import_file(path)
            outcomes.append({"file": str(path), "run_id": outcome.run_id, "added": outcome.added, "results": outcome.results})
            if fmt == "text":
                state = "stored" if outcome.added else "already stored, nothing added"
                typer.echo(f"{path}: run {outcome.run_id[:12]} {state} ({outcome.results} results)")
    if fmt == "json":
        typer.echo(json.dumps(outcomes))


def list_command(
    store: StoreOpt = None,
    tier: Annotated[str | None, typer.Option("--tier", help="Only runs on this device tier, e.g. host-x86_64.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Only runs on this device name.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many runs, newest first.", min=1)] = 50,
    fmt: FormatOpt = "text",
) -> None:
    """List stored runs, newest first: id, when, device and tier, target, commit, results.

    Example: backdrop results list --tier host-x86_64
    """
    fmt = check_format(fmt)
    with _store(store) as db:
        runs = db.runs(tier=tier, device=device, limit=limit)
        url = db.url
    if fmt == "json":
        typer.echo(json.dumps([_summary_dict(r) for r in runs], default=str))
        return
    if not runs:
        typer.echo(f"no runs in {url}" + (" matching the filters" if tier or device else ""))
        return
    rows = [("run", "started (UTC)", "device", "tier", "target", "commit", "results", "source")]
    for r in runs:
        rows.append((r.run_id[:12], str(r.started_at)[:19], r.device_name, r.device_tier + (" [emulated]" if r.emulated else ""),
                     r.target, (r.git_commit or "-")[:12], str(r.results), r.source))
    for line in text_table(rows):
        typer.echo(line)


def _summary_dict(r) -> dict:
    from dataclasses import asdict

    return asdict(r)


def show_command(
    run: Annotated[str, typer.Argument(help="A run id, or a unique prefix of one (6+ characters).")],
    store: StoreOpt = None,
) -> None:
    """Print one stored run's table (the one `backdrop bench` prints) and its notes.

    Example: backdrop results show 3f2a9c
    """
    with _store(store) as db:
        doc = db.document(run)
    typer.echo(summary_table(doc))
    for note in doc["run"].get("notes", []):
        typer.echo(f"note: {note}")


def export_command(
    run: Annotated[str, typer.Argument(help="A run id, or a unique prefix of one.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the results document.", dir_okay=False)],
    store: StoreOpt = None,
) -> None:
    """Write one stored run back out as its results document (exactly as it was stored).

    Example: backdrop results export 3f2a9c --out run.json
    """
    from backdrop.core.fsutil import atomic_write, check_writable

    check_writable(out, "--out")
    with _store(store) as db:
        doc = db.document(run)
    with atomic_write(out) as f:
        f.write(json.dumps(doc, indent=1).encode())
    typer.echo(f"wrote {out}")


def compare_command(
    run_a: Annotated[str, typer.Argument(help="The baseline run (id or unique prefix).")],
    run_b: Annotated[str, typer.Argument(help="The run to judge against it.")],
    store: StoreOpt = None,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Smallest change of the median that counts (0.05 = 5 %).")
    ] = 0.05,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level of the Mann-Whitney U test.")] = 0.01,
    metric: Annotated[
        str, typer.Option("--metric", help="Comma-separated metrics to compare: e2e, model, load.")
    ] = "e2e,model",
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="Exit 1 when any change is a regression (for CI).")
    ] = False,
    fmt: FormatOpt = "text",
) -> None:
    """Compare run B with run A, artifact by artifact (matched by key: bucket, kind, precision,
    state form) and metric by metric. A change is a regression or an improvement only when the
    ratio of medians B/A is beyond 1 +- threshold AND it is significant at alpha: for two runs
    of one session (`backdrop bench --against`), a t-test on the logs of the per-round ratios;
    otherwise a two-sided Mann-Whitney U test on the medians of the runs' rounds. Anything else
    is "no change". Warns when the runs are of different sessions, device tiers or protocols,
    or when either is emulated.

    Example: backdrop results compare 3f2a9c 8b1d04

    Example: backdrop results compare 3f2a9c 8b1d04 --threshold 0.1 --fail-on-regression --format json
    """
    from backdrop.bench.compare import compare_documents

    fmt = check_format(fmt)
    metrics = [m.strip() for m in metric.split(",") if m.strip()]
    bad = [m for m in metrics if m not in ("e2e", "model", "load")]
    if not metrics or bad:
        raise typer.BadParameter(f"{', '.join(bad) or '(none)'}: metrics are e2e, model and load.", param_hint="--metric")
    with _store(store) as db:
        id_a, id_b = db.resolve(run_a), db.resolve(run_b)
        a, b = db.document(id_a), db.document(id_b)
    comparison = compare_documents(id_a, a, id_b, b, threshold, alpha, metrics)
    if fmt == "json":
        typer.echo(json.dumps(comparison.to_dict()))
    else:
        for w in comparison.warnings:
            typer.echo(f"warning: {w}")
        rows = [("artifact", "metric", "A p50", "B p50", "B/A [95% CI]", "p", "tested", "verdict")]
        for c in comparison.changes:
            rows.append((c.key, c.metric, f"{c.median_a:.3f}", f"{c.median_b:.3f}",
                         f"{c.ratio:.3f} [{c.ratio_low:.3f}, {c.ratio_high:.3f}]", f"{c.p_value:.2g}",
                         f"{c.units_a}v{c.units_b} {c.unit}", c.verdict))
        for line in text_table(rows):
            typer.echo(line)
        for key in comparison.only_a:
            typer.echo(f"only in A: {key}")
        for key in comparison.only_b:
            typer.echo(f"only in B: {key}")
        counts = comparison.counts()
        typer.echo(f"{counts['regression']} regression(s), {counts['improvement']} improvement(s), {counts['no change']} "
                   f"no change (threshold {threshold:.0%}, alpha {alpha}; the tested column says over what)")
    if fail_on_regression and comparison.counts()["regression"]:
        raise typer.Exit(1)


app.command("import", help=reflow_help(import_command.__doc__))(import_command)
app.command("list", help=reflow_help(list_command.__doc__))(list_command)
app.command("show", help=reflow_help(show_command.__doc__))(show_command)
app.command("export", help=reflow_help(export_command.__doc__))(export_command)
app.command("compare", help=reflow_help(compare_command.__doc__))(compare_command)
