"""Parity: does an artifact, run on a device over a golden sequence, match the reference?

Every frame of the golden is run through the artifact with the state carried by the runtime
(device_tests/base.py), and each output mask is compared with the reference's at bucket
resolution:

- max abs error of the probabilities (over the whole bucket, padding included: the padding
  is part of the state fed back);
- IoU and Boundary IoU (backdrop.core.metrics) of the masks thresholded at 0.5.

A frame passes when all three are within :class:`Thresholds`; an artifact passes when every
frame does. The record keeps every frame's numbers, the first failing frame and metric, and a
summary of each stretch between resets (before / after the mid-sequence reset), so a state
that is not carried, or not cleared by a reset, shows up where it happens.

Reports: :func:`write_parity_report` writes ``parity.json`` (machines) and ``parity.md``
(people) into the target's ``reports/`` folder.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from backdrop.core.errors import ConfigError
from backdrop.core.fsutil import atomic_write
from backdrop.core.metrics import boundary_iou, iou
from backdrop.device_tests.base import Device, DeviceDescription, DeviceError, DeviceLostError
from backdrop.export.artifact import Artifact, ParitySummary
from backdrop.export.goldens import Golden

REPORT_SCHEMA = "backdrop-parity/1"
MASK_THRESHOLD = 0.5
METRICS = ("max_abs_error", "iou", "boundary_iou")


@dataclass(frozen=True)
class Thresholds:
    """What every frame of a parity run must meet.

    Attributes:
        min_iou: IoU of the thresholded masks, per frame (the issue's 0.99, every precision).
        min_boundary_iou: Boundary IoU of the thresholded masks, per frame.
        max_abs_error: largest |artifact - reference| of the probabilities, per frame.

    Defaults per precision (:meth:`for_precision`), to be re-set on trained weights: a
    random-weight network's masks are noisy, so thresholds calibrated on them say little
    (field notes, "Parity and quantization").

    - fp32: max abs error 1e-3. XNNPACK, ONNX Runtime and the Lite interpreter reorder float32
      sums and use other conv kernels. Measured over 30-40 carphone frames at 64x96 with the
      feedback loop running: the random-weight lite network differs by <= 1e-7 (ExecuTorch,
      ONNX); the same network with its head scaled ~2500x so that masks are structured (the
      tests' model, a harsh amplifier of rounding) by 2e-5 to 2.5e-4 (ONNX, ORT, Lite,
      ExecuTorch). A dropped state, a missed reset or other weights move probabilities by
      > 0.1. Boundary IoU >= 0.97: boundary pixels whose probability sits within the error of
      0.5 may flip, and the band is small (about 600 pixels at 64x96), so allow a few.
    - fp16: max abs error 1e-2 (fp16 has ~3 significant digits; activations of ~10 keep about
      5e-3 absolute), Boundary IoU >= 0.95.
    - int8: per-frame guards against a broken frame, set on the trained default over the
      goldens *and* held-out clips of other people (docs/quantization.md, "Floors";
      ``scripts/int8_floors.py`` measures them): IoU >= 0.90, Boundary IoU >= 0.70, max abs
      error <= 0.8 (a soft probability near the boundary may move a lot; a wrong region moves
      by ~1). How close int8 stays on average is the accuracy budget's job
      (backdrop.quantization.budget), held over the same frames.
    """

    min_iou: float = 0.99
    min_boundary_iou: float = 0.97
    max_abs_error: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("min_iou", "min_boundary_iou"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"Parity threshold {name} must be in [0, 1], got {v}.")
        if not self.max_abs_error >= 0.0:
            raise ConfigError(f"Parity threshold max_abs_error must be >= 0, got {self.max_abs_error}.")

    @classmethod
    def for_precision(cls, precision: str) -> Thresholds:
        """The default thresholds of an artifact precision ("fp32", "fp16", "int8").

        Raises:
            ConfigError: unknown precision.
        """
        try:
            return _DEFAULTS[precision]
        except KeyError:
            raise ConfigError(
                f"No parity thresholds for precision {precision!r}; known: {', '.join(_DEFAULTS)}."
            ) from None

    def to_dict(self) -> dict:
        return asdict(self)


_DEFAULTS = {
    "fp32": Thresholds(0.99, 0.97, 1e-3),
    "fp16": Thresholds(0.99, 0.95, 1e-2),
    "int8": Thresholds(0.90, 0.70, 0.8),
    "palette6": Thresholds(0.99, 0.90, 2.5e-1),
}


def thresholds_for(precision: str) -> Thresholds:
    """:meth:`Thresholds.for_precision` as a function (what the export pipeline calls)."""
    return Thresholds.for_precision(precision)


@dataclass
class ParityRecord:
    """One artifact on one device over one golden sequence.

    Attributes:
        artifact: the artifact's key (``bucket/format-precision-state_form``).
        artifact_info: path name, format, runtime, precision, state form, bucket.
        device: device name; ``tier``: its kind (e.g. "host-x86_64").
        golden: source, frame count and reset frames of the golden.
        thresholds: the thresholds applied.
        runtime_versions: versions of the runtime(s) that ran it.
        max_abs_error, iou, boundary_iou: one value per frame (empty if the run failed).
        passed: every frame met every threshold.
        first_failure: ``{"frame", "frame_name", "metric", "value", "threshold"}`` of the first
            failing frame (metrics in the order max_abs_error, iou, boundary_iou), or None.
        segments: per stretch between resets (``before_reset``, ``after_reset``): frame range
            and the worst value of each metric.
        error: why the run itself failed (runtime rejected the file, I/O mismatch), or "".
        message: one line saying what passed or failed; names artifact, frame and metric.
    """

    artifact: str
    artifact_info: dict
    device: str
    tier: str
    golden: dict
    thresholds: dict
    runtime_versions: dict
    max_abs_error: list[float] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)
    boundary_iou: list[float] = field(default_factory=list)
    passed: bool = False
    first_failure: dict | None = None
    segments: list[dict] = field(default_factory=list)
    error: str = ""
    message: str = ""

    def to_dict(self) -> dict:
        return _json_safe(asdict(self))

    def summary(self) -> ParitySummary:
        """The few numbers a manifest entry carries (the per-frame lists stay in the report)."""
        worst = {}
        if self.iou:
            worst = {
                "min_iou": min(self.iou),
                "min_boundary_iou": min(self.boundary_iou),
                "max_abs_error": max(self.max_abs_error),
            }
        return ParitySummary(
            passed=self.passed,
            device=self.device,
            tier=self.tier,
            frames=_json_safe(self.golden.get("num_frames")),
            resets=_json_safe(self.golden.get("resets")),
            worst=_json_safe(worst),
            thresholds=_json_safe(self.thresholds),
            first_failure=_json_safe(self.first_failure),
            segments=_json_safe(
                [{k: s[k] for k in ("label", "start", "stop", "min_iou", "max_abs_error")} for s in self.segments]
            ),
            error=self.error,
        )


def _json_safe(obj):
    """NaN/inf -> None (strict JSON), numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _frame_failure(values: dict[str, float], t: Thresholds) -> tuple[str, float, float] | None:
    """(metric, value, threshold) of the first metric a frame misses; NaN always misses."""
    if not values["max_abs_error"] <= t.max_abs_error:
        return "max_abs_error", values["max_abs_error"], t.max_abs_error
    if not values["iou"] >= t.min_iou:
        return "iou", values["iou"], t.min_iou
    if not values["boundary_iou"] >= t.min_boundary_iou:
        return "boundary_iou", values["boundary_iou"], t.min_boundary_iou
    return None


def _segments(golden: Golden, rec: ParityRecord) -> list[dict]:
    starts = golden.reset_indices
    stops = starts[1:] + [golden.num_frames]
    out = []
    for k, (a, b) in enumerate(zip(starts, stops)):
        if len(starts) == 2:
            label = ("before_reset", "after_reset")[k]
        else:
            label = "before_reset" if k == 0 else f"after_reset_{k}"
        err, i, bi = rec.max_abs_error[a:b], rec.iou[a:b], rec.boundary_iou[a:b]
        out.append(
            {
                "label": label,
                "start": a,
                "stop": b,
                "max_abs_error": float(np.max(err)),
                "min_iou": float(np.min(i)),
                "mean_iou": float(np.mean(i)),
                "min_boundary_iou": float(np.min(bi)),
            }
        )
    return out


def check_parity(
    artifact: Artifact, golden: Golden, device: Device, thresholds: Thresholds | None = None
) -> ParityRecord:
    """Run ``golden`` through ``artifact`` on ``device`` and compare every frame.

    Args:
        artifact: the artifact (of ``golden.bucket``).
        golden: its bucket's golden sequence.
        device: where to run it; must be able to (``device.can_run(artifact)``).
        thresholds: per-frame limits; None for :meth:`Thresholds.for_precision` of the
            artifact's precision.

    Returns:
        The record. A run that fails (runtime rejects the file, outputs differ in structure)
        is a failed record with ``error`` set, not an exception, so a report lists it.

    Raises:
        DeviceError: the device has no runtime for this artifact (check ``can_run`` first).
        DeviceLostError: the device went away during the run.
        ConfigError: no default thresholds for the artifact's precision.
    """
    t = thresholds if thresholds is not None else Thresholds.for_precision(artifact.precision)
    if not device.can_run(artifact):
        raise DeviceError(f"{artifact.key} cannot run on {device.name} ({device.tier}): {device.why_not(artifact)}")
    rec = ParityRecord(
        artifact=artifact.key,
        artifact_info={
            "path": Path(artifact.path).name,
            "format": artifact.format,
            "runtime": artifact.runtime,
            "precision": artifact.precision,
            "state_form": artifact.state_form,
            "bucket": artifact.bucket.name,
        },
        device=device.name,
        tier=device.tier,
        golden={"source": golden.source, "num_frames": golden.num_frames, "resets": golden.reset_indices},
        thresholds=t.to_dict(),
        runtime_versions=device.runtime_versions(artifact),
    )
    where = f"{artifact.key} on {device.name} ({device.tier})"
    try:
        masks = device.run_sequence(artifact, golden)
    except DeviceLostError:
        raise  # nothing else can run there: the caller stops (and writes no report)
    except DeviceError as e:
        rec.error = str(e)
        rec.message = f"Parity failed: {where}: the run failed: {e}"
        return rec
    for i in range(golden.num_frames):
        got, ref = masks[i, 0], golden.expected_masks[i, 0]
        values = {
            "max_abs_error": float(np.max(np.abs(got.astype(np.float64) - ref))),
            "iou": iou(got, ref, threshold=MASK_THRESHOLD),
            "boundary_iou": boundary_iou(got, ref, threshold=MASK_THRESHOLD),
        }
        rec.max_abs_error.append(values["max_abs_error"])
        rec.iou.append(values["iou"])
        rec.boundary_iou.append(values["boundary_iou"])
        failure = _frame_failure(values, t)
        if failure is not None and rec.first_failure is None:
            metric, value, limit = failure
            rec.first_failure = {
                "frame": i,
                "frame_name": golden.frame_names[i],
                "metric": metric,
                "value": value,
                "threshold": limit,
            }
    rec.segments = _segments(golden, rec)
    rec.passed = rec.first_failure is None
    if rec.passed:
        rec.message = (
            f"Parity passed: {where}: {golden.num_frames} frames, min IoU {min(rec.iou):.4f}, "
            f"min Boundary IoU {min(rec.boundary_iou):.4f}, max abs error {max(rec.max_abs_error):.2e}."
        )
    else:
        f = rec.first_failure
        bound = "above the maximum" if f["metric"] == "max_abs_error" else "below the minimum"
        seg = next(s["label"] for s in rec.segments if s["start"] <= f["frame"] < s["stop"])
        n_bad = sum(_frame_failure(
            {"max_abs_error": e, "iou": a, "boundary_iou": b}, t) is not None
            for e, a, b in zip(rec.max_abs_error, rec.iou, rec.boundary_iou))
        rec.message = (
            f"Parity failed: {where}: frame {f['frame']} ({f['frame_name']}, {seg.replace('_', ' ')}) "
            f"{f['metric']} = {_fmt(f['value'])}, {bound} {_fmt(f['threshold'])}; "
            f"{n_bad} of {golden.num_frames} frames fail."
        )
    return rec


def _fmt(v: float) -> str:
    if v is None or not math.isfinite(v):
        return str(v)
    return f"{v:.2e}" if 0 < abs(v) < 1e-2 else f"{v:.4f}"


def _atomic_write(path: Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def report_markdown(records: list[ParityRecord]) -> str:
    """The human-readable report (what ``parity.md`` holds)."""
    n_fail = sum(not r.passed for r in records)
    lines = [
        "# Parity",
        "",
        "Each artifact ran its bucket's golden sequence (real frames, state carried by the runtime, reset "
        "mid-sequence); every frame was compared with the float PyTorch reference at bucket resolution. "
        f"Masks thresholded at {MASK_THRESHOLD}. Generated by backdrop.device_tests.parity.",
        "",
        f"**{len(records) - n_fail} of {len(records)} passed.**" if records else "**No artifacts were checked.**",
        "",
        "| artifact | device | min IoU | min Boundary IoU | max abs error | min IoU before / after reset "
        "| thresholds (IoU, BIoU, abs err) | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r.error:
            stats = ["-", "-", "-", "-"]
        else:
            if len(r.segments) <= 3:
                segs = " / ".join(f"{s['min_iou']:.4f}" for s in r.segments)
            else:
                segs = f"{len(r.segments)} resets, worst {min(s['min_iou'] for s in r.segments):.4f}"
            stats = [f"{min(r.iou):.4f}", f"{min(r.boundary_iou):.4f}", f"{max(r.max_abs_error):.2e}", segs]
        t = r.thresholds
        lines.append(
            f"| `{r.artifact}` | {r.device} ({r.tier}) | " + " | ".join(stats)
            + f" | >= {t['min_iou']}, >= {t['min_boundary_iou']}, <= {t['max_abs_error']:g}"
            + f" | {'pass' if r.passed else '**FAIL**'} |"
        )
    failed = [r for r in records if not r.passed]
    if failed:
        lines += ["", "## Failures", ""] + [f"- {r.message}" for r in failed]
    lines += ["", "## Runtimes", ""]
    seen = set()
    for r in records:
        key = (r.device, r.tier, r.artifact_info["format"])
        if key in seen:
            continue
        seen.add(key)
        versions = ", ".join(f"{k} {v}" for k, v in r.runtime_versions.items())
        lines.append(f"- {r.artifact_info['format']} on {r.device} ({r.tier}): {versions}")
    return "\n".join(lines) + "\n"


def write_parity_report(
    records: list[ParityRecord], out_dir: str | os.PathLike, device: DeviceDescription | None = None
) -> tuple[Path, Path]:
    """Write ``out_dir/parity.json`` and ``out_dir/parity.md``, each atomically.

    ``parity.json``: ``{"schema": "backdrop-parity/1", "passed": bool, "num_records": int,
    "records": [ParityRecord.to_dict(), ...]}`` (strict JSON: NaN written as null), plus
    ``"device"`` (:class:`DeviceDescription`) when given. No times or dates, so the same runs
    give the same files.

    Returns:
        (json path, markdown path).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema": REPORT_SCHEMA,
        "passed": all(r.passed for r in records),
        "num_records": len(records),
        "records": [r.to_dict() for r in records],
    }
    md = report_markdown(records)
    if device is not None:
        doc["device"] = device.to_dict()
        emulated = " **Emulated CPU: functional check only, timings are not latency.**" if device.emulated else ""
        versions = ", ".join(f"{k} {v}" for k, v in device.runtime_versions.items())
        label = f", {device.label}" if device.label else ""
        md = md.replace("\n\n", f"\n\nDevice: {device.name} ({device.tier}{label}): {device.machine}, {device.cpu}; {device.os}; "
                        f"{versions}.{emulated}\n\n", 1)
    json_path, md_path = out / "parity.json", out / "parity.md"
    _atomic_write(json_path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    _atomic_write(md_path, md)
    return json_path, md_path


__all__ = [
    "MASK_THRESHOLD",
    "METRICS",
    "REPORT_SCHEMA",
    "ParityRecord",
    "Thresholds",
    "check_parity",
    "report_markdown",
    "thresholds_for",
    "write_parity_report",
]
