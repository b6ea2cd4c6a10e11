"""`backdrop bundle`: the part of an exported target an app ships in its assets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backdrop.orchestration.commands.options import FormatOpt, check_format


def _split(value: str | None, what: str) -> tuple[str, ...] | None:
    from backdrop.orchestration.bundle import BundleError

    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise BundleError(f"{what} is empty; give a comma-separated list, e.g. {what} fp32,int8.")
    return items


def bundle_command(
    dist: Annotated[Path, typer.Option("--dist", "-d", help="The exported target folder (holds manifest.json).",
                                       file_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The bundle folder (replaced as a whole), e.g. the app's assets.",
                                      file_okay=False)],
    formats: Annotated[str | None, typer.Option("--formats", help="Artifact formats to copy, comma-separated. Default: all.",
                                                show_default=False)] = None,
    precisions: Annotated[str | None, typer.Option("--precisions", help="Precisions to copy, comma-separated. Default: all.",
                                                   show_default=False)] = None,
    state_forms: Annotated[str | None, typer.Option("--state-forms", help="State forms to copy, comma-separated. Default: all.",
                                                    show_default=False)] = None,
    golden_bucket: Annotated[
        str | None, typer.Option("--golden-bucket", help="Bucket of the self-test golden. Default: the first bundled bucket.",
                                 show_default=False)
    ] = None,
    golden_frames: Annotated[
        int | None, typer.Option("--golden-frames", help="Frames of the self-test golden. Default: through its last reset.",
                                 min=1, show_default=False)
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Copy what an app runs from an exported target into one folder: the manifest trimmed to
    the copied artifacts (still schema-valid), the artifacts of the chosen formats, precisions
    and state forms (default: every artifact) at their manifest paths, and one short golden (the first frames through the
    last reset) for the app's start-up self-test. Every file is checked against the manifest's
    sha256 first; the folder is built aside and moved into place.

    Example: backdrop bundle --dist dist/android-arm64 --out android_demo/app/src/main/assets/backdrop

    Example: backdrop bundle -d dist/android-arm64 -o /tmp/assets --formats executorch --precisions int8
    """
    from backdrop.orchestration.bundle import BundleRequest, make_bundle

    fmt = check_format(fmt)
    req = BundleRequest(dist=dist, out=out, formats=_split(formats, "--formats"), precisions=_split(precisions, "--precisions"),
                        state_forms=_split(state_forms, "--state-forms"), golden_bucket=golden_bucket,
                        golden_frames=golden_frames)
    b = make_bundle(req)
    if fmt == "json":
        typer.echo(json.dumps({"out": str(b.out), "artifacts": list(b.artifacts), "golden_bucket": b.golden_bucket,
                               "golden_frames": b.golden_frames, "total_bytes": b.total_bytes}))
        return
    typer.echo(f"bundled {len(b.artifacts)} artifacts and a {b.golden_frames}-frame {b.golden_bucket} golden into {b.out} "
               f"({b.total_bytes / 1e6:.1f} MB)")
    for key in b.artifacts:
        typer.echo(f"  {key}")
