"""``backdrop eval``: score predicted masks against labels (IoU, Boundary IoU, temporal, fairness)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backdrop.core.metrics import DEFAULT_DILATION_RATIO, DEFAULT_FLOW_PRESET, FLOW_PRESETS
from backdrop.orchestration.commands.options import FormatOpt, check_format


def eval_command(
    predictions: Annotated[
        Path,
        typer.Option(
            "--predictions",
            "-p",
            help="A masks.npz from `backdrop predict`, a folder of PNG masks (one per frame, name order), or a "
            "folder with one <video>.npz or <video>/ per video.",
        ),
    ],
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            "-l",
            help="Label masks in the same layout and with the same video names: PNG 0/1 or 0/255, or masks.npz "
            "(binarised at its stored threshold).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Output folder for report.json, summary.md and plots/.", file_okay=False),
    ] = Path("eval"),
    meta: Annotated[
        Path | None,
        typer.Option(
            "--meta",
            help='Fairness metadata JSON {"videos": {video: {category: class}}}: adds per-class IoU with 95% '
            "intervals over videos.",
            dir_okay=False,
        ),
    ] = None,
    frames: Annotated[
        Path | None,
        typer.Option(
            "--frames",
            help="The frames the masks belong to (a video file or image folder; for a video set a folder with one "
            "per video, same names). Needed for the flow-warped temporal IoU; skipped without it.",
        ),
    ] = None,
    dilation_ratio: Annotated[
        float,
        typer.Option("--dilation-ratio", help="Boundary IoU band width as a fraction of the image diagonal.", min=0.0),
    ] = DEFAULT_DILATION_RATIO,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Binarise soft predictions at p >= THRESHOLD. Default: each masks.npz's stored threshold, 0.5 "
            "for PNG.",
            show_default=False,
        ),
    ] = None,
    flow_preset: Annotated[
        str,
        typer.Option("--flow-preset", help=f"OpenCV DIS optical-flow preset: {', '.join(FLOW_PRESETS)}."),
    ] = DEFAULT_FLOW_PRESET,
    min_videos: Annotated[
        int,
        typer.Option("--min-videos", help="Flag classes with fewer videos than this.", min=1),
    ] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap over videos.")] = 0,
    fmt: FormatOpt = "text",
) -> None:
    """Score predicted masks against labels; write report.json, summary.md and plots.

    - Per frame: IoU and Boundary IoU against the label (frames where both are empty score 1.0).
    - Per pair of consecutive predictions: static IoU, flow-warped IoU (DIS on luma; needs
      --frames), mean mask change.
    - With --meta: per-class IoU and Boundary IoU, 95% intervals from a bootstrap over videos,
      small classes flagged.

    Dataset layout: docs/eval-dataset.md. Metric definitions: docs/metrics.md.

    Example: backdrop eval -p masks.npz -l labels/ --frames clip.mp4 -o eval/
    """
    from backdrop.core.fairness import BootstrapConfig, FairnessConfig
    from backdrop.orchestration.evaluate import EvalSpec, evaluate, summary_paragraph

    fmt = check_format(fmt)
    spec = EvalSpec(
        predictions=predictions,
        labels=labels,
        out=out,
        meta=meta,
        frames=frames,
        dilation_ratio=dilation_ratio,
        threshold=threshold,
        flow_preset=flow_preset,
        fairness=FairnessConfig(min_videos=min_videos, bootstrap=BootstrapConfig(seed=seed)),
    )
    report = evaluate(spec)
    if fmt == "json":
        d = report.to_dict()
        typer.echo(json.dumps({k: d[k] for k in ("outputs", "summary", "notes", "fairness")}, indent=2))
        return
    typer.echo(f"wrote {report.report_path}")
    typer.echo(f"wrote {report.summary_path}")
    for p in report.plot_paths:
        typer.echo(f"wrote {p}")
    typer.echo("")
    typer.echo(summary_paragraph(report))
    for note in report.notes:
        typer.echo(f"note: {note}")
