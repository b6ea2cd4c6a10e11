"""The int8 stage of the export pipeline: accuracy budget, float fallback, quantization report.

For every int8 request the pipeline hands over the exported artifacts; here each of them (the
``.pte``; the ``.onnx`` and its ``.ort`` twin) is run on the host over the bucket's golden
sequence with its own state fed back and compared with the float reference
(:mod:`backdrop.quantization.budget`). The request is accepted when, for every file, the
target's budget holds *and* every frame meets the int8 parity floors (device_tests/parity.py). Otherwise the fallback search
(:mod:`backdrop.quantization.fallback`) ranks the model's units by sensitivity on the format's
probe, picks the fewest most-sensitive units to keep in float, and the artifact is exported
again with them; that is repeated past any count whose real artifact still misses. The
decision is per bucket and format, so the other state form of the same bucket reuses it.

Everything measured lands in ``Artifact.int8`` (-> the manifest's per-artifact
``quantization`` entry) and in ``reports/quantization.{json,md,png}``.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from backdrop.core.fsutil import atomic_write
from backdrop.core.plots import new_figure
from backdrop.device_tests import Device, TimingProtocol
from backdrop.device_tests.parity import Thresholds
from backdrop.export.artifact import Artifact
from backdrop.export.cache import ExportCache
from backdrop.export.formats import FORMATS, ExportError, ExportRequest
from backdrop.quantization.budget import AccuracyBudget, CheckSequence, Quality, combine_sequences, measure_quality
from backdrop.quantization.fallback import FallbackError, FallbackSearch, Int8Decision, Trial, search_fallback

REPORT_SCHEMA = "backdrop-quantization/1"
SIZE_TARGET = 0.3
"""int8 files at most this fraction of their fp32 twin (docs/quantization.md)."""
LATENCY = TimingProtocol(warmup=3, runs=15)


def parity_floor_misses(q: Quality, thresholds: Thresholds) -> list[str]:
    """The per-frame parity floors of the int8 precision, as budget-style reasons."""
    out = []
    if q.iou_min < thresholds.min_iou:
        out.append(f"a frame's IoU {q.iou_min:.4f} < parity floor {thresholds.min_iou}")
    if q.boundary_iou_min < thresholds.min_boundary_iou:
        out.append(f"a frame's Boundary IoU {q.boundary_iou_min:.4f} < parity floor {thresholds.min_boundary_iou}")
    if q.max_abs_error > thresholds.max_abs_error:
        out.append(f"max |error| {q.max_abs_error:.3f} > parity floor {thresholds.max_abs_error}")
    return out


@dataclass
class Int8Stage:
    """Acceptance state shared across the requests of one export (one search per bucket+format).

    With a ``cache``, a bucket and format whose decision is cached (same model, calibration,
    budget, floors, code and tools) starts from the float units chosen last time; the artifact
    is measured against the budget all the same, and a miss falls back to a fresh search."""

    budget: AccuracyBudget
    device: Device
    thresholds: Thresholds
    export: Callable[[ExportRequest], list[Artifact]]
    log: Callable[[str], None]
    searches: dict[tuple[str, str], FallbackSearch] = field(default_factory=dict)
    cache: ExportCache | None = None
    decided: dict[tuple[str, str], dict] = field(default_factory=dict)
    checks: dict[str, dict] = field(default_factory=dict)
    """Bucket name -> {held-out clip name: its golden-like sequence}: the budget is held over
    the bucket's golden and these together (:class:`CheckSequence`)."""

    def _sequence(self, golden) -> CheckSequence:
        return combine_sequences({"golden": golden, **self.checks.get(golden.bucket.name, {})})

    def _decision_args(self) -> tuple[dict, dict]:
        return self.budget.to_dict(), dataclasses.asdict(self.thresholds)

    def _cached_decision(self, key: tuple[str, str], request: ExportRequest) -> dict | None:
        if key not in self.decided and self.cache is not None:
            doc = self.cache.decision(request, *self._decision_args())
            if doc is not None:
                self.decided[key] = doc
        return self.decided.get(key)

    def _floor_misses(self, q: Quality) -> list[str]:
        return parity_floor_misses(q, self.thresholds)

    def _misses(self, q: Quality) -> list[str]:
        return q.misses(self.budget) + self._floor_misses(q)

    def accept(self, request: ExportRequest, made: list[Artifact], golden) -> list[Artifact]:
        """The artifacts of ``request`` that meet the budget (re-exported with units in float
        when needed). Raises ExportError when no allowed fallback meets it."""
        key = (request.bucket.name, request.format)
        if not self.device.can_run(made[0]):
            self.log(f"[{key[0]}] {made[0].key}: int8 budget not checked: {self.device.why_not(made[0])}")
            return made
        search = self.searches.get(key)
        cached = self._cached_decision(key, request) if search is None else None
        if search is not None and search.float_units != request.float_units:
            request = replace(request, float_units=search.float_units)
            self.log(
                f"[{key[0]}] {request.format}-int8-{request.state_form}: re-export with the float units chosen for this bucket"
            )
            made = self.export(request)
        elif cached is not None and tuple(cached["float_units"]) != tuple(request.float_units):
            request = replace(request, float_units=tuple(cached["float_units"]))
            self.log(
                f"[{key[0]}] {request.format}-int8-{request.state_form}: the cached fallback decision keeps "
                f"{len(request.float_units)} unit(s) in float; checking it against the budget"
            )
            made = self.export(request)
        first_misses: list[str] | None = None
        sequence = self._sequence(golden)
        while True:
            # Every file of the request is held to the budget: the .ort twin runs other
            # (pre-optimized) kernels than its .onnx and can land on the other side of a floor.
            measured = self._measure(made, golden, sequence)
            qualities = {k: v[0] for k, v in measured.items()}
            misses = [m for key_, q in qualities.items() for m in self._labelled(key_, q, len(qualities))]
            art, q = made[0], next(iter(qualities.values()))
            if first_misses is None:
                first_misses = misses
            if search is not None:
                search.trials.append(Trial(request.float_units, q, misses, f"{art.runtime} artifact"))
            if not misses:
                break
            cached = None  # the cached decision no longer holds: search afresh
            self.log(f"[{key[0]}] {art.key}: int8 misses its budget ({'; '.join(misses)}); fallback search")
            if search is None:
                search = self.searches[key] = FallbackSearch(self.budget, self._floor_misses)
                search.trials.append(Trial(request.float_units, q, misses, f"{art.runtime} artifact"))
            probe = FORMATS.get(request.format).int8_probe(request)
            try:
                search_fallback(probe, sequence, search, start=len(request.float_units) + 1, log=self.log)
            except FallbackError as e:
                raise ExportError(f"{art.key}: {e}") from e
            request = replace(request, float_units=search.float_units)
            made = self.export(request)
        if cached is not None and tuple(cached["float_units"]) == tuple(request.float_units):
            fallback, search_doc = cached["fallback"], cached.get("search")
        else:
            fallback = (
                "none: plain int8 meets the budget"
                if not request.float_units
                else f"kept the {len(request.float_units)} most sensitive unit(s) in float; plain int8 missed: "
                + "; ".join(first_misses or ["(decided on the other state form of this bucket)"])
            )
            search_doc = search.to_dict() if search is not None else None
            self.decided[key] = {"float_units": list(request.float_units), "fallback": fallback, "search": search_doc}
            if self.cache is not None:
                self.cache.store_decision(request, *self._decision_args(), self.decided[key])
        for a in made:
            checked, parts = measured.get(a.key, (None, {}))
            a.int8 = Int8Decision(
                budget=self.budget,
                quality=parts.get("golden"),
                float_units=tuple(request.float_units),
                fallback=fallback,
                search=search_doc,
                checked=checked,
                heldout={k: v for k, v in parts.items() if k != "golden"},
            )
        return made

    def _measure(self, made: list[Artifact], golden, sequence: CheckSequence) -> dict[str, tuple[Quality, dict[str, Quality]]]:
        """Per file: its quality over the whole check sequence, and per part (golden, clips)."""
        parts = {"golden": golden, **self.checks.get(golden.bucket.name, {})}
        out = {}
        for a in made:
            if not self.device.can_run(a):
                continue
            masks = np.concatenate([self.device.run_sequence(a, g) for g in parts.values()])
            out[a.key] = (measure_quality(masks, sequence), {n: measure_quality(*sequence.part(masks, n)) for n in parts})
        return out

    def _labelled(self, key: str, q: Quality, n: int) -> list[str]:
        misses = self._misses(q)
        return [f"{key.split('/')[-1]}: {m}" for m in misses] if n > 1 else misses


COMPRESSED_PRECISIONS = ("int8", "palette6")
"""Precisions the report covers: int8 (activations and weights, or Core ML weights only) and
Core ML's 6-bit palettized weights."""


def _float_twin(art: Artifact, artifacts: list[Artifact]) -> Artifact | None:
    """The same bucket, format and state form in fp32 (fp16 for Core ML, which has no fp32)."""
    for precision in ("fp32", "fp16"):
        for a in artifacts:
            if (a.bucket.name, a.format, a.state_form, a.precision) == (art.bucket.name, art.format, art.state_form, precision):
                return a
    return None


def quantization_rows(artifacts: list[Artifact], goldens: dict, device: Device) -> list[dict]:
    """One row per compressed artifact: size and host latency against its float twin, quality
    against float, fallback."""
    rows = []
    for art in artifacts:
        if art.precision not in COMPRESSED_PRECISIONS:
            continue
        twin = _float_twin(art, artifacts)
        info = art.int8.to_dict() if art.int8 is not None else None
        row = {
            "key": art.key,
            "precision": art.precision,
            "bucket": art.bucket.name,
            "format": art.format,
            "state_form": art.state_form,
            "size_bytes": art.size_bytes(),
            "float_twin_key": twin.key if twin else None,
            "float_twin_size_bytes": twin.size_bytes() if twin else None,
            "size_ratio": art.size_bytes() / twin.size_bytes() if twin else None,
            "latency_ms_median": None,
            "speedup": None,
            "float_twin_precision": twin.precision if twin else None,
            "calibration": art.details.get("calibration"),
            "compression": art.details.get("compression"),
            "quantization": art.details.get("quantization"),
            "int8": info,
        }
        if twin is not None and device.can_run(art) and device.can_run(twin):
            times = device.time([twin, art], goldens[art.bucket.name], LATENCY).samples_ms
            med = {"fp32": statistics.median(times[twin.key]), "int8": statistics.median(times[art.key])}
            row["latency_ms_median"] = med
            row["latency_runs"] = LATENCY.runs
            row["speedup"] = med["fp32"] / med["int8"]
        rows.append(row)
    return rows


def write_quantization_report(rows: list[dict], budget: AccuracyBudget, device_name: str, out_dir: Path) -> None:
    """reports/quantization.json (machines) and quantization.md (people)."""
    speedup_targets = _speedup_targets(rows)
    targets = {f"{name}_speedup": v for name, v in speedup_targets.items()}
    doc = {"schema": REPORT_SCHEMA, "budget": budget.to_dict(), "device": device_name,
           "targets": {**targets, "size_ratio": SIZE_TARGET}, "artifacts": rows}
    with atomic_write(out_dir / "quantization.json", "w") as f:
        f.write(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    lines = [
        "# Quantization (int8 against float)",
        "",
        f"Budget (mean over each bucket's golden frames, int8 vs the float model): IoU >= {budget.min_iou}, "
        f"Boundary IoU >= {budget.min_boundary_iou}, temporal IoU at most {budget.max_temporal_drop} below float's; "
        f"fallback may keep up to {budget.max_float_fraction:.0%} of the units in float. Host: {device_name}; "
        f"latency is the median of {LATENCY.runs} interleaved runs against the fp32 twin (a ratio from one run).",
        "",
        (
            "| artifact | size vs float | speed-up vs float | IoU mean / min | Boundary IoU mean / min "
            "| temporal IoU float / int8 | units in float |"
        ),
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        q = r["int8"]["quality"] if r["int8"] else None
        size = f"{r['size_ratio']:.3f}x" if r["size_ratio"] else "n/a"
        speed = f"{r['speedup']:.2f}x" if r["speedup"] else "n/a"
        floats = ", ".join(r["int8"]["float_units"]) if r["int8"] and r["int8"]["float_units"] else "none"
        if q:
            lines.append(
                f"| {r['key']} | {size} | {speed} | {q['iou_mean']:.4f} / {q['iou_min']:.4f} | "
                f"{q['boundary_iou_mean']:.4f} / {q['boundary_iou_min']:.4f} | "
                f"{q['temporal_iou_float']:.4f} / {q['temporal_iou']:.4f} | {floats} |"
            )
        else:
            lines.append(f"| {r['key']} | {size} | {speed} | not run on this host | | | |")
    lines.append("")
    lines.append("Sizes and speed-ups compare with the fp32 artifact of the same bucket, format and state form "
                 "(the fp16 one for Core ML, which computes in fp16 and has no fp32 artifact).")
    lines += ["", "## Fallback decisions", ""]
    for r in rows:
        if r["int8"]:
            lines.append(f"- {r['key']}: {r['int8']['fallback']}")
    searched = {}  # one section per search (the rows of a bucket and format share one)
    for r in rows:
        s = (r["int8"] or {}).get("search")
        if s and id(s) not in searched:
            searched[id(s)] = (r["key"], s)
    for key, s in searched.values():
        lines += ["", f"### Sensitivity: {key} (and the other files of its bucket and format)", "",
                  "Each unit quantized alone, mean |probability error| against float (most sensitive first):", ""]
        lines += [f"{i + 1}. {x['unit']}: {x['mean_abs_error']:.2e}" for i, x in enumerate(s["ranking"][:10])]
        lines += ["", "Trials:", ""]
        for t in s["trials"]:
            verdict = "; ".join(t["misses"]) or "budget holds"
            lines.append(f"- {len(t['float_units'])} unit(s) in float, on {t['on']}: {verdict}")
    for name, goal in speedup_targets.items():
        label = FORMATS.get(name).kinds[0].label
        slow = [r for r in rows if r["format"] == name and r["speedup"] is not None and r["speedup"] < goal]
        if not slow:
            continue
        ops = (slow[0]["quantization"] or {}).get("float_ops", {})
        lines += [
            "",
            f"## Below the {goal}x {label} speed-up target",
            "",
            f"{len(slow)} {label} int8 artifact(s) are under {goal}x here. Ops the quantizer leaves in "
            "float run in fp32 inside the delegate, with a dequantize/quantize pair around each:",
            "",
        ]
        lines += [f"- `{op}` x{v['count']}: {v['why']}" for op, v in ops.items()]
    big = [r for r in rows if r["float_twin_precision"] == "fp32" and r["size_ratio"] > SIZE_TARGET]
    if big:
        lines += ["", f"Size above {SIZE_TARGET}x of fp32: " + ", ".join(f"{r['key']} ({r['size_ratio']:.3f}x)" for r in big)]
    if any(r["speedup"] is not None or r["size_ratio"] is not None for r in rows):
        quantization_plot(rows, out_dir / "quantization.png")
        lines[2:2] = ["![speed-up and size against the float twins](quantization.png)", ""]
    with atomic_write(out_dir / "quantization.md", "w") as f:
        f.write("\n".join(lines) + "\n")


def _speedup_targets(rows: list[dict]) -> dict[str, float]:
    """Format name -> its int8 speed-up target, for the formats present in ``rows``."""
    out = {}
    for r in rows:
        fmt = FORMATS.for_kind(r["format"])
        if fmt.int8_speedup_target is not None:
            out[fmt.name] = fmt.int8_speedup_target
    return out


def quantization_plot(rows: list[dict], path: Path) -> Path:
    """Two bar charts, one bar per compressed artifact: speed-up and size against its float
    twin, with the targets (each format's int8 speed-up target, 0.3x of fp32 size) drawn; bars
    in each format's colour."""

    names = [r["key"] for r in rows]
    y = list(range(len(rows)))
    fig = new_figure(11.0, 0.32 * len(rows) + 1.6)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    colors = [FORMATS.for_kind(r["format"]).color for r in rows]
    ax1.barh(y, [r["speedup"] or 0.0 for r in rows], color=colors)
    for name, goal in _speedup_targets(rows).items():
        ax1.axvline(
            goal, color=FORMATS.get(name).color, ls="--", lw=1, label=f"{FORMATS.get(name).kinds[0].label} target {goal}x"
        )
    ax1.axvline(1.0, color="grey", lw=0.8)
    ax1.set_xlabel("speed-up vs float twin (host, median of interleaved runs; 0 = not run here)")
    ax1.set_yticks(y, names, fontsize=7)
    ax1.invert_yaxis()
    ax1.legend(fontsize=7, loc="lower right")
    ax2.barh(y, [r["size_ratio"] or 0.0 for r in rows], color=colors)
    ax2.axvline(SIZE_TARGET, color="k", ls="--", lw=1, label=f"target {SIZE_TARGET}x of fp32")
    ax2.set_xlabel("file size / float twin's")
    ax2.legend(fontsize=7, loc="lower right")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    return path


__all__ = ["COMPRESSED_PRECISIONS", "Int8Stage", "quantization_rows", "write_quantization_report"]
