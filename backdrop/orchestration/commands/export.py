"""`backdrop export`: per-bucket artifacts for a target, verified, with a manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backdrop.orchestration.commands.options import (
    BucketsOpt,
    CheckpointOpt,
    FormatOpt,
    check_format,
)


def export_command(
    target: Annotated[str, typer.Option("--target", "-t", help="{choices}")],
    checkpoint: CheckpointOpt = None,
    buckets: BucketsOpt = None,
    bucket_names: Annotated[
        str | None, typer.Option("--bucket-names", help="Comma-separated bucket names to export (default: all).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="dist folder; the target lands in OUT/<target>/.")] = Path("dist"),
    fmt: FormatOpt = "text",
    int8_min_iou: Annotated[
        float | None,
        typer.Option("--int8-min-iou", help="int8 budget: mean IoU against float over the goldens (target default 0.97)."),
    ] = None,
    int8_min_boundary_iou: Annotated[
        float | None, typer.Option("--int8-min-boundary-iou", help="int8 budget: mean Boundary IoU against float (default 0.90).")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="Verify on this device. {choices}")] = "host",
    int8_max_temporal_drop: Annotated[
        float | None,
        typer.Option(
            "--int8-max-temporal-drop", help="int8 budget: how far temporal IoU may fall below float's (default 0.01)."
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Export every artifact afresh; neither read nor write the artifact cache."),
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Artifact cache folder (default .cache/backdrop-export, or $BACKDROP_EXPORT_CACHE).",
                     file_okay=False),
    ] = None,
) -> None:
    """Export one fixed-shape artifact per bucket and format for a target, verify each against
    the float reference on real golden frames, and write OUT/<target>/manifest.json.

    The targets are listed under --target. A failed export leaves no half-written folder.

    int8 artifacts must meet the target's accuracy budget; when they miss it, the most
    sensitive layers are kept in float until they do (reports/quantization.md says which).

    Artifacts are cached by the hash of everything they depend on (weights, bucket, format,
    precision, state form, calibration, float units, tool versions, backdrop's code): a re-export
    with nothing changed copies them and still verifies every one (docs/export.md, "Cache").

    Example: backdrop export --target android-arm64
    """
    from dataclasses import replace

    from backdrop.core.buckets import load_buckets
    from backdrop.export.targets import TARGETS
    from backdrop.orchestration.pipeline import ExportSpec, export_target

    fmt = check_format(fmt)
    names = tuple(n.strip() for n in bucket_names.split(",") if n.strip()) if bucket_names is not None else None
    overrides = {
        k: v
        for k, v in (
            ("min_iou", int8_min_iou), ("min_boundary_iou", int8_min_boundary_iou), ("max_temporal_drop", int8_max_temporal_drop)
        )
        if v is not None
    }
    budget = replace(TARGETS.get(target).budget, **overrides) if overrides else None
    spec = ExportSpec(
        target=target, checkpoint=checkpoint, buckets=load_buckets(buckets), only_buckets=names, out_root=out, budget=budget,
        device=device, cache_dir=cache_dir, use_cache=not no_cache,
    )
    result = export_target(spec)
    if fmt == "json":
        typer.echo(json.dumps({
            "out": str(result.out_dir), "manifest": str(result.manifest_path), "seconds": round(result.seconds, 1),
            "cache": {"hits": result.cache_hits, "misses": result.cache_misses},
            "artifacts": [a.key for a in result.artifacts],
        }))
        return
    verified = sum(a.verified is True for a in result.artifacts)
    typer.echo(
        f"wrote {result.out_dir}: {len(result.artifacts)} artifacts ({verified} passed parity on {device}) "
        f"in {result.seconds:.0f} s ({result.cache_hits} of {result.cache_hits + result.cache_misses} exports from the cache)"
    )
    typer.echo(f"manifest: {result.manifest_path}")
    typer.echo(f"next: python scripts/run_from_manifest.py {result.out_dir}  (the app-side contract, from the manifest alone)")
