"""The eval stage: score predicted masks against labels, write a report, a summary and plots.

``evaluate(EvalSpec(...)) -> EvalReport`` is what ``backdrop eval`` calls. It reads

- predictions: a ``masks.npz`` (:mod:`backdrop.core.maskio`) or a folder of PNG masks, or for a
  labelled video *set* a folder holding one of those per video (``<video>.npz`` or
  ``<video>/``);
- labels: the same layouts, with the same video names and frame counts;
- frames (optional): a video file or an image folder per video, for the flow-warped IoU;
- metadata (optional): ``{"videos": {video: {category: class}}}`` for per-class fairness scores.

and writes ``report.json``, ``summary.md`` and ``plots/*.png`` under ``spec.out``. The layout
and value rules are in docs/eval-dataset.md, the metric definitions in docs/metrics.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from backdrop import __version__
from backdrop.core import metrics as M
from backdrop.core.errors import ConfigError, EvalError, InputError
from backdrop.core.fairness import (
    BootstrapConfig,
    FairnessConfig,
    FairnessReport,
    Interval,
    bootstrap_mean_ci,
    fairness_report,
    load_metadata,
    video_score,
)
from backdrop.core.fsutil import check_writable
from backdrop.core.maskio import load_masks
from backdrop.core.plots import new_figure

REPORT_FORMAT = "backdrop-eval-report"
REPORT_VERSION = 1

MASK_SUFFIXES = (".png",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".y4m")

METRICS = ("iou", "boundary_iou", "temporal_iou", "warped_iou", "mean_abs_change")
METRIC_TITLES = {
    "iou": "IoU",
    "boundary_iou": "Boundary IoU",
    "temporal_iou": "Temporal IoU (static)",
    "warped_iou": "Temporal IoU (flow-warped)",
    "mean_abs_change": "Mean abs. frame-to-frame change",
}


@dataclass(frozen=True)
class EvalSpec:
    """What to evaluate and how.

    Attributes:
        predictions: masks.npz, PNG folder, or a folder with one of those per video.
        labels: same layouts as ``predictions``, same video names and frame counts.
        out: output folder (created); gets report.json, summary.md, plots/.
        meta: fairness metadata JSON, or None for no per-class analysis.
        frames: video file / image folder (or a folder of those per video) for the flow-warped
            temporal IoU; None skips that metric (the report says so).
        dilation_ratio: Boundary IoU width as a fraction of the image diagonal.
        threshold: prediction binarisation threshold; None uses each masks.npz's stored
            threshold and 0.5 for PNG predictions.
        flow_preset: DIS optical-flow preset (``ultrafast``, ``fast``, ``medium``).
        fairness: minimum videos per class and bootstrap settings (also used for the overall
            intervals over videos).
        plots: write PNG plots.
    """

    predictions: Path
    labels: Path
    out: Path
    meta: Path | None = None
    frames: Path | None = None
    dilation_ratio: float = M.DEFAULT_DILATION_RATIO
    threshold: float | None = None
    flow_preset: str = M.DEFAULT_FLOW_PRESET
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    plots: bool = True

    def __post_init__(self) -> None:
        for name in ("predictions", "labels", "out", "meta", "frames"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        M.boundary_dilation(1, 1, self.dilation_ratio)  # validates the ratio
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"--threshold must be in (0, 1]; got {self.threshold}. The usual value is 0.5.")
        M.make_flow_estimator(self.flow_preset)  # validates the preset name


@dataclass(frozen=True)
class VideoResult:
    """Scores of one video.

    Attributes:
        name: video name.
        frame_names: prediction frame names, in order.
        threshold: prediction threshold used.
        iou: per-frame IoU against the label.
        boundary_iou: per-frame Boundary IoU.
        both_empty_frames: frames where prediction and label are both empty (scored 1.0).
        temporal_iou: IoU of consecutive predictions, per pair (N, N+1).
        warped_iou: flow-warped IoU per pair, or None without frames.
        mean_abs_change: mean absolute soft-mask change per pair.
    """

    name: str
    frame_names: tuple[str, ...]
    threshold: float
    iou: tuple[float, ...]
    boundary_iou: tuple[float, ...]
    both_empty_frames: int
    temporal_iou: tuple[float, ...]
    warped_iou: tuple[float, ...] | None
    mean_abs_change: tuple[float, ...]

    @property
    def frames(self) -> int:
        return len(self.iou)

    def mean(self, metric: str) -> float:
        """Mean of a per-frame (or per-pair) metric over this video; NaN when there is none."""
        return _mean(getattr(self, metric))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "frames": self.frames,
            "threshold": self.threshold,
            "both_empty_frames": self.both_empty_frames,
            "mean": {m: _num(self.mean(m)) for m in METRICS},
            "per_frame": {
                "frame_names": list(self.frame_names),
                "iou": _nums(self.iou),
                "boundary_iou": _nums(self.boundary_iou),
            },
            "per_pair": {
                "temporal_iou": _nums(self.temporal_iou),
                "warped_iou": None if self.warped_iou is None else _nums(self.warped_iou),
                "mean_abs_change": _nums(self.mean_abs_change),
            },
        }


@dataclass(frozen=True)
class EvalReport:
    """Everything ``evaluate`` computed and wrote.

    Attributes:
        spec: the spec evaluated.
        videos: per-video results, in name order.
        summary: per metric, the mean over videos of per-video means with a bootstrap interval
            over videos (NaN bounds with fewer than 2 videos; the warped metric is NaN without
            frames).
        fairness: per-class scores, or None without metadata.
        notes: caveats a reader must see (skipped metrics, empty frames, ...).
        report_path: report.json.
        summary_path: summary.md.
        plot_paths: PNG plots written.
        seconds: wall time of the evaluation.
    """

    spec: EvalSpec
    videos: tuple[VideoResult, ...]
    summary: dict[str, Interval]
    fairness: FairnessReport | None
    notes: tuple[str, ...]
    report_path: Path
    summary_path: Path
    plot_paths: tuple[Path, ...]
    seconds: float

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.videos)

    def to_dict(self) -> dict:
        s = self.spec
        b = s.fairness.bootstrap
        return {
            "format": REPORT_FORMAT,
            "format_version": REPORT_VERSION,
            "backdrop_version": __version__,
            "inputs": {
                "predictions": str(s.predictions),
                "labels": str(s.labels),
                "frames": None if s.frames is None else str(s.frames),
                "meta": None if s.meta is None else str(s.meta),
            },
            "config": {
                "dilation_ratio": s.dilation_ratio,
                "threshold": s.threshold,
                "threshold_rule": "foreground = p >= threshold; None = each masks.npz's own, 0.5 for PNG",
                "both_empty_score": M.BOTH_EMPTY_SCORE,
                "flow": None if s.frames is None else {"method": "opencv-dis", "preset": s.flow_preset, "on": "luma"},
                "intervals": {
                    "unit": "video",
                    "method": b.method,
                    "confidence": b.confidence,
                    "n_resamples": b.n_resamples,
                    "seed": b.seed,
                },
            },
            "summary": {
                "videos": len(self.videos),
                "frames": self.frames,
                "both_empty_frames": sum(v.both_empty_frames for v in self.videos),
                "metrics": {m: self.summary[m].to_dict() for m in METRICS},
            },
            "notes": list(self.notes),
            "videos": [v.to_dict() for v in self.videos],
            "fairness": None if self.fairness is None else self.fairness.to_dict(),
            "outputs": {
                "report": str(self.report_path),
                "summary": str(self.summary_path),
                "plots": [str(p) for p in self.plot_paths],
            },
            "seconds": round(self.seconds, 3),
        }


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _nums(xs) -> list[float | None]:
    return [_num(float(x)) for x in xs]


def _mean(xs) -> float:
    if xs is None:
        return math.nan
    a = np.asarray(xs, dtype=np.float64).ravel()
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


# --------------------------------------------------------------------------------------------
# Reading inputs
# --------------------------------------------------------------------------------------------


@dataclass
class _Masks:
    """Masks of one video as read from disk (internal)."""

    source: Path
    masks: list[np.ndarray]  # predictions: float32 soft in [0, 1]; labels: bool
    names: list[str]
    where: list[str]  # per frame, the file (and entry) to name in errors
    threshold: float | None  # the npz's stored threshold, None for PNG


def _what(role: str) -> str:
    return {"predictions": "--predictions", "labels": "--labels", "frames": "--frames"}[role]


def _visible(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if not p.name.startswith("."))


def _layout(path: Path, role: str) -> dict[str, Path] | None:
    """``None`` for a single video at ``path``, else ``{video: entry}`` for a video set."""
    if not path.exists():
        raise InputError(
            f"{role.capitalize()} not found: {path}. Pass {_what(role)} a masks.npz file, a folder of PNG masks, "
            "or a folder with one of those per video (docs/eval-dataset.md)."
        )
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise InputError(
                f"{role.capitalize()} file {path} is not a masks.npz archive. Pass a masks.npz file or a folder of PNG masks."
            )
        return None
    entries = _visible(path)
    pngs = [p for p in entries if p.is_file() and p.suffix.lower() in MASK_SUFFIXES]
    videos = [p for p in entries if p.is_dir() or (p.is_file() and p.suffix.lower() == ".npz")]
    if pngs and videos:
        raise InputError(
            f"{path} mixes PNG masks with per-video entries ({videos[0].name}). A folder is either one video's PNG "
            "masks or a set of <video>/ folders and <video>.npz files; move one kind elsewhere."
        )
    if pngs:
        return None
    if not videos:
        raise InputError(
            f"{path} contains no PNG masks, no <video>/ folders and no <video>.npz files. "
            "See docs/eval-dataset.md for the layout eval reads."
        )
    out: dict[str, Path] = {}
    for p in videos:
        name = p.stem if p.is_file() else p.name
        if name in out:
            raise InputError(f"{path} has both {out[name].name} and {p.name} for video {name!r}; keep one.")
        out[name] = p
    return out


def _single_name(path: Path) -> str:
    if path.is_file():
        return path.parent.name if path.stem == "masks" and path.parent.name else path.stem
    return path.name


def _read_png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"Cannot read {path} as an image. Replace it with an 8-bit PNG mask.")
    if img.dtype != np.uint8:
        raise EvalError(f"{path} is a {img.dtype} image; masks must be 8-bit PNGs (0/1 or 0/255 labels, 0..255 soft).")
    if img.ndim == 3:
        color = img[:, :, :3]
        if not ((color == color[:, :, :1]).all()):
            raise EvalError(f"{path} is a colour image; masks must be single-channel (grey) 8-bit PNGs.")
        img = color[:, :, 0]
    return img


def _png_files(folder: Path, role: str) -> list[Path]:
    files = [p for p in _visible(folder) if p.is_file() and p.suffix.lower() in MASK_SUFFIXES]
    if not files:
        raise InputError(f"{folder} contains no PNG masks ({role}). Put one PNG per frame there, named in frame order.")
    return files


def _read_labels(entry: Path) -> _Masks:
    if entry.is_file():
        seq = load_masks(entry)
        # A masks.npz defines its binary mask as p >= its own stored threshold (maskio's contract).
        return _Masks(
            entry,
            [seq.binary(i) for i in range(len(seq))],
            list(seq.frame_names),
            [f"{entry} [mask_{i:05d}, frame {n!r}]" for i, n in enumerate(seq.frame_names)],
            seq.threshold,
        )
    files = _png_files(entry, "labels")
    masks = []
    for f in files:
        img = _read_png(f)
        values = np.unique(img)
        bad = [int(v) for v in values if v not in (0, 1, 255)]
        if bad or (1 in values and 255 in values):
            shown = ", ".join(str(int(v)) for v in values[:8]) + (" ..." if values.size > 8 else "")
            raise EvalError(
                f"Label {f} is not binary: it has values {shown}. Labels must be 8-bit PNGs with 0/1 or 0/255 only; "
                "threshold soft labels (e.g. value >= 128 -> 255) before eval."
            )
        masks.append(img > 0)
    return _Masks(entry, masks, [f.name for f in files], [str(f) for f in files], None)


def _read_predictions(entry: Path) -> _Masks:
    if entry.is_file():
        seq = load_masks(entry)
        return _Masks(
            entry,
            [np.asarray(m, dtype=np.float32) for m in seq.masks],
            list(seq.frame_names),
            [f"{entry} [mask_{i:05d}, frame {n!r}]" for i, n in enumerate(seq.frame_names)],
            seq.threshold,
        )
    files = _png_files(entry, "predictions")
    imgs = [_read_png(f) for f in files]
    # A folder whose values are all 0/1 holds binary 0/1 masks; otherwise 0..255 is p * 255.
    binary01 = all(int(img.max(initial=0)) <= 1 for img in imgs)
    scale = 1.0 if binary01 else 1.0 / 255.0
    masks = [img.astype(np.float32) * np.float32(scale) for img in imgs]
    return _Masks(entry, masks, [f.name for f in files], [str(f) for f in files], None)


def _frames_entry(frames: Path, video: str) -> Path:
    candidates = [
        p
        for p in _visible(frames)
        if (p.is_dir() and p.name == video) or (p.is_file() and p.stem == video and p.suffix.lower() in VIDEO_SUFFIXES)
    ]
    if not candidates:
        raise InputError(
            f"{frames} has no frames for video {video!r}. Add {video}.mp4 (or {', '.join(VIDEO_SUFFIXES[1:])}) or a {video}/ "
            "image folder, or leave out --frames to skip the flow-warped metric."
        )
    return candidates[0]


def _read_luma(entry: Path) -> tuple[list[np.ndarray], list[str]]:
    """Luma (uint8 H x W) of every frame of a video file or an image folder, with file names."""
    if not entry.exists():
        raise InputError(f"Frames not found: {entry}. Pass --frames a video file or a folder of images.")
    if entry.is_dir():
        files = [p for p in _visible(entry) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise InputError(f"{entry} contains no images ({', '.join(IMAGE_SUFFIXES)}). Put one image per frame there.")
        out = []
        for f in files:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"Cannot read frame image {f}. Replace or remove it.")
            out.append(M.to_luma(img))
        return out, [str(f) for f in files]
    cap = cv2.VideoCapture(str(entry))
    if not cap.isOpened():
        raise InputError(f"Cannot open {entry} as a video. Pass a video OpenCV can read (.mp4, .avi) or an image folder.")
    out = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            out.append(M.to_luma(frame))
    finally:
        cap.release()
    if not out:
        raise InputError(f"{entry} has no decodable frames. Re-encode it (e.g. H.264 .mp4) or pass an image folder.")
    return out, [f"{entry} [frame {i}]" for i in range(len(out))]


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _score_video(
    name: str,
    pred: _Masks,
    lab: _Masks,
    frames: tuple[list[np.ndarray], list[str], Path] | None,
    spec: EvalSpec,
) -> VideoResult:
    n = len(pred.masks)
    if n != len(lab.masks):
        raise EvalError(
            f"Video {name!r}: {pred.source} has {n} prediction frames but {lab.source} has {len(lab.masks)} label "
            "frames. Give one label per predicted frame (PNG masks are paired in file-name order)."
        )
    for i, (p, g) in enumerate(zip(pred.masks, lab.masks)):
        if p.shape != g.shape:
            raise EvalError(
                f"Video {name!r}, frame {i}: prediction {pred.where[i]} is {p.shape[0]}x{p.shape[1]} but label "
                f"{lab.where[i]} is {g.shape[0]}x{g.shape[1]} (HxW). Predictions must be at the label's resolution."
            )
    if frames is not None:
        luma, where, source = frames
        if len(luma) != n:
            raise EvalError(
                f"Video {name!r}: {source} has {len(luma)} frames but {pred.source} has {n} masks. "
                "Pass the frames the predictions were made from."
            )
        for i, (f, p) in enumerate(zip(luma, pred.masks)):
            if f.shape != p.shape:
                raise EvalError(
                    f"Video {name!r}, frame {i}: {where[i]} is {f.shape[0]}x{f.shape[1]} but its mask "
                    f"{pred.where[i]} is {p.shape[0]}x{p.shape[1]} (HxW). Masks must be at frame resolution."
                )
    if spec.threshold is not None:
        threshold = spec.threshold
    else:
        threshold = pred.threshold if pred.threshold is not None else M.DEFAULT_THRESHOLD
    ious, bious, empty = [], [], 0
    for p, g in zip(pred.masks, lab.masks):
        pb = p >= threshold
        ious.append(M.iou(pb, g))
        bious.append(M.boundary_iou(pb, g, dilation_ratio=spec.dilation_ratio))
        empty += int(not pb.any() and not g.any())
    temporal = M.temporal_consistency(
        pred.masks, None if frames is None else frames[0], threshold=threshold, preset=spec.flow_preset
    )
    return VideoResult(
        name=name,
        frame_names=tuple(pred.names),
        threshold=float(threshold),
        iou=tuple(ious),
        boundary_iou=tuple(bious),
        both_empty_frames=empty,
        temporal_iou=temporal.static_iou,
        warped_iou=temporal.warped_iou,
        mean_abs_change=temporal.mean_abs_change,
    )


def _pair_videos(spec: EvalSpec) -> tuple[list[tuple[str, Path, Path]], bool]:
    """``([(video, prediction entry, label entry)], single_video)``."""
    pred_set = _layout(spec.predictions, "predictions")
    lab_set = _layout(spec.labels, "labels")
    if (pred_set is None) != (lab_set is None):
        one, many = (spec.predictions, spec.labels) if pred_set is None else (spec.labels, spec.predictions)
        raise EvalError(
            f"{one} holds one video but {many} holds a set of videos. Pass both as single videos or both as "
            "folders with one entry per video (docs/eval-dataset.md)."
        )
    if pred_set is None or lab_set is None:
        return [(_single_name(spec.predictions), spec.predictions, spec.labels)], True
    only_pred = sorted(set(pred_set) - set(lab_set))
    only_lab = sorted(set(lab_set) - set(pred_set))
    if only_pred or only_lab:
        parts = []
        if only_pred:
            parts.append(f"no labels in {spec.labels} for: {', '.join(only_pred[:10])}")
        if only_lab:
            parts.append(f"no predictions in {spec.predictions} for: {', '.join(only_lab[:10])}")
        raise EvalError(f"Prediction and label videos differ: {'; '.join(parts)}. Video names must match.")
    return [(v, pred_set[v], lab_set[v]) for v in sorted(pred_set)], False


def evaluate(spec: EvalSpec) -> EvalReport:
    """Score predictions against labels and write report.json, summary.md and plots.

    Args:
        spec: inputs, outputs and settings.

    Returns:
        :class:`EvalReport` (also written to ``spec.out / "report.json"``).

    Raises:
        OutputPathError: ``spec.out`` cannot be written (checked before anything is read).
        InputError: a file or folder is missing, unreadable, or laid out wrongly.
        EvalError: frame counts, sizes or video names disagree (also between the metadata and the
            videos), or a label is not binary.
    """
    t0 = time.perf_counter()
    check_writable(spec.out, "--out", folder=True)  # before any mask is read
    pairs, single = _pair_videos(spec)
    metadata = load_metadata(spec.meta) if spec.meta is not None else None
    if metadata is not None:
        unknown = [v for v in metadata if v not in {p[0] for p in pairs}]
        if unknown:
            raise EvalError(
                f"{spec.meta} lists {len(unknown)} video(s) that have no predictions: {', '.join(unknown[:10])} "
                f"(evaluated: {', '.join(p[0] for p in pairs[:10])}). Fix the names or remove them from the metadata."
            )
    results = []
    for name, pred_entry, lab_entry in pairs:
        frames = None
        if spec.frames is not None:
            f_entry = spec.frames if single else _frames_entry(_require_dir(spec.frames), name)
            luma, where = _read_luma(f_entry)
            frames = (luma, where, f_entry)
        results.append(_score_video(name, _read_predictions(pred_entry), _read_labels(lab_entry), frames, spec))

    notes = _notes(spec, results)
    boot = spec.fairness.bootstrap
    summary = {m: _overall([r.mean(m) for r in results], boot, m) for m in METRICS}
    fair = None
    if metadata is not None:
        scores = {r.name: video_score(r.name, r.iou, r.boundary_iou) for r in results}
        fair = fairness_report(scores, metadata, spec.fairness)
        few = [f"{c.category}={c.name} ({c.n_videos})" for c in fair.classes if c.few_videos]
        if few:
            notes.append(
                f"{len(few)} class(es) have fewer than {spec.fairness.min_videos} videos; their intervals are unreliable "
                f"and they are flagged: {', '.join(few[:10])}."
            )
        if fair.unlabelled_videos:
            notes.append(f"Videos not in the metadata (in no class): {', '.join(fair.unlabelled_videos[:10])}.")

    out = spec.out
    out.mkdir(parents=True, exist_ok=True)
    plot_paths: list[Path] = []
    if spec.plots:
        plot_dir = out / "plots"
        plot_dir.mkdir(exist_ok=True)
        for r in results:
            plot_paths.append(per_frame_plot(r, plot_dir / f"frames_{_safe(r.name)}.png"))
        if fair is not None:
            plot_paths.append(fairness_plot(fair, plot_dir / "fairness.png"))
    report = EvalReport(
        spec=spec,
        videos=tuple(results),
        summary=summary,
        fairness=fair,
        notes=tuple(notes),
        report_path=out / "report.json",
        summary_path=out / "summary.md",
        plot_paths=tuple(plot_paths),
        seconds=time.perf_counter() - t0,
    )
    _write_text(report.report_path, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    _write_text(report.summary_path, summary_markdown(report))
    return report


def _require_dir(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"Frames not found: {path}. Pass --frames a folder with one video file or image folder per video.")
    if not path.is_dir():
        raise InputError(
            f"--frames {path} must be a folder with one video file or image folder per video, because the "
            "predictions are a video set (docs/eval-dataset.md)."
        )
    return path


def _overall(values: list[float], boot: BootstrapConfig, metric: str) -> Interval:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return Interval(math.nan, math.nan, math.nan)
    return bootstrap_mean_ci(vals, boot, stream=(0x0A11, METRICS.index(metric)))


def _notes(spec: EvalSpec, results: list[VideoResult]) -> list[str]:
    notes = []
    if spec.frames is None:
        notes.append("Flow-warped temporal IoU skipped: no --frames given (DIS optical flow needs the frames' luma).")
    empty = sum(r.both_empty_frames for r in results)
    if empty:
        notes.append(f"{empty} frame(s) have both prediction and label empty; they score IoU = Boundary IoU = 1.0.")
    if len(results) < 2:
        notes.append("One video: no confidence intervals (intervals resample whole videos, never frames).")
    if any(len(r.iou) < 2 for r in results):
        notes.append("Some videos have a single frame: no temporal metrics for them.")
    return notes


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "video"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Text output
# --------------------------------------------------------------------------------------------


def _fmt(iv: Interval, digits: int = 4) -> str:
    if math.isnan(iv.mean):
        return "n/a"
    if math.isnan(iv.low):
        return f"{iv.mean:.{digits}f}"
    return f"{iv.mean:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


def summary_paragraph(report: EvalReport) -> str:
    """One paragraph of results, for the CLI and the top of summary.md."""
    s = report.summary
    conf = int(round(report.spec.fairness.bootstrap.confidence * 100))
    ci = f" ({conf}% intervals over videos in brackets)" if len(report.videos) >= 2 else ""
    text = (
        f"{len(report.videos)} video(s), {report.frames} frames{ci}: IoU {_fmt(s['iou'])}, "
        f"Boundary IoU {_fmt(s['boundary_iou'])} (dilation ratio {report.spec.dilation_ratio}); "
        f"temporal IoU {_fmt(s['temporal_iou'])} static"
    )
    if report.spec.frames is not None:
        text += f", {_fmt(s['warped_iou'])} flow-warped (DIS {report.spec.flow_preset})"
    else:
        text += ", flow-warped skipped (no --frames)"
    text += f"; mean frame-to-frame mask change {_fmt(s['mean_abs_change'], 5)}."
    if report.fairness is not None:
        classes = report.fairness.classes
        if classes:
            lo = min(classes, key=lambda c: c.iou.mean)
            hi = max(classes, key=lambda c: c.iou.mean)
            flagged = sum(c.few_videos for c in report.fairness.classes)
            text += (
                f" Per-class IoU ranges from {lo.iou.mean:.4f} ({lo.category}={lo.name}) to {hi.iou.mean:.4f} "
                f"({hi.category}={hi.name}) over {len(report.fairness.classes)} classes in "
                f"{len(report.fairness.categories)} categories; {flagged} flagged for fewer than "
                f"{report.fairness.config.min_videos} videos."
            )
    return text


def summary_markdown(report: EvalReport) -> str:
    """The summary.md text: headline, per-video table, per-class table, notes, plots."""
    s = report.spec
    lines = [
        "# backdrop eval",
        "",
        summary_paragraph(report),
        "",
        f"- predictions: `{s.predictions}`",
        f"- labels: `{s.labels}`",
        f"- frames: `{s.frames}`" if s.frames is not None else "- frames: none (flow-warped IoU skipped)",
        f"- metadata: `{s.meta}`" if s.meta is not None else "- metadata: none (no per-class analysis)",
        f"- both-empty frames score {M.BOTH_EMPTY_SCORE}; definitions in docs/metrics.md",
        "",
        "## Overall (mean over videos)",
        "",
        "| metric | mean [95% CI over videos] |",
        "|---|---|",
    ]
    lines += [f"| {METRIC_TITLES[m]} | {_fmt(report.summary[m])} |" for m in METRICS]
    lines += [
        "",
        "## Videos",
        "",
        "| video | frames | IoU | Boundary IoU | temporal IoU | warped IoU | mean abs change |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in report.videos:
        cells = [f"{v.mean(m):.4f}" if not math.isnan(v.mean(m)) else "n/a" for m in METRICS]
        lines.append(f"| {v.name} | {v.frames} | " + " | ".join(cells) + " |")
    if report.fairness is not None:
        lines += [
            "",
            "## Per class",
            "",
            "| category | class | videos | IoU [95% CI] | Boundary IoU [95% CI] | flag |",
            "|---|---|---|---|---|---|",
        ]
        for c in report.fairness.classes:
            flag = f"fewer than {report.fairness.config.min_videos} videos" if c.few_videos else ""
            lines.append(
                f"| {c.category} | {c.name} | {c.n_videos} | {_fmt(c.iou)} | {_fmt(c.boundary_iou)} | {flag} |"
            )
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    if report.plot_paths:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}](plots/{p.name})" for p in report.plot_paths]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Plots (matplotlib's Agg canvas on a bare Figure: no pyplot, no global backend switch)
# --------------------------------------------------------------------------------------------


def per_frame_plot(video: VideoResult, path: Path) -> Path:
    """Per-frame IoU / Boundary IoU, per-pair temporal IoU and mask change of one video.

    Args:
        video: the video's scores.
        path: PNG to write.

    Returns:
        ``path``.
    """
    fig = new_figure(9.0, 7.0)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    x = np.arange(video.frames)
    ax1.plot(x, video.iou, label=f"IoU (mean {video.mean('iou'):.4f})", color="tab:blue")
    ax1.plot(x, video.boundary_iou, label=f"Boundary IoU (mean {video.mean('boundary_iou'):.4f})", color="tab:orange")
    ax1.set_ylabel("vs label")
    ax1.set_title(f"{video.name}: {video.frames} frames")
    xp = np.arange(1, video.frames)  # pair (N-1, N) plotted at N
    ax2.plot(xp, video.temporal_iou, label=f"static (mean {video.mean('temporal_iou'):.4f})", color="tab:green")
    if video.warped_iou is not None:
        ax2.plot(xp, video.warped_iou, label=f"flow-warped (mean {video.mean('warped_iou'):.4f})", color="tab:red")
    else:
        ax2.text(0.01, 0.05, "flow-warped IoU skipped: no frames given", transform=ax2.transAxes, fontsize=8)
    ax2.set_ylabel("IoU(N-1, N)")
    ax3.plot(xp, video.mean_abs_change, color="tab:purple", label=f"mean {video.mean('mean_abs_change'):.5f}")
    ax3.set_ylabel("mean |mask change|")
    ax3.set_xlabel("frame")
    for ax in (ax1, ax2, ax3):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
    fig.savefig(path, format="png")
    return path


def fairness_plot(report: FairnessReport, path: Path) -> Path:
    """Per-class IoU and Boundary IoU with their confidence intervals, grouped by category.

    Like the seed's fairness figure: one point per class, error bars for the interval. Classes
    flagged for too few videos are drawn hollow and grey, with their video count.

    Args:
        report: per-class scores.
        path: PNG to write.

    Returns:
        ``path``.
    """
    classes = report.classes
    conf = int(round(report.config.bootstrap.confidence * 100))
    fig = new_figure(max(6.0, 0.45 * len(classes) + 2.5), 7.0)
    axes = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(classes))
    for ax, metric, title in ((axes[0], "iou", "IoU"), (axes[1], "boundary_iou", "Boundary IoU")):
        for i, c in enumerate(classes):
            iv = getattr(c, metric)
            color = "0.6" if c.few_videos else "tab:blue"
            if not math.isnan(iv.low):
                ax.errorbar(i, iv.mean, yerr=[[iv.mean - iv.low], [iv.high - iv.mean]], color=color, capsize=3, lw=1.2)
            ax.plot(i, iv.mean, "o", color=color, mfc="white" if c.few_videos else color)
        ax.set_ylabel(f"per-class {title}")
        ax.set_title(f"{title} per class, {conf}% CI over videos (hollow grey: < {report.config.min_videos} videos)",
                     fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        # Separate categories with a vertical line.
        for i in range(1, len(classes)):
            if classes[i].category != classes[i - 1].category:
                ax.axvline(i - 0.5, color="0.8", lw=0.8)
    axes[1].set_xticks(x)
    axes[1].set_xticklabels([f"{c.category}={c.name} (n={c.n_videos})" for c in classes], rotation=60, ha="right",
                            fontsize=8)
    fig.savefig(path, format="png")
    return path
