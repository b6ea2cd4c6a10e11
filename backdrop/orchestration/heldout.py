"""The held-out evaluation of a checkpoint: every held-out clip and photo, per-group results.

The held-out set (``backdrop.models.data``: sources with ``split="heldout"`` and the carphone
tail) holds identities never trained on. Each item runs through the float reference predictor
with the mask fed back (the deployed loop; a clip's first frame and every photo start from an
empty mask). Against the best teacher labels (RVM on clips, the three-teacher median on
photos), binarised at 0.5:

- per item: IoU and Boundary IoU per frame (mean and min); on clips also the temporal metrics
  of the student and of the teacher labels on the same frames (consecutive-frame IoU and
  flow-warped IoU, OpenCV DIS);
- overall: means over items (each item counts once, as ``backdrop eval`` does over videos);
- per group (framing, number of people, lighting, apparent skin tone: assigned by looking, see
  docs/model-card.md) with 95 % intervals: the eval set is written as a ``backdrop eval``
  dataset (predictions, labels, frames and ``meta.json``) and scored by
  :func:`backdrop.orchestration.evaluate.evaluate`, the function behind ``backdrop eval --meta``.

Labels come from the teacher caches (``backdrop labels``) or, without any teacher installed,
from the committed file ``tests/data/heldout_labels.npz`` (:func:`export_labels` writes it:
bit-packed binary masks, the metadata of the teachers that made them).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from backdrop.core.errors import InputError
from backdrop.core.fsutil import atomic_write
from backdrop.core.metrics import boundary_iou, iou, temporal_consistency

LABELS_FORMAT = "backdrop-heldout-labels"
LABELS_VERSION = 1
COMMITTED_LABELS = Path(__file__).resolve().parents[2] / "tests" / "data" / "heldout_labels.npz"


@dataclass
class HeldItem:
    """One held-out clip (frames in order) or photo (one frame).

    Attributes:
        name: the source name (``backdrop.models.data.SOURCES``).
        kind: ``clip`` or ``image``.
        bgr: uint8 BGR frames.
        labels: bool (H, W) teacher masks, one per frame.
        first_frame: index of the first frame in its file.
        groups: category -> class, assigned by looking.
        teacher: how the label was made.
    """

    name: str
    kind: str
    bgr: list[np.ndarray]
    labels: list[np.ndarray]
    first_frame: int = 0
    groups: dict = field(default_factory=dict)
    teacher: str = ""


def _groups(name: str) -> dict:
    from backdrop.models.data import source

    groups = dict(source(name).groups)
    if name == "carphone_pristine":
        groups = {"framing": "head-and-shoulders", "people": "1", "lighting": "in a car, daylight", "skin_tone": "light"}
    return groups


def load_items(data_dir: str | os.PathLike) -> list[HeldItem]:
    """The held-out items with the labels of the teacher caches in ``data_dir``."""
    from backdrop.core.frames import yuv_to_bgr
    from backdrop.models.data import load_heldout

    held = load_heldout(data_dir)
    items = [
        HeldItem(c.name, "clip", c.bgr, [lab >= 0.5 for lab in c.labels], c.first_frame, _groups(c.name),
                 _teacher_desc(held.teacher_meta, "rvm"))
        for c in held.clips
    ]
    for name, yuv, lab in zip(held.image_names, held.images_yuv, held.image_labels):
        items.append(HeldItem(name, "image", [yuv_to_bgr(yuv)], [lab >= 0.5], 0, _groups(name),
                              _teacher_desc(held.teacher_meta, "median")))
    return items


def _teacher_desc(meta: dict, rule: str) -> str:
    return str(meta.get(rule, {}).get("teacher", rule))


def export_labels(items: list[HeldItem], path: str | os.PathLike, teacher_meta: dict | None = None) -> Path:
    """Write the items' labels as bit-packed binary masks (``np.packbits``), for tests and CI.

    Format (``np.savez_compressed``): ``format`` / ``format_version``; per item
    ``<name>__bits`` uint8 (packed, C order), ``<name>__shape`` int64 (N, H, W) and
    ``<name>__first`` the first frame index; ``meta_json``: items (name, kind, teacher,
    groups) and the teachers' metadata.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(LABELS_FORMAT),
        "format_version": np.array(LABELS_VERSION, dtype=np.int64),
    }
    meta = {"binarised": "teacher probability >= 0.5", "teachers": teacher_meta or {}, "items": []}
    for it in items:
        stack = np.stack(it.labels).astype(bool)
        arrays[f"{it.name}__bits"] = np.packbits(stack.reshape(-1))
        arrays[f"{it.name}__shape"] = np.array(stack.shape, dtype=np.int64)
        arrays[f"{it.name}__first"] = np.array(it.first_frame, dtype=np.int64)
        meta["items"].append({"name": it.name, "kind": it.kind, "teacher": it.teacher, "groups": it.groups})
    arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_write(path) as f:
        np.savez_compressed(f, **arrays)
    return path


def items_from_labels(path: str | os.PathLike = COMMITTED_LABELS) -> list[HeldItem]:
    """The held-out items with committed labels; frames come from the media cache and packages.

    Raises:
        InputError: not a held-out labels file, or a frame source is missing (says how to fetch).
    """
    from backdrop.models.data import _still_rgb, read_video_rgb, source, source_path, stills_dir

    path = Path(path)
    if not path.is_file():
        raise InputError(f"Held-out labels not found: {path}. Write them with `scripts/evaluate_default.py --export-labels`.")
    with np.load(path, allow_pickle=False) as z:
        if "format" not in z.files or str(z["format"]) != LABELS_FORMAT:
            raise InputError(f"{path} is not a held-out labels file (format {LABELS_FORMAT!r}).")
        meta = json.loads(str(z["meta_json"]))
        items = []
        for entry in meta["items"]:
            name = entry["name"]
            shape = tuple(int(x) for x in z[f"{name}__shape"])
            first = int(z[f"{name}__first"])
            labels = np.unpackbits(z[f"{name}__bits"], count=int(np.prod(shape))).reshape(shape).astype(bool)
            spec = source(name)
            if entry["kind"] == "clip":
                rgb = read_video_rgb(source_path(spec, stills_dir(Path("."))))[first : first + shape[0]]
            else:
                rgb = [_still_rgb(name)]
            bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in rgb]
            if len(bgr) != shape[0] or bgr[0].shape[:2] != shape[1:]:
                raise InputError(f"{name}: {len(bgr)} frames of {bgr[0].shape[:2]} but {path} holds labels {shape}.")
            items.append(HeldItem(name, entry["kind"], bgr, list(labels), first, entry["groups"], entry["teacher"]))
    return items


def predict_item(model, item: HeldItem, mask_feedback: bool = True) -> list[np.ndarray]:
    """Soft masks of an item through the reference predictor, state carried within a clip."""
    from backdrop.core.frames import bgr_to_yuv
    from backdrop.models.train import predict_sequence

    return predict_sequence(model, [bgr_to_yuv(f) for f in item.bgr], mask_feedback)


def score_item(item: HeldItem, masks: list[np.ndarray]) -> dict:
    ious = [iou(m, t) for m, t in zip(masks, item.labels)]
    bious = [boundary_iou(m, t) for m, t in zip(masks, item.labels)]
    out = {
        "kind": item.kind,
        "frames": len(masks),
        "first_frame": item.first_frame,
        "size_hw": list(item.labels[0].shape),
        "groups": item.groups,
        "teacher": item.teacher,
        "iou_mean": float(np.mean(ious)),
        "iou_min": float(np.min(ious)),
        "boundary_iou_mean": float(np.mean(bious)),
        "boundary_iou_min": float(np.min(bious)),
    }
    if item.kind == "clip" and len(masks) > 1:
        st = temporal_consistency(masks, item.bgr)
        tt = temporal_consistency([lab.astype(np.float32) for lab in item.labels], item.bgr)
        out["temporal"] = {
            "student_static_iou": float(np.mean(st.static_iou)),
            "student_warped_iou": float(np.mean(st.warped_iou)),
            "teacher_static_iou": float(np.mean(tt.static_iou)),
            "teacher_warped_iou": float(np.mean(tt.warped_iou)),
            "flow": f"OpenCV DIS, preset {st.flow_preset}",
        }
    return out


def write_eval_set(items: list[HeldItem], masks: dict[str, list[np.ndarray]], root: Path) -> Path:
    """The items as a ``backdrop eval`` dataset: predictions/, labels/, frames/ and meta.json."""
    for sub in ("predictions", "labels", "frames"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for it in items:
        for sub, frames in (
            ("predictions", [np.clip(np.rint(m * 255.0), 0, 255).astype(np.uint8) for m in masks[it.name]]),
            ("labels", [lab.astype(np.uint8) * 255 for lab in it.labels]),
            ("frames", it.bgr),
        ):
            d = root / sub / it.name
            d.mkdir(exist_ok=True)
            for i, f in enumerate(frames):
                cv2.imwrite(str(d / f"{i:05d}.png"), f)
    (root / "meta.json").write_text(json.dumps({"videos": {it.name: it.groups for it in items}}, indent=2))
    return root


def evaluate_checkpoint(checkpoint: str | os.PathLike, items: list[HeldItem], out_dir: str | os.PathLike,
                        progress: bool = False, extra=None) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """Score ``checkpoint`` on ``items``; writes ``out_dir``/heldout.json and the ``backdrop eval``
    report of the per-group analysis under ``out_dir``/groups/.

    ``extra``: ``result -> dict`` of more entries for heldout.json (the script's target checks).
    Returns the result dict and the predicted soft masks per item."""
    from backdrop.core.fairness import BootstrapConfig, FairnessConfig
    from backdrop.models import load_checkpoint
    from backdrop.orchestration.evaluate import EvalSpec, evaluate

    out_dir = Path(out_dir)
    ckpt = load_checkpoint(checkpoint)
    feedback = bool(ckpt.meta.get("mask_feedback", True))
    t0 = time.time()
    masks: dict[str, list[np.ndarray]] = {}
    per_item: dict[str, dict] = {}
    it_iter = items
    if progress:
        from tqdm import tqdm

        it_iter = tqdm(items, desc="held-out", unit="item")
    for it in it_iter:
        masks[it.name] = predict_item(ckpt.model, it, feedback)
        per_item[it.name] = score_item(it, masks[it.name])
    predict_seconds = time.time() - t0
    with tempfile.TemporaryDirectory(prefix=".eval-set.", dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
        root = write_eval_set(items, masks, Path(tmp))
        groups_dir = out_dir / "groups"
        if groups_dir.exists():
            shutil.rmtree(groups_dir)
        report = evaluate(EvalSpec(
            predictions=root / "predictions", labels=root / "labels", out=groups_dir, meta=root / "meta.json",
            frames=root / "frames", fairness=FairnessConfig(min_videos=3, bootstrap=BootstrapConfig(seed=0)),
        ))
        fairness = report.fairness.to_dict() if report.fairness else None
    clips = [v for v in per_item.values() if v["kind"] == "clip"]
    result = {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": ckpt.sha256,
        "model_config": ckpt.config.to_dict(),
        "mask_feedback": feedback,
        "items": per_item,
        "overall": {
            "items": len(per_item),
            "iou_mean": float(np.mean([v["iou_mean"] for v in per_item.values()])),
            "boundary_iou_mean": float(np.mean([v["boundary_iou_mean"] for v in per_item.values()])),
            "clips_warped_iou_mean": float(np.mean([v["temporal"]["student_warped_iou"] for v in clips])) if clips else None,
            "teacher_clips_warped_iou_mean": (
                float(np.mean([v["temporal"]["teacher_warped_iou"] for v in clips])) if clips else None
            ),
        },
        "groups": fairness,
        "groups_report": str(out_dir / "groups" / "report.json"),
        "predict_seconds": round(predict_seconds, 1),
    }
    if extra is not None:
        result.update(extra(result))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "heldout.json").write_text(json.dumps(result, indent=2) + "\n")
    return result, masks


def contact_sheet(items: list[HeldItem], masks: dict[str, list[np.ndarray]], path: str | os.PathLike,
                  frames_per_clip: int = 3) -> Path:
    """Held-out frames: the student's mask (background dimmed, green outline) and the teacher's outline (red)."""
    from backdrop.core.frames import bgr_to_yuv
    from backdrop.core.overlay import contact_sheet as sheet
    from backdrop.core.overlay import overlay

    tiles, names = [], []
    for it in items:
        idx = [0] if it.kind == "image" else sorted({round(k * (len(it.bgr) - 1) / max(1, frames_per_clip - 1))
                                                    for k in range(frames_per_clip)})
        for i in idx:
            tile = overlay(bgr_to_yuv(it.bgr[i]), masks[it.name][i])
            edge = cv2.morphologyEx(it.labels[i].astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
            edge = cv2.dilate(edge.astype(np.uint8), np.ones((max(1, tile.shape[1] // 240),) * 2, np.uint8)) > 0
            tile[edge] = (0, 0, 255)
            tiles.append(tile)
            names.append(f"{it.name}" + (f" #{it.first_frame + i}" if it.kind == "clip" else "")
                         + f"  IoU {iou(masks[it.name][i], it.labels[i]):.3f}")
    return sheet(tiles, names, path, columns=4, tile_width=320)


__all__ = [
    "COMMITTED_LABELS",
    "HeldItem",
    "contact_sheet",
    "evaluate_checkpoint",
    "export_labels",
    "items_from_labels",
    "load_items",
    "predict_item",
    "score_item",
]
