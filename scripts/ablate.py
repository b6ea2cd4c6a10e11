"""Ablations of the training recipe: boundary term and mask feedback, each from one command.

Each ablation is a config in configs/ (a SHORT budget, 800 steps, not the default's 2500, so
all three fit in well under an hour on a 2-core CPU; absolute numbers are therefore below the
bundled default's; compare the rows with each other):

- ``full``: boundary cross-entropy + mask feedback (configs/ablation_full.json);
- ``no_boundary``: ``boundary_weight = 0`` (configs/ablation_no_boundary.json);
- ``no_feedback``: channel 3 always zeros in training and evaluation
  (configs/ablation_no_feedback.json).

    .venv/bin/python scripts/ablate.py                    # all three, then the table
    .venv/bin/python scripts/ablate.py --only no_boundary # one
    .venv/bin/python scripts/ablate.py --eval-only        # re-score finished runs

Each run is trained with :func:`backdrop.models.train.train` (resumable: ``--resume``) and
scored with scripts/evaluate_default.py's held-out evaluation; results go to
out/ablation/results.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate_default import evaluate  # noqa: E402

from backdrop.models.data import load_heldout  # noqa: E402
from backdrop.models.train import load_train_config, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ABLATIONS = ("full", "no_boundary", "no_feedback")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=ABLATIONS, action="append", help="run only these (repeatable)")
    ap.add_argument("--resume", action="store_true", help="resume interrupted runs from their last.pt")
    ap.add_argument("--eval-only", action="store_true", help="score existing final.pt files without training")
    ap.add_argument("--out", type=Path, default=Path("out/ablation/results.json"))
    args = ap.parse_args(argv)
    names = args.only or list(ABLATIONS)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    held = None
    for name in names:
        cfg = load_train_config(REPO / "configs" / f"ablation_{name}.json")
        final = Path(cfg.out_dir) / "final.pt"
        if not args.eval_only:
            r = train(cfg, resume=args.resume and (Path(cfg.out_dir) / "last.pt").is_file())
            seconds = r.seconds
        else:
            seconds = None
        held = held or load_heldout(cfg.data_dir)
        ev = evaluate(final, held)
        c = ev["heldout_clip"]
        results[name] = {
            "config": f"configs/ablation_{name}.json",
            "steps": cfg.steps,
            "boundary_weight": cfg.boundary_weight,
            "mask_feedback": cfg.prev_mask.enabled,
            "train_seconds": seconds if seconds is not None else results.get(name, {}).get("train_seconds"),
            "iou": c["iou_mean"],
            "boundary_iou": c["boundary_iou_mean"],
            **c["temporal"],
            "image_iou": {k: v["iou"] for k, v in ev["heldout_images"].items()},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        "| run | boundary | feedback | IoU | Boundary IoU | static IoU | warped IoU "
        "| teacher static / warped | grace_hopper IoU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ABLATIONS:
        if name not in results:
            continue
        r = results[name]
        gh = r["image_iou"].get("grace_hopper", float("nan"))
        print(
            f"| {name} | {r['boundary_weight']} | {'yes' if r['mask_feedback'] else 'no'} | {r['iou']:.4f} | "
            f"{r['boundary_iou']:.4f} | {r['student_static_iou']:.4f} | {r['student_warped_iou']:.4f} | "
            f"{r['teacher_static_iou']:.4f} / {r['teacher_warped_iou']:.4f} | {gh:.4f} |"
        )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
