"""Held-out evaluation of a trained checkpoint against the best teacher labels (default: backdrop/data/default_model.pt).

Every held-out clip and photo (identities never trained on: the video call, long hair and
hands, the carphone tail, a group at a table, a street of pedestrians, Grace Hopper) through the
float reference predictor with the mask fed back; IoU, Boundary IoU, temporal metrics of
student and teacher on the clips, and per-group results with 95 % intervals through
``backdrop eval --meta`` (backdrop/orchestration/heldout.py says exactly how).

    .venv/bin/python scripts/evaluate_default.py [--checkpoint backdrop/data/default_model.pt]
        [--data-dir .cache/backdrop-train | --labels-npz tests/data/heldout_labels.npz]
        [--out out/eval/default] [--sheet docs/images/heldout_sheet.png]
    .venv/bin/python scripts/evaluate_default.py --export-labels tests/data/heldout_labels.npz

Without ``--labels-npz`` the labels come from the teacher caches (``backdrop labels``); with
it, from the committed bit-packed labels (no teacher needed; frames from ``backdrop data``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TARGETS = {"iou_mean": 0.92, "boundary_iou_mean": 0.75, "video_call_iou": 0.95}


def targets(r: dict) -> dict:
    o = r["overall"]
    vc = r["items"].get("video_call", {})
    clips = {k: v for k, v in r["items"].items() if v["kind"] == "clip" and k != "carphone_pristine"}
    return {
        "iou_ge_0.92": o["iou_mean"] >= TARGETS["iou_mean"],
        "boundary_iou_ge_0.75": o["boundary_iou_mean"] >= TARGETS["boundary_iou_mean"],
        "video_call_iou_ge_0.95": vc.get("iou_mean", 0.0) >= TARGETS["video_call_iou"],
        "warped_ge_teacher_on_every_clip": all(
            v["temporal"]["student_warped_iou"] >= v["temporal"]["teacher_warped_iou"] for v in clips.values()
        ),
    }


def main(argv: list[str] | None = None) -> int:
    from backdrop.orchestration.heldout import contact_sheet, evaluate_checkpoint, export_labels, items_from_labels, load_items

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=REPO / "backdrop" / "data" / "default_model.pt")
    ap.add_argument("--data-dir", type=Path, default=Path(".cache/backdrop-train"))
    ap.add_argument("--labels-npz", type=Path, default=None, help="committed held-out labels instead of the teacher caches")
    ap.add_argument("--out", type=Path, default=Path("out/eval/default"))
    ap.add_argument("--sheet", type=Path, default=None, help="also write a contact sheet of held-out frames (PNG)")
    ap.add_argument("--export-labels", type=Path, default=None,
                    help="only write the held-out labels from the teacher caches here (tests/data/heldout_labels.npz)")
    args = ap.parse_args(argv)
    if args.export_labels:
        from backdrop.models.data import load_heldout

        items = load_items(args.data_dir)
        print(export_labels(items, args.export_labels, load_heldout(args.data_dir).teacher_meta))
        return 0
    items = items_from_labels(args.labels_npz) if args.labels_npz else load_items(args.data_dir)
    result, masks = evaluate_checkpoint(args.checkpoint, items, args.out, progress=True,
                                        extra=lambda r: {"targets_met": targets(r)})
    for name, v in result["items"].items():
        t = v.get("temporal")
        line = f"{name:18} {v['kind']:5} IoU {v['iou_mean']:.4f} (min {v['iou_min']:.4f})  BIoU {v['boundary_iou_mean']:.4f}"
        if t:
            line += (f"  static {t['student_static_iou']:.4f} (teacher {t['teacher_static_iou']:.4f})"
                     f"  warped {t['student_warped_iou']:.4f} (teacher {t['teacher_warped_iou']:.4f})")
        print(line, file=sys.stderr)
    o = result["overall"]
    print(f"overall over {o['items']} items: IoU {o['iou_mean']:.4f}, Boundary IoU {o['boundary_iou_mean']:.4f}", file=sys.stderr)
    for c in (result["groups"] or {}).get("classes", []):
        i = c["iou"]
        print(f"  {c['category']}={c['class']}: n={c['n_videos']} IoU {i['mean']:.4f} [{i['low']}, {i['high']}]", file=sys.stderr)
    if args.sheet:
        print(f"wrote {contact_sheet(items, masks, args.sheet)}", file=sys.stderr)
    print(f"targets: {result['targets_met']}; wrote {args.out / 'heldout.json'}", file=sys.stderr)
    print(json.dumps({"out": str(args.out / "heldout.json"), **result["targets_met"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
