"""The dashboard's plots, as Plotly figures (plotly.py builds and validates them; the site
draws them with the plotly.js that the package ships, copied next to the pages).

Each function returns a figure as a JSON-ready dict, or None when there is nothing measured to
draw (the page then says so instead of drawing an empty frame).
"""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio

from backdrop.core.errors import BackdropError
from backdrop.dashboard.model import ArtifactResult, TierView

PEER_COLOR = "#7f7f7f"
REGRESSION, IMPROVEMENT, BUDGET = "#d62728", "#2ca02c", "#d62728"
_LAYOUT = {
    "margin": {"l": 10, "r": 10, "t": 40, "b": 40}, "template": "plotly_white", "font": {"size": 12},
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}, "hoverlabel": {"namelength": -1},
}


def color(kind: str) -> str:
    """An artifact kind's colour: its format's (the registry's, as in every other plot); the
    peer and kinds of no registered format are grey."""
    from matplotlib.colors import to_hex

    from backdrop.export.formats import FORMATS

    try:
        return to_hex(FORMATS.for_kind(kind).color)
    except BackdropError:
        return PEER_COLOR


def to_json(fig: go.Figure) -> str:
    """The figure as JSON for the page (validated by plotly.py)."""
    return pio.to_json(fig, validate=True, pretty=False)


def _label(r: ArtifactResult) -> str:
    return r.key + (" (peer)" if r.peer else "")


def tier_card_figure(tier: TierView) -> go.Figure | None:
    """Per bucket: the best artifact's p50 end to end (with the median's 95 % interval) and model
    only, the peer's end to end, and the tier's budget as a line (not on an emulated tier)."""
    if not tier.latest:
        return None
    buckets = [b.bucket for b in tier.latest]
    fig = go.Figure()
    e2e = [b.best.stats.get("e2e") for b in tier.latest]
    if any(e2e):
        fig.add_bar(
            name="best artifact, end to end", y=buckets, x=[s.p50 if s else None for s in e2e], orientation="h",
            marker_color="#1f77b4", text=[b.best.key.split("/", 1)[1] for b in tier.latest], textposition="none",
            error_x={"type": "data", "symmetric": False, "array": [s.median_ci_high - s.p50 if s else 0 for s in e2e],
                     "arrayminus": [s.p50 - s.median_ci_low if s else 0 for s in e2e]},
            hovertemplate="%{y}: %{text}<br>p50 end to end %{x:.2f} ms<extra></extra>",
        )
    model = [b.best.stats.get("model") for b in tier.latest]
    if any(model):
        fig.add_bar(name="best artifact, model only", y=buckets, x=[s.p50 if s else None for s in model], orientation="h",
                    marker_color="#aec7e8", hovertemplate="%{y}: p50 model only %{x:.2f} ms<extra></extra>")
    peer = [b.peer.stats.get("e2e") if b.peer else None for b in tier.latest]
    if any(peer):
        fig.add_bar(name="MediaPipe selfie (peer), end to end", y=buckets, x=[s.p50 if s else None for s in peer],
                    orientation="h", marker_color=PEER_COLOR,
                    hovertemplate="%{y}: peer p50 end to end %{x:.2f} ms<extra></extra>")
    if not tier.emulated:
        fig.add_vline(x=tier.budget_ms, line_color=BUDGET, line_dash="dash",
                      annotation_text=f"budget {tier.budget_ms:g} ms", annotation_position="bottom left")
    fig.update_layout(**_LAYOUT, barmode="group", height=150 + 70 * len(buckets), xaxis_title="ms (p50)")
    fig.update_yaxes(autorange="reversed")
    return fig


def distribution_figure(rows: list[ArtifactResult]) -> go.Figure | None:
    """Every artifact's latency samples (end to end, else model only) as a box, log scale."""
    rows = [r for r in rows if r.samples.get(r.latency_metric)]
    if not rows:
        return None
    fig = go.Figure()
    seen = set()
    for r in rows:
        fmt = r.format
        fig.add_box(
            x=r.samples[r.latency_metric], name=_label(r), orientation="h", marker_color=color(fmt), boxpoints="outliers",
            legendgroup=fmt, showlegend=fmt not in seen, line_width=1, marker_size=3,
            hovertemplate=f"{_label(r)} ({r.latency_metric})<br>%{{x:.2f}} ms<extra></extra>",
        )
        seen.add(fmt)
    fig.update_layout(**_LAYOUT, height=140 + 24 * len(rows), showlegend=False, xaxis_title="ms per frame (log)")
    fig.update_xaxes(type="log")
    fig.update_yaxes(autorange="reversed")
    return fig


def over_time_figure(tier: TierView, bucket: str) -> go.Figure | None:
    """p50 (with the median's 95 % interval) of each artifact of ``bucket`` over the tier's runs;
    a red triangle where compare calls the change against the device's previous run a
    regression, a green one where an improvement."""
    series: dict[str, list] = {}
    marks = {"regression": [], "improvement": []}
    for run in tier.runs:
        for r in run.results:
            if r.bucket != bucket or r.latency is None:
                continue
            s = r.latency
            commit = (run.git_commit or "no commit")[:10]
            series.setdefault(_label(r), []).append((run.started_at, s, commit, r))
            change = run.change(r.key, r.latency_metric)
            if change is not None and change.verdict in marks:
                marks[change.verdict].append((run.started_at, s.p50, f"{_label(r)}: x{change.ratio:.3f} vs {run.previous[:12]}, "
                                                            f"p={change.p_value:.2g} ({change.unit})"))
    if not series:
        return None
    fig = go.Figure()
    for name, points in series.items():
        r0 = points[0][3]
        fig.add_scatter(
            x=[p[0] for p in points], y=[p[1].p50 for p in points], name=name, mode="lines+markers",
            line_color=color(r0.format), line_dash="dot" if r0.peer else "solid",
            error_y={"type": "data", "symmetric": False, "array": [p[1].median_ci_high - p[1].p50 for p in points],
                     "arrayminus": [p[1].p50 - p[1].median_ci_low for p in points], "thickness": 1},
            customdata=[p[2] for p in points],
            hovertemplate=f"{name}<br>%{{x|%Y-%m-%d %H:%M}} (commit %{{customdata}})<br>p50 %{{y:.2f}} ms<extra></extra>",
        )
    for verdict, symbol, col in (("regression", "triangle-up", REGRESSION), ("improvement", "triangle-down", IMPROVEMENT)):
        if marks[verdict]:
            fig.add_scatter(
                x=[m[0] for m in marks[verdict]], y=[m[1] for m in marks[verdict]], mode="markers", name=verdict,
                marker={"symbol": symbol, "size": 16, "color": col, "line": {"width": 1, "color": "black"}},
                text=[m[2] for m in marks[verdict]], hovertemplate=f"{verdict}: %{{text}}<extra></extra>",
            )
    fig.update_layout(**_LAYOUT, height=380, yaxis_title="p50 ms per frame", xaxis_title="run start (UTC)")
    return fig


def figure_payload(fig: go.Figure) -> str:
    """The figure's JSON, safe to put inside a ``<script type="application/json">`` element."""
    return to_json(fig).replace("</", "<\\/")


def config_json() -> str:
    """plotly.js options for every plot: fits its box, no logo, nothing fetched."""
    return json.dumps({"responsive": True, "displaylogo": False, "showLink": False, "showSendToCloud": False,
                       "modeBarButtonsToRemove": ["sendDataToCloud"]})


__all__ = ["PEER_COLOR", "color", "config_json", "distribution_figure", "figure_payload", "over_time_figure", "tier_card_figure",
           "to_json"]
