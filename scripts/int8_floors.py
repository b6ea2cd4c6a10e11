"""Measure int8 against float per bucket on the golden and the held-out clips: what the int8
parity floors and the accuracy budget are set from (docs/quantization.md, "Floors").

For every bucket: the golden and the held-out check clips (``HELDOUT_CHECK_CLIPS``) framed as
the export frames them, the ExecuTorch int8 probe (the PT2E graph the export lowers, run in
torch) with no unit in float, and per part the mean and worst-frame IoU, Boundary IoU and the
largest probability error against the float reference. With ``--search``, the fallback search
the export would run under the current budget and floors, and how many units it keeps in float.

    .venv/bin/python scripts/int8_floors.py [--checkpoint CKPT] [--buckets a,b] [--search] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from backdrop.core.buckets import BucketSet, load_buckets
from backdrop.device_tests.parity import Thresholds, thresholds_for
from backdrop.export.formats import FORMATS, ExportRequest
from backdrop.export.goldens import make_golden
from backdrop.models import load_checkpoint
from backdrop.models.checkpoint import default_checkpoint_path
from backdrop.models.data import source, source_file
from backdrop.orchestration.int8_stage import parity_floor_misses
from backdrop.orchestration.pipeline import HELDOUT_CHECK_CLIPS
from backdrop.quantization.budget import AccuracyBudget, combine_sequences, measure_quality, run_explicit
from backdrop.quantization.fallback import FallbackError, FallbackSearch, search_fallback


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=default_checkpoint_path())
    ap.add_argument("--buckets", default="", help="comma-separated bucket names (default: every default bucket)")
    ap.add_argument("--frames", type=int, default=40, help="frames per sequence (the export's golden length)")
    ap.add_argument("--search", action="store_true", help="also run the fallback search the export would run")
    ap.add_argument("--json", type=Path, help="write the rows here")
    ap.add_argument("--floors", default="", help="MIN_IOU,MIN_BOUNDARY_IOU,MAX_ABS_ERROR per frame for --search "
                    "(default: the int8 parity thresholds)")
    args = ap.parse_args(argv)

    model = load_checkpoint(args.checkpoint).model.eval()
    buckets: BucketSet = load_buckets(None)
    names = [n for n in args.buckets.split(",") if n] or [b.name for b in buckets]
    budget, floors = AccuracyBudget(), thresholds_for("int8")
    if args.floors:
        floors = Thresholds(*(float(v) for v in args.floors.split(",")))
    clips = {name: source_file(source(name)) for name in HELDOUT_CHECK_CLIPS}
    rows = []
    for name in names:
        bucket = buckets.get(name)
        t0 = time.perf_counter()
        parts = {"golden": make_golden(model, bucket, num_frames=args.frames, reset_at=args.frames // 2)}
        for clip, path in clips.items():
            parts[clip] = make_golden(model, bucket, num_frames=args.frames, reset_at=args.frames // 2, source=path)
        seq = combine_sequences(parts)
        request = ExportRequest(model, bucket, "explicit", "int8", Path("."), "executorch")
        probe = FORMATS.get("executorch").int8_probe(request)
        masks = run_explicit(probe.build(()), seq)
        row = {"bucket": name, "checkpoint": args.checkpoint.name, "parts": {}}
        for part in parts:
            q = measure_quality(*seq.part(masks, part))
            row["parts"][part] = {k: round(getattr(q, k), 4) for k in
                                  ("iou_mean", "iou_min", "boundary_iou_mean", "boundary_iou_min", "max_abs_error")}
            print(f"{name:15s} {part:16s} IoU {q.iou_mean:.4f} (min {q.iou_min:.4f})  BIoU {q.boundary_iou_mean:.4f} "
                  f"(min {q.boundary_iou_min:.4f})  max|err| {q.max_abs_error:.3f}", flush=True)
        whole = measure_quality(masks, seq)
        row["misses"] = whole.misses(budget) + parity_floor_misses(whole, floors)
        print(f"{name:15s} {'combined':16s} misses: {'; '.join(row['misses']) or 'none'}", flush=True)
        if args.search and row["misses"]:
            search = FallbackSearch(budget, lambda q: parity_floor_misses(q, floors))
            try:
                search_fallback(probe, seq, search, log=lambda m: print(m, flush=True) if "fallback with" in m else None)
                row["float_units"] = list(search.float_units)
            except FallbackError as e:
                row["float_units"] = None
                row["search_error"] = str(e)
            print(f"{name:15s} fallback: {row['float_units']}", flush=True)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps({"budget": budget.to_dict(), "floors": floors.to_dict(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
