"""The export pipeline: checkpoint -> wrap -> export per bucket x format -> verify -> bundle.

This module sits in the orchestration layer (docs/architecture.md): it combines the export
stage (backdrop.export) with where artifacts run (backdrop.device_tests). It names no format:
every format fact (which files, offline checks, reset wording) comes from the format registry.

Atomicity: everything is built in a hidden staging folder next to ``dist/<target>`` and
moved into place only when every artifact exported and passed verification; a failure or
an interrupt removes the staging folder, leaving any previous ``dist/<target>`` untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from backdrop import __version__
from backdrop.core.buckets import DEFAULT_BUCKETS, Bucket, BucketSet
from backdrop.core.contract import reset_text, state_contract, state_rule
from backdrop.core.errors import BucketError
from backdrop.device_tests import Device
from backdrop.device_tests.base import ready_device
from backdrop.device_tests.parity import check_parity, thresholds_for, write_parity_report
from backdrop.export.artifact import Artifact, tree_sha256
from backdrop.export.cache import ExportCache, default_cache_dir, golden_material
from backdrop.export.formats import FORMATS, ExportError, ExportRequest
from backdrop.export.goldens import make_golden, save_golden
from backdrop.export.targets import TARGETS, Target
from backdrop.models import Checkpoint, load_checkpoint
from backdrop.models.checkpoint import default_checkpoint_path
from backdrop.orchestration.int8_stage import COMPRESSED_PRECISIONS, Int8Stage, quantization_rows, write_quantization_report
from backdrop.orchestration.manifest import BUCKET_RULE, SCHEMA_VERSION, tool_versions, write_manifest
from backdrop.quantization import fuse_model
from backdrop.quantization.budget import AccuracyBudget

GOLDEN_FRAMES = 40
GOLDEN_RESET_AT = 20
QUALITY_FIELDS = (
    "iou_mean", "iou_min", "boundary_iou_mean", "boundary_iou_min", "temporal_iou_float", "temporal_iou", "max_abs_error"
)
"""The measured-quality numbers the manifest's per-artifact ``quantization.quality`` carries."""


@dataclass(frozen=True)
class ExportSpec:
    """Inputs of ``export_target``.

    Attributes:
        target: a name from the TARGETS registry.
        checkpoint: checkpoint file; None means the bundled default model.
        buckets: the bucket set.
        only_buckets: export just these bucket names (all when None).
        out_root: the dist folder; the target lands in ``out_root/<target>``.
        golden_frames: frames per golden sequence (>= 30; the reset is in the middle).
        jobs: artifacts exported in parallel processes (lowering is single-threaded Python).
        budget: the int8 accuracy budget; None takes the target's.
        device: the registered device that verifies the artifacts it can run (parity on the
            goldens, the int8 budget, the quantization report's timings).
        cache_dir: the artifact cache (backdrop/export/cache.py); None for the default
            (``.cache/backdrop-export``, or ``BACKDROP_EXPORT_CACHE``).
        use_cache: False exports every artifact afresh and leaves the cache untouched.
    """

    target: str
    checkpoint: Path | None = None
    buckets: BucketSet = DEFAULT_BUCKETS
    only_buckets: tuple[str, ...] | None = None
    out_root: Path = Path("dist")
    golden_frames: int = GOLDEN_FRAMES
    jobs: int = 2
    budget: AccuracyBudget | None = None
    device: str = "host"
    cache_dir: Path | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ExportError(f"jobs must be at least 1, got {self.jobs}.")
        if self.golden_frames < 30:
            raise ExportError(f"golden_frames must be at least 30 (a reset sits in the middle), got {self.golden_frames}.")


@dataclass
class ExportResult:
    out_dir: Path
    manifest_path: Path
    artifacts: list[Artifact]
    parity: list = field(default_factory=list)
    seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0


def resolve(spec: ExportSpec) -> tuple[Target, list[Bucket], Device]:
    """Check names before any expensive work: target, buckets, formats; the device, ready."""
    target = TARGETS.get(spec.target)
    device = ready_device(spec.device)
    for entry in target.entries:
        fmt = FORMATS.get(entry.format)
        if entry.precision not in fmt.precisions:
            raise ExportError(f"target {target.name}: format {entry.format} has no precision {entry.precision}")
    if spec.only_buckets is None:
        buckets = list(spec.buckets)
    else:
        buckets = [spec.buckets.get(name) for name in spec.only_buckets]
        if not buckets:
            raise BucketError("--bucket-names is empty: name at least one bucket.")
    return target, buckets, device


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def export_target(spec: ExportSpec, log: Callable[[str], None] = _log) -> ExportResult:
    """Export, verify and bundle every artifact of ``spec.target`` into ``out_root/<target>``.

    Raises:
        RegistryError / BucketError: unknown target, format, device or bucket (before any work).
        DeviceError: the verifying device is not ready (before any work).
        CheckpointError: missing or bad checkpoint.
        ExportError: a format cannot take the model, or an artifact fails verification
            (the message names artifact, frame and metric).
    """
    start = time.perf_counter()
    target, buckets, device = resolve(spec)

    ckpt_path = spec.checkpoint or default_checkpoint_path()
    ckpt: Checkpoint = load_checkpoint(ckpt_path)
    spec.out_root.mkdir(parents=True, exist_ok=True)
    final = spec.out_root / target.name
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=spec.out_root))
    budget = spec.budget or target.budget
    cache = ExportCache(spec.cache_dir or default_cache_dir(), tool_versions()) if spec.use_cache else None
    try:
        goldens = {}
        for bucket in buckets:
            log(f"[{bucket.name}] golden sequence: {spec.golden_frames} real frames, reset at {spec.golden_frames // 2}")
            golden = _golden(cache, ckpt.model, bucket, target.camera_format, spec.golden_frames)
            rel = f"goldens/{bucket.name}.npz"
            save_golden(golden, staging / rel)
            goldens[bucket.name] = (rel, golden)
        checks = _heldout_checks(ckpt.model, buckets, target, spec.golden_frames, log, cache)
        first = next(iter(goldens.values()))[1]
        check = torch.cat([torch.from_numpy(first.frames[:2]), torch.zeros(2, 1, *first.frames.shape[2:])], dim=1)
        model, fusion = fuse_model(ckpt.model, check_input=check)
        log(f"fused {fusion.fused} conv-BN pairs (max logit change {fusion.max_abs_logit_diff:.1e} on real frames)")
        requests = [
            ExportRequest(model, bucket, form, entry.precision, staging / bucket.name, entry.format)
            for bucket in buckets
            for entry in target.entries
            for form in entry.state_forms
        ]
        int8 = Int8Stage(budget, device, thresholds_for("int8"), lambda r: _export_one(r, cache)[0], log, cache=cache,
                         checks=checks)
        progress = Progress(len(requests), log)
        done: dict[int, tuple[list[Artifact], list]] = {}  # request index -> its artifacts and parity records
        for i, request, made, seconds, hit in _run_exports(requests, spec.jobs, cache):
            golden = goldens[request.bucket.name][1]
            if request.precision == "int8":
                made = int8.accept(request, made, golden)
            done[i] = (made, [])
            for art in made:
                _verify(art, golden, device, done[i][1], log)
            progress.done(request, made, seconds, hit)
        progress.close()
        # The manifest and the reports list the artifacts in request order, whatever order they were finished in.
        artifacts = [a for i in sorted(done) for a in done[i][0]]
        records = [r for i in sorted(done) for r in done[i][1]]
        reports = staging / "reports"
        reports.mkdir(exist_ok=True)
        report_paths = {}
        if records:
            write_parity_report(records, reports)
            report_paths["parity"] = "reports/parity.json"
        if any(a.delegation is not None for a in artifacts):
            write_delegation_report(artifacts, reports)
            report_paths["delegation"] = "reports/delegation.json"
        if any(a.precision in COMPRESSED_PRECISIONS for a in artifacts):
            log("int8: timing against the float twins for reports/quantization.md")
            rows = quantization_rows(artifacts, {k: v[1] for k, v in goldens.items()}, device)
            write_quantization_report(rows, budget, f"{device.name} ({device.tier})", reports)
            report_paths["quantization"] = "reports/quantization.json"
        manifest = build_manifest(
            target, ckpt, fusion, buckets, artifacts, {k: v[0] for k, v in goldens.items()}, report_paths, staging
        )
        manifest_path = write_manifest(manifest, staging / "manifest.json")
        _swap_into_place(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for a in artifacts:
        a.path = final / a.path.relative_to(staging)
    hits, misses = (cache.stats.hits, cache.stats.misses) if cache else (0, len(artifacts))
    return ExportResult(final, final / manifest_path.name, artifacts, records, time.perf_counter() - start, hits, misses)


HELDOUT_CHECK_CLIPS = ("video_call", "long_hair_hands")
"""Held-out clips (backdrop.models.data: people never trained or calibrated on) that the int8
budget is checked on besides the golden, each framed like a golden for every bucket."""


def _golden(cache: ExportCache | None, model, bucket: Bucket, camera_format: str, frames: int, source: Path | None = None):
    """:func:`make_golden` of ``frames`` frames reset in the middle (from ``source``, default the
    carphone clip), through the export cache when there is one."""
    if source is None:
        from backdrop.core.samples import carphone_clip

        source = Path(carphone_clip())

    def make():
        return make_golden(model, bucket, camera_format, num_frames=frames, reset_at=frames // 2, source=source)

    if cache is None:
        return make()
    return cache.golden(golden_material(model, bucket, camera_format, frames, frames // 2, source), make)


def _heldout_checks(model, buckets: list[Bucket], target: Target, frames: int, log: Callable[[str], None],
                    cache: ExportCache | None = None) -> dict:
    """Bucket name -> {clip: golden-like sequence of the held-out clip}, for targets with int8.

    Raises:
        InputError: the clips' media are not fetched (the message says to run ``make data``).
    """
    if not any(e.precision == "int8" for e in target.entries):
        return {}
    from backdrop.models.data import source, source_file

    paths = {name: source_file(source(name)) for name in HELDOUT_CHECK_CLIPS}
    log(f"int8 budget sequences: the golden plus {frames} frames of each of {', '.join(paths)} (held out), per bucket")
    return {
        b.name: {name: _golden(cache, model, b, target.camera_format, frames, path) for name, path in paths.items()}
        for b in buckets
    }


def _export_one(
    request: ExportRequest, cache: ExportCache | None = None, fetch: bool = True
) -> tuple[list[Artifact], float, bool]:
    """Export ``request`` (from the cache when it holds the same key, unless ``fetch`` is off:
    the caller already looked); (artifacts, seconds, hit). A fresh export is stored in the cache."""
    t0 = time.perf_counter()
    made = cache.fetch(request) if cache is not None and fetch else None
    hit = made is not None
    if made is None:
        made = FORMATS.get(request.format).export(request)
        if cache is not None:
            cache.store(request, made)
    return made, time.perf_counter() - t0, hit


def _run_exports(requests: list[ExportRequest], jobs: int, cache: ExportCache | None):
    """Yield (index, request, artifacts, seconds, cache hit) for every request.

    The cache is looked up here first, in this process (a hit is a copy and a hash: no worker
    needs to start, import torch and ExecuTorch, for it); the hits come first, in request order
    (with workers, once the misses are handed to them).
    The misses are exported in ``jobs`` spawned worker processes when there are several (graph
    lowering is single-threaded Python, so this scales with cores), which store what they make in
    the cache, and are yielded as they finish: the caller's work on one (the int8 budget, a fallback
    search, parity) overlaps with the workers' on the others. They are handed to the workers in
    :func:`_submission_order`. With one job (or one miss) everything runs here in request order."""
    found: dict[int, tuple[list[Artifact], float, bool]] = {}
    if cache is not None:
        for i, r in enumerate(requests):
            t0 = time.perf_counter()
            made = cache.fetch(r)  # counts the hit or the miss
            if made is not None:
                found[i] = (made, time.perf_counter() - t0, True)
    todo = [i for i in range(len(requests)) if i not in found]
    if jobs == 1 or len(todo) <= 1:
        for i, r in enumerate(requests):
            yield (i, r, *(found[i] if i in found else _export_one(r, cache, fetch=False)))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_export_one, requests[i], cache, False): i for i in _submission_order(requests, todo)}
        try:
            for i in sorted(found):  # verified here while the workers export the misses
                yield (i, requests[i], *found[i])
            for future in as_completed(futures):
                i = futures[future]
                yield (i, requests[i], *future.result())
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _submission_order(requests: list[ExportRequest], todo: list[int]) -> list[int]:
    """The indices ``todo`` in the order the workers should take them: first the one int8 request
    per bucket and format whose acceptance may start a fallback search in the exporting process
    (its explicit state form, which the probe shares), so that search overlaps with the workers'
    lowering; then the other int8 requests (the longest to lower); then the rest, in request order."""
    def rank(i: int) -> tuple[int, int]:
        r = requests[i]
        if r.precision != "int8":
            return (2, i)
        return (0, i) if r.state_form == "explicit" else (1, i)

    return sorted(todo, key=rank)


class Progress:
    """Per-artifact progress: a bar on a terminal (tqdm), and one log line per request with its
    time, whether the cache had it, its verification and the estimated time left (the mean
    time per request so far times the requests left)."""

    def __init__(self, total: int, log: Callable[[str], None]) -> None:
        from tqdm import tqdm

        self.total, self.log, self.count = total, log, 0
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, desc="export", unit="artifact", disable=not sys.stderr.isatty(), leave=False)

    def done(self, request: ExportRequest, made: list[Artifact], seconds: float, hit: bool) -> None:
        self.count += 1
        self.bar.update(1)
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.count * (self.total - self.count)
        how = "from the cache" if hit else f"exported in {seconds:.0f} s"
        for art in made:
            with self.bar.external_write_mode():
                self.log(
                    f"[{self.count}/{self.total}] {art.key}: {art.size_bytes() / 1e6:.1f} MB, {how}, {_status(art)}; "
                    f"about {_duration(left)} left"
                )

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _status(art: Artifact) -> str:
    if art.verified is True:
        return "parity ok"
    if art.verified is None:
        return "unverified here (" + art.verification_note.split(":")[0] + ")"
    return "FAILED"


def _verify(art: Artifact, golden, device: Device, records: list, log: Callable[[str], None]) -> None:
    """Parity on ``device`` where it can run ``art``; otherwise the format's offline check, if
    it has one; otherwise the artifact stays unverified, saying why."""
    if not device.can_run(art):
        check = FORMATS.for_kind(art.format).check_offline(art)
        if check is not None:
            if check.errors:
                raise ExportError(f"{art.key}: {check.what} failed: " + "; ".join(check.errors))
            for w in check.warnings:
                log(f"[{art.bucket.name}] warning: {art.key}: {w}")
            art.offline_warnings = tuple(check.warnings)
        if art.verified is None and not art.verification_note:
            art.verification_note = f"no runtime for {art.runtime} on {device.name}: {device.why_not(art)}"
        return
    record = check_parity(art, golden, device, thresholds_for(art.precision))
    records.append(record)
    art.verified = bool(record.passed)
    art.parity = record.summary()
    if not record.passed:
        raise ExportError(f"parity failed: {record.message}")
    art.verification_note = f"parity on {golden.frames.shape[0]} real frames on {device.name}"
    if device.name != "host":
        art.verification_note += f" ({device.tier})"


def _swap_into_place(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with two renames (the old copy is removed after)."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _artifact_entry(art: Artifact, root: Path) -> dict:
    feedback = state_rule(art.state_form).feedback
    reset = reset_text(art.state_form, FORMATS.for_kind(art.format).reset_alternative)
    if art.verified is True:
        verification = f"parity passed: {art.verification_note}"
    elif art.verified is None:
        verification = f"unverified: {art.verification_note}"
    else:
        verification = "failed"
    entry = {
        "key": art.key,
        "path": art.path.relative_to(root).as_posix(),
        "format": art.format,
        "runtime": art.runtime,
        "precision": art.precision,
        "state_form": art.state_form,
        "bucket": art.bucket.name,
        "inputs": [t.to_dict() for t in art.inputs],
        "outputs": [t.to_dict() for t in art.outputs],
        "states": [t.to_dict() for t in art.states],
        "feedback": feedback,
        "reset": reset,
        "min_os": art.min_os,
        "sha256": art.sha256(),
        "size_bytes": art.size_bytes(),
        "verified": art.verified,
        "verification": verification,
        "details": json.loads(json.dumps(art.manifest_details(), default=str)),
    }
    if art.precision == "int8" and art.int8 is not None and art.int8.quality is not None:
        info = art.int8.to_dict()
        entry["quantization"] = json.loads(json.dumps({
            "calibration": art.details.get("calibration", {}),
            "budget": info["budget"],
            "quality": {k: info["quality"][k] for k in QUALITY_FIELDS},
            "float_units": info["float_units"],
            "fallback": info["fallback"],
            "report": "reports/quantization.json",
            **({"checked": {k: info["checked"][k] for k in QUALITY_FIELDS}} if info.get("checked") else {}),
            **({"heldout": {n: {k: q[k] for k in QUALITY_FIELDS} for n, q in info["heldout"].items()}}
               if info.get("heldout") else {}),
        }))
    return entry


def build_manifest(target, ckpt, fusion, buckets, artifacts, goldens, reports, root) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "backdrop_version": __version__,
        "target": {"name": target.name, "platform": target.platform, "description": target.description},
        "model": {
            "checkpoint": ckpt.path.name if ckpt.path else "",
            "checkpoint_sha256": ckpt.sha256,
            "config": ckpt.config.to_dict(),
            "parameters": sum(p.numel() for p in ckpt.model.parameters()),
            "fusion": {
                "conv_bn_pairs_fused": fusion.fused,
                "max_abs_logit_change": fusion.max_abs_logit_diff,
                "tolerance": fusion.tolerance,
            },
        },
        "camera": {
            "format": target.camera_format, "color": "bt601-full", "chroma_upsampling": "nearest", "spec": "docs/frames.md"
        },
        "bucket_rule": dict(BUCKET_RULE),
        "buckets": [{"name": b.name, "height": b.height, "width": b.width} for b in buckets],
        "threshold": 0.5,
        "state_contract": state_contract(),
        "artifacts": [_artifact_entry(a, root) for a in artifacts],
        "goldens": goldens,
        "golden_sha256": {bucket: tree_sha256(Path(root) / rel) for bucket, rel in goldens.items()},
        "reports": reports,
        "tools": tool_versions(),
    }


def write_delegation_report(artifacts: list[Artifact], out_dir: Path) -> None:
    """reports/delegation.{json,md}: ops inside and outside the delegate, per artifact that was
    lowered to one (the format says so by setting ``Artifact.delegation``)."""
    rows = {a.key: a.delegation.to_dict() for a in artifacts if a.delegation is not None}
    (out_dir / "delegation.json").write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    lines = [
        "# Delegation (ops inside and outside each artifact's delegate: "
        + ", ".join(sorted({d["delegate"] for d in rows.values()}))
        + ")",
        "",
        "| artifact | delegated subgraphs | delegated nodes | non-delegated nodes | compute ops outside |",
        "|---|---:|---:|---:|---|",
    ]
    for key, d in rows.items():
        outside = ", ".join(f"{k} x{v}" for k, v in d["compute_ops_outside"].items()) or "none"
        lines.append(f"| {key} | {d['delegated_subgraphs']} | {d['delegated_nodes']} | {d['non_delegated_nodes']} | {outside} |")
    lines += ["", "Non-delegated nodes that are not computation (getitem of the delegate's outputs) are counted but allowed."]
    (out_dir / "delegation.md").write_text("\n".join(lines) + "\n")
