"""`backdrop conformance`: hold an implementation of the camera-buffer preprocessing bit-exact
against the Python reference."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from backdrop.orchestration.commands.options import FormatOpt, check_format


def conformance_command(
    impl: Annotated[str, typer.Option("--impl", help="{choices}")] = "native",
    dist: Annotated[
        Path | None,
        typer.Option("--dist", "-d", help="An exported target folder: also check every frame of its goldens.", file_okay=False),
    ] = None,
    cases: Annotated[int, typer.Option("--cases", help="How many generated cases (deterministic).", min=1)] = 300,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated cases.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Report folder. Default: DIST/reports/conformance-IMPL with --dist, else "
                     "out/conformance-IMPL.", file_okay=False),
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Run camera buffers through an implementation of the phone pipeline's preprocessing and
    compare every output with the Python reference bit for bit: the bucket placement, the
    YUV444 frame, the float32 model input and the mask mapped back to the camera frame.

    The generated cases (deterministic for a --seed) cover every size class (1 to 1920 pixels,
    odd sizes), every bucket of the default set, NV21, NV12 and I420, full and video range,
    packed and padded rows, and two buffers that must be rejected; with --dist, every frame of
    every golden too, which must reproduce the golden's model inputs and camera masks exactly.

    Writes OUT/conformance.json and .md; exits 1 if anything differs, printing the first
    difference (case, output, index, both values and their float32 bits).

    Example: backdrop conformance --impl native

    Example: backdrop conformance --impl native-arm64 --dist dist/android-arm64 --cases 100
    """
    from tqdm import tqdm

    from backdrop.core.fsutil import check_writable
    from backdrop.device_tests.conformance import ConformanceError, check, generate_cases, get_implementation, write_report

    fmt = check_format(fmt)
    implementation = get_implementation(impl)
    reason = implementation.ready()
    if reason:
        raise ConformanceError(f"conformance implementation {impl} cannot run here: {reason}")
    out_dir = out if out is not None else (dist / "reports" if dist is not None else Path("out")) / f"conformance-{impl}"
    check_writable(out_dir, "--out", folder=True)
    all_cases = _golden_cases(dist) if dist is not None else []
    n_golden = len(all_cases)
    all_cases = generate_cases(cases, seed) + all_cases
    with tqdm(total=len(all_cases), desc=f"conformance {impl}", unit="case", file=sys.stderr,
              disable=fmt != "text" or not sys.stderr.isatty()) as bar:
        result = check(implementation, all_cases, progress=bar.update)
    paths = write_report(result, out_dir)
    first = result.first_difference
    if fmt == "json":
        summary = result.to_dict()
        summary["differences"] = summary["differences"][:10]  # the report has up to 100
        typer.echo(json.dumps({**summary, "report": [str(p) for p in paths]}, default=str))
        if first:
            typer.echo(f"first difference: {first.message}", err=True)
    else:
        golden_text = f" + {n_golden} golden frames" if n_golden else ""
        secs = result.seconds
        head = (f"{impl}: {cases} generated cases{golden_text}, {secs['implementation']:.2f} s in the implementation, "
                f"{secs['reference']:.2f} s in the reference")
        if result.passed:
            typer.echo(f"ok   {head}: all bit-exact")
        else:
            typer.echo(f"FAIL {head}: {len(result.differing)} of {len(result.results)} cases differ")
        for name, row in result.by_size_class().items():
            extra = f", {row['rejected']} rejected by both" if row["rejected"] else ""
            typer.echo(f"  {name:<7} {row['cases']:>4} cases: {row['ok']} ok{extra}, {row['differ']} differ")
        if first:
            typer.echo(f"first difference: {first.message}")
        typer.echo(f"wrote {paths[0]} and .md")
    if first:
        raise typer.Exit(1)


def _golden_cases(dist: Path) -> list:
    """Every frame of every golden of the export in ``dist`` (checked against its manifest)."""
    from backdrop.device_tests.conformance import golden_cases
    from backdrop.export.goldens import load_golden
    from backdrop.orchestration.manifest import check_integrity, load_manifest

    manifest = load_manifest(dist / "manifest.json")
    check_integrity(dist, manifest)
    cases = []
    for name, rel in manifest["goldens"].items():
        cases += golden_cases(load_golden(dist / rel), name)
    return cases
