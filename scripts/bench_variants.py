"""fp32 vs int8 ExecuTorch/XNNPACK latency of model variants on this machine's CPU.

How it measures, per bucket:

- models: each variant built with ``torch.manual_seed(--seed)`` (random weights, PyTorch's
  default init; latency does not depend on the values), BatchNorm folded into the convs with
  ``fuse_model`` as the export pipeline does;
- artifacts: exported through the project's real format (``ExecuTorchFormat``, explicit state),
  fp32 and int8 (PT2E + ``XNNPACKQuantizer`` calibrated on the carphone calibration frames run
  through that model with its mask fed back, as ``make export`` does); every compute op in one
  XNNPACK delegate, as the format requires;
- latency: every artifact of the bucket (all variants, both precisions) loaded with
  ``executorch.runtime`` in this one process, warmed up, then timed interleaved (one call of
  each per round, the order reversed every other round: ``time_calls`` of the device layer, the
  loop ``HostDevice.time`` and scripts/bench_int8.py use), on the bucket's first golden frame
  with the state reset, so machine load and clock changes hit all alike. Reported: the median
  per artifact, int8 speed-up = median(fp32) / median(int8), and each variant's fp32 (and int8)
  median as a ratio to ``fbnetv3_a_s16``'s (when it is among ``--variants``);
- threads: one (``torch.set_num_threads(1)`` and ExecuTorch's XNNPACK threadpool reset to one
  thread), so the figures do not depend on how many cores other jobs leave free;
- what runs in fp32 inside the int8 delegate: the XNNPACK graph each int8 lowering serialises,
  read at ExecuTorch's ``serialize_xnnpack_binary`` (node type -> output datatype counts).
  ``XNNConvert`` nodes are the quantize/dequantize pairs left around fp32 nodes.

Usage: python scripts/bench_variants.py [--variants a,b] [--buckets a,b] [--runs 50] [--warmup 5]
       [--seed 0] [--out out/bench_variants]
Prints a markdown table (stdout) and writes <out>/bench_variants.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

import torch

DEFAULT_VARIANTS = ("fbnetv3_a_s16", "fbnetv3_a_s16_zp", "fbnetv3_a_s16_q", "lite", "lite_q")
DEFAULT_BUCKETS = ("landscape_16x9", "portrait_9x16")
BASELINE = "fbnetv3_a_s16"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class XnnpackGraphTap:
    """Records the node types (and their output datatypes) of every XNNPACK graph that
    ExecuTorch's XNNPACK backend serialises while active; ``None`` counts when this
    executorch lays its preprocess out differently."""

    def __init__(self) -> None:
        self.graphs: list = []
        try:
            import executorch.backends.xnnpack.xnnpack_preprocess as pre

            self._module = pre
            self._orig = pre.serialize_xnnpack_binary
        except (ImportError, AttributeError):
            self._module = None

    def __enter__(self) -> XnnpackGraphTap:
        if self._module is not None:
            orig = self._orig

            def tap(graph, constant_data):
                self.graphs.append(graph)
                return orig(graph, constant_data)

            self._module.serialize_xnnpack_binary = tap
        return self

    def __exit__(self, *exc) -> None:
        if self._module is not None:
            self._module.serialize_xnnpack_binary = self._orig

    def node_counts(self) -> dict[str, int] | None:
        """``"XNNConv2d -> qint8": count`` over the recorded graphs."""
        if self._module is None or not self.graphs:
            return None
        counts: Counter = Counter()
        for g in self.graphs:
            dtypes = {}
            for v in g.xvalues:
                tv = getattr(v.xvalue_union, "tensor_value", v.xvalue_union)
                dtypes[tv.id_out] = tv.datatype.name.replace("xnn_datatype_", "")
            for n in g.xnodes:
                u = n.xnode_union
                counts[f"{type(u).__name__} -> {dtypes.get(getattr(u, 'output_id', None), '?')}"] += 1
        return dict(counts.most_common())


def _fp32_nodes(counts: dict[str, int] | None) -> dict[str, int] | None:
    """The compute nodes with an fp32 output (conversions left out), by type."""
    if counts is None:
        return None
    out = {}
    for key, n in counts.items():
        name, dtype = key.split(" -> ")
        if dtype == "fp32" and name not in ("XNNConvert", "XNNStaticTranspose"):
            out[name.removeprefix("XNN")] = n
    return out


def _converts(counts: dict[str, int] | None) -> int | None:
    return None if counts is None else sum(n for k, n in counts.items() if k.startswith("XNNConvert "))


def main(argv: list[str] | None = None) -> int:
    from executorch.extension.pybindings import portable_lib

    from backdrop.core.buckets import DEFAULT_BUCKETS as BUCKETS
    from backdrop.device_tests.base import TimingProtocol, first_frame_feed, time_calls
    from backdrop.export.formats.base import ExportRequest
    from backdrop.export.formats.executorch import ExecuTorchFormat
    from backdrop.export.goldens import make_golden
    from backdrop.models import VARIANTS, build_model
    from backdrop.quantization import fuse_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated model variants")
    ap.add_argument("--buckets", default=",".join(DEFAULT_BUCKETS), help="comma-separated bucket names")
    ap.add_argument("--runs", type=int, default=50, help="interleaved timed rounds")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="torch seed of every variant's random weights")
    ap.add_argument("--out", type=Path, default=Path("out/bench_variants"))
    args = ap.parse_args(argv)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        VARIANTS.get(v)  # raises naming the valid variants
    buckets = [BUCKETS.get(n.strip()) for n in args.buckets.split(",") if n.strip()]
    default_threads = portable_lib._threadpool_get_thread_count()
    torch.set_num_threads(1)
    portable_lib._unsafe_reset_threadpool(1)

    models = {}
    for v in variants:
        torch.manual_seed(args.seed)
        model = build_model(v)
        fused, report = fuse_model(model)
        models[v] = (model, fused, sum(p.numel() for p in model.parameters()), report.fused)

    fmt = ExecuTorchFormat()
    protocol = TimingProtocol(warmup=args.warmup, runs=args.runs)
    rows = []
    t_start = time.perf_counter()
    for b in buckets:
        arts, info = {}, {}
        for v in variants:
            _, fused, params, n_fused = models[v]
            info[v] = {"parameters": params, "bn_fused": n_fused, "export_s": {}}
            for precision in ("fp32", "int8"):
                t0 = time.perf_counter()
                with XnnpackGraphTap() as tap:
                    req = ExportRequest(fused, b, "explicit", precision, args.out / b.name / v, "executorch")
                    art = fmt.export(req)[0]
                info[v]["export_s"][precision] = round(time.perf_counter() - t0, 1)
                info[v][f"xnnpack_nodes_{precision}"] = tap.node_counts()
                info[v][f"bytes_{precision}"] = Path(art.path).stat().st_size
                if precision == "int8":
                    info[v]["pt2e_float_ops"] = art.details["quantization"]["float_ops"]
                arts[(v, precision)] = art
                _log(f"{b.name} {v}: exported {precision} in {info[v]['export_s'][precision]:.0f} s")
        golden = make_golden(models[variants[0]][0], b)
        calls = {f"{v}/{p}": fmt.load(a) for (v, p), a in arts.items()}
        feeds = {f"{v}/{p}": first_frame_feed(a, golden) for (v, p), a in arts.items()}
        samples = time_calls(calls, feeds, protocol)
        med = {k: statistics.median(s) for k, s in samples.items()}
        base = {p: med.get(f"{BASELINE}/{p}") for p in ("fp32", "int8")}
        for v in variants:
            fp, i8 = med[f"{v}/fp32"], med[f"{v}/int8"]
            nodes = info[v]["xnnpack_nodes_int8"]
            rows.append(
                {
                    "bucket": b.name,
                    "size_hw": [b.height, b.width],
                    "variant": v,
                    "config": VARIANTS.get(v).to_dict(),
                    "latency_ms_median": {"fp32": fp, "int8": i8},
                    "latency_ms_samples": {"fp32": samples[f"{v}/fp32"], "int8": samples[f"{v}/int8"]},
                    "speedup_int8": fp / i8,
                    "fp32_vs_baseline_fp32": fp / base["fp32"] if base["fp32"] else None,
                    "int8_vs_baseline_int8": i8 / base["int8"] if base["int8"] else None,
                    "int8_fp32_nodes": _fp32_nodes(nodes),
                    "int8_converts": _converts(nodes),
                    **info[v],
                }
            )
            _log(f"{b.name} {v}: fp32 {fp:.2f} ms, int8 {i8:.2f} ms, {fp / i8:.2f}x")

    result = {
        "schema": "backdrop-bench-variants/1",
        "baseline": BASELINE,
        "state_form": "explicit",
        "runs": args.runs,
        "warmup": args.warmup,
        "seed": args.seed,
        "threads": {"torch": torch.get_num_threads(), "executorch_threadpool": 1, "executorch_default": default_threads},
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "load_avg_end": _loadavg()},
        "versions": {p: metadata.version(p) for p in ("torch", "executorch", "torchao")},
        "wall_s": round(time.perf_counter() - t_start, 1),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_variants.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown_table(rows))
    print(f"\nwrote {args.out / 'bench_variants.json'} ({args.runs} interleaved runs, 1 thread)")
    return 0


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def markdown_table(rows: list[dict]) -> str:
    def ratio(x):
        return "-" if x is None else f"{x:.2f}x"

    def fp32_ops(nodes):
        if nodes is None:
            return "?"
        return ", ".join(f"{k} x{n}" for k, n in nodes.items()) or "none"

    out = [
        f"| bucket | variant | fp32 ms | int8 ms | int8 speed-up | fp32 vs {BASELINE} fp32 | int8 vs {BASELINE} int8 "
        "| fp32 nodes in the int8 delegate (converts) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lat = r["latency_ms_median"]
        out.append(
            f"| {r['bucket']} | `{r['variant']}` | {lat['fp32']:.2f} | {lat['int8']:.2f} | {r['speedup_int8']:.2f}x "
            f"| {ratio(r['fp32_vs_baseline_fp32'])} | {ratio(r['int8_vs_baseline_int8'])} "
            f"| {fp32_ops(r['int8_fp32_nodes'])} ({r['int8_converts']}) |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
