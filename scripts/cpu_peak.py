"""Achieved multiply-accumulates per second of an export's ExecuTorch artifacts against this
CPU's measured peak, in one run (docs/benchmarking.md, "Fraction of peak").

The peak is measured, not taken from a datasheet: a square GEMM big enough to run at the
kernel's steady state (``--gemm`` x ``--gemm`` x ``--gemm``), on the same number of threads as
the artifacts: ``torch.mm`` in float32 and ONNX Runtime's ``MatMulInteger`` in int8 (uint8 x int8, int32
accumulation), best of several calls. The artifacts are timed model-only on the bucket's first
golden frame (``HostDevice.time``: interleaved, the median kept), and the model's MACs per frame
at the bucket's size are counted with torch's FLOP counter (``backdrop.models.profile``). Peak
and artifacts take turns round by round, so the ratio holds on a noisy shared machine.

    .venv/bin/python scripts/cpu_peak.py --dist dist/android-arm64 [--threads 1] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch


def gemm_macs_per_s(n: int, dtype: str, threads: int, calls: int = 5) -> float:
    """Best MAC/s of ``calls`` n x n x n GEMMs (after one warm-up call): float32 through
    ``torch.mm``; int8 through ONNX Runtime's ``MatMulInteger`` (uint8 x int8 -> int32, MLAS's
    kernels; ``torch._int_mm`` is a slow reference on CPU)."""
    if dtype == "int8":
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "gemm",
            [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
             helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])],
            [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])],
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString(),
                                    opts, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feed = {"a": rng.integers(0, 255, (n, n), dtype=np.uint8), "b": rng.integers(-128, 127, (n, n), dtype=np.int8)}

        def mm():
            return sess.run(None, feed)
    else:
        a, b = torch.randn(n, n), torch.randn(n, n)

        def mm():
            return torch.mm(a, b)
    mm()
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        mm()
        best = min(best, time.perf_counter() - t0)
    return n**3 / best


def main(argv: list[str] | None = None) -> int:
    from backdrop.bench.run import select_artifacts
    from backdrop.device_tests.base import TimingProtocol
    from backdrop.device_tests.host import HostDevice
    from backdrop.export.goldens import load_golden
    from backdrop.models import load_checkpoint
    from backdrop.models.checkpoint import default_checkpoint_path
    from backdrop.models.profile import count_macs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dist", type=Path, default=Path("dist/android-arm64"))
    ap.add_argument("--checkpoint", type=Path, default=None, help="the export's checkpoint (default: the bundled default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gemm", type=int, default=1024, help="GEMM size for the peak")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    manifest, chosen = select_artifacts(args.dist, "*/executorch-*-explicit")
    model = load_checkpoint(args.checkpoint or default_checkpoint_path()).model.eval()
    device = HostDevice(threads=args.threads)
    protocol = TimingProtocol(warmup=5, runs=30)
    by_bucket: dict[str, list] = {}
    for art, _ in chosen:
        by_bucket.setdefault(art.bucket.name, []).append(art)
    peaks: dict[str, list[float]] = {"fp32": [], "int8": []}
    samples: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for name in ("fp32", "int8"):
            peaks[name].append(gemm_macs_per_s(args.gemm, name, args.threads))
        for bucket, arts in by_bucket.items():
            golden = load_golden(args.dist / manifest["goldens"][bucket])
            for key, ms in device.time(arts, golden, protocol).samples_ms.items():
                samples.setdefault(key, []).extend(ms)
        print(f"round {r + 1}/{args.rounds}: peak fp32 {peaks['fp32'][-1] / 1e9:.1f} GMAC/s, "
              f"int8 {peaks['int8'][-1] / 1e9:.1f} GMAC/s", file=sys.stderr, flush=True)
    peak = {k: max(v) for k, v in peaks.items()}
    rows = []
    for arts in by_bucket.values():
        macs = count_macs(model, arts[0].bucket.height, arts[0].bucket.width)
        for a in arts:
            ms = statistics.median(samples[a.key])
            achieved = macs / (ms / 1e3)
            rows.append({"artifact": a.key, "macs": macs, "model_ms_p50": round(ms, 3), "gmac_per_s": round(achieved / 1e9, 2),
                         "fraction_of_peak": round(achieved / peak[a.precision], 3)})
    print(f"peak (GEMM {args.gemm}^3, {args.threads} thread(s), best of {args.rounds} rounds): "
          f"fp32 {peak['fp32'] / 1e9:.1f} GMAC/s (torch.mm), int8 {peak['int8'] / 1e9:.1f} GMAC/s (ONNX Runtime MatMulInteger)")
    print("| artifact | MMACs | model p50 ms | GMAC/s | of peak |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['artifact']} | {row['macs'] / 1e6:.0f} | {row['model_ms_p50']:.2f} | {row['gmac_per_s']:.1f} | "
              f"{100 * row['fraction_of_peak']:.0f} % |")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "gemm": args.gemm, "peak_gmac_per_s": {
            k: round(v / 1e9, 2) for k, v in peak.items()}, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
