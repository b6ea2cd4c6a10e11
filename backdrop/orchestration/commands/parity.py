"""`backdrop parity`: re-run the parity check of an exported target on a device."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from backdrop.orchestration.commands.options import FormatOpt, check_format


def parity_command(
    dist: Annotated[
        Path, typer.Option("--dist", "-d", help="An exported target folder, e.g. dist/android-arm64.", file_okay=False)
    ],
    device: Annotated[str, typer.Option("--device", help="{choices}")] = "host",
    bucket_names: Annotated[
        str | None, typer.Option("--bucket-names", help="Comma-separated buckets to check (default: all).")
    ] = None,
    frames: Annotated[
        int | None,
        typer.Option("--frames", help="Run only the first N frames of each golden (must include its reset).", min=1),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the files pushed to the device there (devices that push: adb).")
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Also store the check in this results store: a SQLite file path, sqlite:///PATH, or "
            "postgresql://USER@HOST:PORT/DB. Default: not stored.",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Roll every golden sequence through every artifact the device can run, with the state
    carried by the runtime, and compare each frame with the float reference.

    Every artifact and golden is first checked against the manifest's sha256 (a modified or
    missing file is named and nothing runs). Writes DIST/reports/parity-<device>.{json,md};
    exits 1 if any artifact misses its threshold. Artifacts the device cannot run are listed
    as skipped, with the reason. A device that pushes files (adb) removes them afterwards
    unless --keep; one that disappears mid-run stops the command (exit 1) with nothing written.

    The report names the device (CPU, OS, runtime versions); an emulated device's is marked
    as a functional check, never latency.

    With --store, the check (per artifact: passed or not, its worst values, the file's sha256)
    also goes into that results store, in one transaction, once; a run that stops on a lost
    device stores nothing. `backdrop bench --store` names the same stores.

    Example: backdrop parity --dist dist/android-arm64 --device qemu-arm64 --bucket-names landscape_16x9 --frames 22

    Example (a phone over adb): backdrop parity --dist dist/android-arm64 --device adb:R5CT1234 --bucket-names portrait_9x16

    Example (on a Mac): backdrop parity --dist dist/ios-arm64 --device coreml-mac

    Example (into the store): backdrop parity --dist dist/android-arm64 --device host --store results/backdrop.db
    """
    from datetime import UTC, datetime

    from backdrop.device_tests.base import DeviceLostError, close_device, ready_device
    from backdrop.device_tests.parity import write_parity_report

    fmt = check_format(fmt)
    db = None if store is None else _open_store(store)  # a bad URL fails here, before anything runs
    try:
        dev = ready_device(device)
        if keep:
            if not hasattr(dev, "keep"):
                raise typer.BadParameter(f"{device} pushes nothing, so there is nothing to keep.", param_hint="--keep")
            dev.keep = True
        started = datetime.now(UTC)
        try:
            records, skipped, manifest = _run_parity(dist, dev, bucket_names, frames, fmt)
        except DeviceLostError as e:
            typer.echo(f"error: {e} No report was written{' and nothing was stored' if db else ''}.", err=True)
            raise typer.Exit(1) from e
        finally:
            close_device(dev)
        finished = datetime.now(UTC)
        description = dev.describe()
        reports = dist / "reports"
        reports.mkdir(exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "-", device)  # adb:HOST:PORT -> adb-HOST-PORT
        if records:
            # Written aside, then renamed: the export-time reports/parity.* stay as they were.
            with tempfile.TemporaryDirectory(dir=reports) as tmp:
                for p in write_parity_report(records, tmp, description):
                    os.replace(p, reports / f"{p.stem}-{stem}{p.suffix}")
        outcome = None
        if db is not None and records:
            outcome = db.write_parity(_document(dist, manifest, records, skipped, description, started, finished, frames))
        store_url = None if db is None else db.url
    finally:
        if db is not None:
            db.close()
    failed = [r for r in records if not r.passed]
    if fmt == "json":
        checked = [r.summary().to_dict() for r in records]
        out = {"device": device, "checked": checked, "skipped": skipped}
        if outcome is not None:
            out["stored"] = {"parity_id": outcome.run_id, "added": outcome.added, "store": store_url}
        typer.echo(json.dumps(out, default=str))
    else:
        for r in records:
            typer.echo(f"{'ok  ' if r.passed else 'FAIL'} {r.artifact}: min IoU {r.summary().worst.get('min_iou')}")
        for s in skipped:
            typer.echo(f"skip {s['artifact']}: {s['why']}")
        if records:
            typer.echo(f"wrote {reports}/parity-{stem}.json and .md")
        else:
            typer.echo(f"{device} can run none of the {len(skipped)} artifacts here"
                       + (f"; nothing stored in {store_url}." if store_url else "."))
        if outcome is not None:
            if outcome.added:
                typer.echo(f"stored parity run {outcome.run_id[:12]} in {store_url}")
            else:
                typer.echo(f"parity run {outcome.run_id[:12]} already stored in {store_url}")
    if failed:
        for r in failed:
            typer.echo(r.message, err=True)
        raise typer.Exit(1)


def _open_store(url: str):
    from backdrop.results import open_store

    return open_store(url)


def _document(dist: Path, manifest: dict, records: list, skipped: list[dict], description, started, finished,
              frames: int | None) -> dict:
    """The parity document of this check (backdrop/results/parity.py), the artifacts' sha256
    from the manifest."""
    import socket

    from backdrop import __version__
    from backdrop.bench.run import git_commit
    from backdrop.core.fsutil import file_sha256
    from backdrop.results.parity import parity_document

    return parity_document(
        records, description, manifest["target"]["name"], file_sha256(dist / "manifest.json"), started, finished, frames,
        git_commit(), __version__, socket.gethostname() or "unknown",
        artifact_sha256={e["key"]: e.get("sha256") for e in manifest["artifacts"]}, skipped=skipped,
    )


def _run_parity(dist: Path, dev, bucket_names: str | None, frames: int | None, fmt: str) -> tuple[list, list[dict], dict]:
    """Check every artifact of ``dist`` that ``dev`` runs; (records, skipped, manifest)."""
    from tqdm import tqdm

    from backdrop.core.buckets import Bucket
    from backdrop.device_tests.parity import check_parity, thresholds_for
    from backdrop.export.artifact import artifact_from_manifest
    from backdrop.export.goldens import load_golden
    from backdrop.orchestration.manifest import check_integrity, load_manifest

    manifest = load_manifest(dist / "manifest.json")
    check_integrity(dist, manifest)
    buckets = {b["name"]: Bucket(b["name"], b["height"], b["width"]) for b in manifest["buckets"]}
    wanted = _bucket_names(bucket_names, list(buckets))
    goldens = {}
    records, skipped, runnable = [], [], []
    for entry in manifest["artifacts"]:
        if entry["bucket"] not in wanted:
            continue
        art = artifact_from_manifest(entry, dist, buckets[entry["bucket"]])
        if dev.can_run(art):
            runnable.append(art)
        else:
            skipped.append({"artifact": art.key, "why": dev.why_not(art)})
    for name in {a.bucket.name for a in runnable}:
        golden = load_golden(dist / manifest["goldens"][name])
        goldens[name] = golden.prefix(frames) if frames is not None else golden
    for art in tqdm(runnable, desc=f"parity on {dev.name}", unit="artifact", file=sys.stderr, disable=fmt != "text"):
        records.append(check_parity(art, goldens[art.bucket.name], dev, thresholds_for(art.precision)))
    return records, skipped, manifest


def _bucket_names(option: str | None, known: list[str]) -> list[str]:
    """The buckets ``--bucket-names`` asks for (all when None).

    Raises:
        typer.BadParameter: an unknown or empty name (the message lists the manifest's).
    """
    if option is None:
        return known
    names = [n.strip() for n in option.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown) or '(none)'}: not a bucket of this export; its buckets: {', '.join(known)}.",
            param_hint="--bucket-names",
        )
    return names
