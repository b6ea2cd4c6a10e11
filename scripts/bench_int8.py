"""fp32 vs int8 ExecuTorch/XNNPACK on this machine's CPU, for the default model on every bucket.

Per bucket: both artifacts are exported through the real format (``ExecuTorchFormat``, explicit
state, BatchNorm fused as the pipeline does), then

- latency: both programs loaded with ``executorch.runtime``, warmed up, then timed interleaved
  (fp32, int8, fp32, int8, ...) on the bucket's first golden frame
  (``HostDevice.time`` with a ``TimingProtocol``, as the export's quantization report does), so that machine
  load and clock changes hit both alike; speed-up = median(fp32) / median(int8), one run;
- size: int8 file bytes / fp32 file bytes;
- accuracy: the int8 artifact run over the bucket's golden sequence (carphone frames 0..39,
  state fed back by the runtime, reset at 0 and 20) against the float reference masks of the
  golden: IoU and Boundary IoU per frame (min and mean), and the temporal static IoU
  (consecutive-mask IoU, mean) of int8 next to float's. Calibration used frames 40..71.

Usage: python scripts/bench_int8.py [--runs 30] [--warmup 5] [--buckets a,b] [--out out/bench_int8]
Prints a table (stdout) and writes <out>/bench_int8.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    from backdrop.core.buckets import DEFAULT_BUCKETS
    from backdrop.core.metrics import boundary_iou, iou, temporal_consistency
    from backdrop.device_tests.base import TimingProtocol
    from backdrop.device_tests.host import HostDevice
    from backdrop.export.formats.base import ExportRequest
    from backdrop.export.formats.executorch import ExecuTorchFormat
    from backdrop.export.goldens import make_golden
    from backdrop.models import load_checkpoint
    from backdrop.models.checkpoint import default_checkpoint_path
    from backdrop.quantization import fuse_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--buckets", default="", help="comma-separated bucket names (default: all)")
    ap.add_argument("--out", type=Path, default=Path("out/bench_int8"))
    args = ap.parse_args(argv)

    ckpt = load_checkpoint(default_checkpoint_path())
    model, _ = fuse_model(ckpt.model)
    buckets = [DEFAULT_BUCKETS.get(n) for n in args.buckets.split(",")] if args.buckets else list(DEFAULT_BUCKETS)
    fmt = ExecuTorchFormat()
    rows = []
    for b in buckets:
        out_dir = args.out / b.name
        arts = {}
        for precision in ("fp32", "int8"):
            t0 = time.perf_counter()
            arts[precision] = fmt.export(ExportRequest(model, b, "explicit", precision, out_dir, "executorch"))[0]
            _log(f"{b.name}: exported {precision} in {time.perf_counter() - t0:.0f} s")
        golden = make_golden(ckpt.model, b)
        protocol = TimingProtocol(warmup=args.warmup, runs=args.runs)
        by_key = HostDevice().time([arts["fp32"], arts["int8"]], golden, protocol).samples_ms
        med = {k: statistics.median(by_key[a.key]) for k, a in arts.items()}
        size = {k: Path(a.path).stat().st_size for k, a in arts.items()}
        masks = HostDevice().run_sequence(arts["int8"], golden)[:, 0]
        ref = golden.expected_masks[:, 0]
        ious = [iou(masks[i], ref[i]) for i in range(len(ref))]
        bious = [boundary_iou(masks[i], ref[i]) for i in range(len(ref))]
        t_int8 = temporal_consistency(list(masks)).static_iou
        t_fp = temporal_consistency(list(ref)).static_iou
        row = {
            "bucket": b.name,
            "size_hw": [b.height, b.width],
            "latency_ms_median": med,
            "speedup_int8": med["fp32"] / med["int8"],
            "bytes": size,
            "size_ratio_int8": size["int8"] / size["fp32"],
            "iou_min": min(ious),
            "iou_mean": float(np.mean(ious)),
            "boundary_iou_min": min(bious),
            "boundary_iou_mean": float(np.mean(bious)),
            "temporal_static_iou_mean": {"float": float(np.mean(t_fp)), "int8": float(np.mean(t_int8))},
            "max_abs_error": float(np.abs(masks - ref).max()),
            "calibration": arts["int8"].details["calibration"],
            "delegation_int8": {k: arts["int8"].delegation.to_dict()[k] for k in ("delegated_subgraphs", "compute_ops_outside")},
        }
        rows.append(row)
        _log(json.dumps({k: row[k] for k in ("bucket", "speedup_int8", "size_ratio_int8", "iou_min", "boundary_iou_min")}))

    result = {
        "schema": "backdrop-bench-int8/1",
        "model": {"checkpoint": str(default_checkpoint_path().name), "sha256": ckpt.sha256},
        "state_form": "explicit",
        "runs": args.runs,
        "warmup": args.warmup,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch_threads": torch.get_num_threads()},
        "versions": {p: metadata.version(p) for p in ("torch", "executorch", "torchao")},
        "golden": "carphone frames 0..39, resets at 0 and 20; reference = float model",
        "buckets": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_int8.json").write_text(json.dumps(result, indent=2) + "\n")
    head = (
        f"{'bucket':16} {'fp32 ms':>8} {'int8 ms':>8} {'speedup':>7} {'size':>6} "
        f"{'IoU min/mean':>13} {'BIoU min/mean':>13} {'tIoU f/i8':>11}"
    )
    print(head)
    for r in rows:
        lat = r["latency_ms_median"]
        t = r["temporal_static_iou_mean"]
        print(
            f"{r['bucket']:16} {lat['fp32']:8.2f} {lat['int8']:8.2f} {r['speedup_int8']:6.2f}x {r['size_ratio_int8']:5.2f}x "
            f"{r['iou_min']:.3f}/{r['iou_mean']:.3f}   {r['boundary_iou_min']:.3f}/{r['boundary_iou_mean']:.3f}   "
            f"{t['float']:.3f}/{t['int8']:.3f}"
        )
    print(f"wrote {args.out / 'bench_int8.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
