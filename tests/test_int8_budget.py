"""The int8 accuracy budget, the sensitivity ranking and float fallback (quantization/budget.py,
quantization/fallback.py, backdrop/orchestration/int8_stage.py), and PT2E units kept in float.

The search logic is tested on a synthetic probe whose error per unit is known, so ranking and
the number of units kept in float can be asserted exactly; the real formats' probes are
exercised in test_onnx_int8.py and, through the whole export with a budget forced to miss, in
the slow test at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from backdrop.core.errors import ConfigError
from backdrop.quantization.budget import AccuracyBudget, measure_quality, run_explicit
from backdrop.quantization.fallback import FallbackError, FallbackSearch, rank_units, search_fallback

H, W, N = 48, 64, 12


def _disk(cx: float, r: float = 14.0) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (((yy - H / 2) ** 2 + (xx - cx) ** 2) <= r * r).astype(np.float32)


def _golden():
    """A disk moving right one pixel per frame; frames carry their index in pixel (0, 0, 0)."""
    frames = np.zeros((N, 3, H, W), np.float32)
    frames[:, 0, 0, 0] = np.arange(N)
    expected = np.stack([_disk(20.0 + i) for i in range(N)])[:, None] * 0.9 + 0.05
    resets = np.zeros(N, bool)
    resets[0] = resets[N // 2] = True
    return SimpleNamespace(frames=frames, resets=resets, expected_masks=expected.astype(np.float32))


class FakeProbe:
    """Quantizing unit ``u`` grows the disk's radius by ``ERRORS[u]`` pixels (errors add up)."""

    ERRORS = {"a": 0.2, "b": 3.0, "c": 0.6, "d": 1.5, "e": 0.1, "f": 0.05}
    runtime = "fake"

    def __init__(self) -> None:
        self.units = tuple(self.ERRORS)
        self.builds = 0

    def build(self, float_units):
        self.builds += 1
        grow = sum(e for u, e in self.ERRORS.items() if u not in float_units)

        def step(frame, prev_mask):
            i = int(frame[0, 0, 0, 0])
            return (_disk(20.0 + i, 14.0 + grow) * 0.9 + 0.05)[None, None]

        return step


def test_budget_validates_and_reports_misses():
    with pytest.raises(ConfigError, match="min_iou must be in"):
        AccuracyBudget(min_iou=1.5)
    with pytest.raises(ConfigError, match="max_temporal_drop"):
        AccuracyBudget(max_temporal_drop=-0.1)
    g = _golden()
    same = measure_quality(g.expected_masks.copy(), g)
    assert same.iou_mean == 1.0 and same.boundary_iou_mean == 1.0 and same.max_abs_error == 0.0
    assert same.misses(AccuracyBudget()) == []
    flicker = g.expected_masks.copy()
    flicker[1::2] = 0.05  # every other frame empty: IoU and temporal consistency collapse
    q = measure_quality(flicker, g)
    misses = " | ".join(q.misses(AccuracyBudget()))
    assert "mean IoU" in misses and "mean Boundary IoU" in misses and "temporal IoU" in misses
    with pytest.raises(ConfigError, match="cannot be compared"):
        measure_quality(flicker[:, :, :10], g)


def test_run_explicit_feeds_the_mask_back_and_resets():
    g = _golden()
    seen = []

    def step(frame, prev_mask):
        seen.append(float(prev_mask.sum()))
        return np.ones((1, 1, H, W), np.float32)

    masks = run_explicit(step, g)
    assert masks.shape == g.expected_masks.shape
    assert seen[0] == 0.0 and seen[N // 2] == 0.0  # resets
    assert seen[1] == H * W and seen[N - 1] == H * W  # fed back otherwise


def test_check_sequence_holds_the_budget_over_golden_and_clips_together():
    from backdrop.quantization.budget import combine_sequences
    from backdrop.quantization.fallback import Int8Decision

    golden, clip = _golden(), _golden()
    clip.expected_masks = clip.expected_masks[:, :, ::-1].copy()  # another scene
    seq = combine_sequences({"golden": golden, "video_call": clip})
    assert seq.names == ("golden", "video_call") and seq.spans == ((0, N), (N, 2 * N))
    assert seq.resets.tolist() == golden.resets.tolist() * 2
    masks = run_explicit(FakeProbe().build(set(FakeProbe.ERRORS)), seq)  # all in float: the reference
    part_masks, part = seq.part(masks, "video_call")
    np.testing.assert_array_equal(part.expected_masks, clip.expected_masks)
    assert measure_quality(masks, seq).frames == 2 * N and measure_quality(part_masks, part).frames == N
    bad = SimpleNamespace(frames=golden.frames, resets=np.zeros(N, bool), expected_masks=golden.expected_masks)
    with pytest.raises(ConfigError, match="must start with a reset"):
        combine_sequences({"golden": golden, "clip": bad})
    q = measure_quality(masks, seq)
    d = Int8Decision(AccuracyBudget(), q, ("a",), "kept 1", None, q, {"video_call": measure_quality(part_masks, part)})
    back = Int8Decision.from_dict(json.loads(json.dumps(d.to_dict())))
    assert back.heldout["video_call"] == d.heldout["video_call"] and back.checked == q


def test_ranking_puts_the_most_damaging_unit_first():
    g = _golden()
    ranking = rank_units(FakeProbe(), g)
    assert [s.unit for s in ranking][:3] == ["b", "d", "c"]
    assert ranking[0].mean_abs_error > ranking[-1].mean_abs_error


def test_fallback_keeps_the_fewest_sensitive_units_in_float():
    g = _golden()
    probe = FakeProbe()
    plain = measure_quality(run_explicit(probe.build(()), g), g)
    # Mean IoU measured on this golden: plain 0.51, b in float 0.72, b + d 0.88, b + d + c 0.93.
    budget = AccuracyBudget(min_iou=0.87, min_boundary_iou=0.4, max_float_fraction=0.5)
    assert plain.misses(budget)
    search = search_fallback(probe, g, FallbackSearch(budget))
    assert search.float_units == ("b", "d")
    assert [len(t.float_units) for t in search.trials] == [1, 2]
    assert search.trials[0].misses and not search.trials[-1].misses
    doc = json.loads(json.dumps(search.to_dict()))
    assert doc["float_units"] == ["b", "d"] and doc["ranking"][0]["unit"] == "b"


def test_fallback_resumes_past_a_count_and_honours_extra_checks():
    g = _golden()
    budget = AccuracyBudget(min_iou=0.87, min_boundary_iou=0.4, max_float_fraction=0.7)
    search = FallbackSearch(budget, extra_checks=lambda q: [] if q.iou_mean > 0.92 else ["stricter rule"])
    search_fallback(FakeProbe(), g, search)
    assert search.float_units == ("b", "d", "c")  # the extra rule needed one more unit
    resumed = search_fallback(FakeProbe(), g, search, start=len(search.float_units) + 1)
    assert len(resumed.float_units) == 4  # past the count whose (real) artifact was refused


def test_fallback_gives_up_past_the_allowed_fraction():
    g = _golden()
    budget = AccuracyBudget(min_iou=0.999, min_boundary_iou=0.999, max_float_fraction=0.34)
    with pytest.raises(FallbackError, match=r"with up to 2 of 6 units in float.*Relax the budget"):
        search_fallback(FakeProbe(), g, FallbackSearch(budget))


def test_pt2e_units_kept_in_float_have_no_quantized_ops(carphone_path):
    import torch

    from backdrop.core.buckets import Bucket
    from backdrop.models import build_model
    from backdrop.models.wrappers import example_inputs, wrap
    from backdrop.quantization import fuse_model
    from backdrop.quantization.calibration import calibration_inputs
    from backdrop.quantization.units import quant_units
    from backdrop.quantization.xnnpack_int8 import quantize_for_xnnpack

    torch.manual_seed(0)
    model, _ = fuse_model(build_model("lite").eval())
    bucket = Bucket("t", 32, 32)
    cal = calibration_inputs(model, bucket, num_frames=4, source=carphone_path)
    units = quant_units(model)
    assert units[0] == "encoder.stem" and units[-1] == "head" and len(units) == len(set(units))

    def q_ops(**kw):
        gm = quantize_for_xnnpack(wrap(model, "explicit", 32, 32), example_inputs("explicit", 32, 32), cal, **kw)
        names = [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
        return sum("quantize_per" in n and "dequantize" not in n for n in names), gm.meta["backdrop_float_ops"]

    everything, float_ops = q_ops()
    assert everything > 20
    assert float_ops["hardswish"]["why"].startswith("the XNNPACK partitioner lowers hardswish in FP32 only")
    nothing, _ = q_ops(float_units=[*units, "rest"])
    assert nothing == 0  # the padding's cat and slices too, which the quantizer's own filter misses
    one, _ = q_ops(float_units=[u for u in units if u != "head"] + ["rest"])
    assert 0 < one < everything
    with pytest.raises(ConfigError, match="Unknown quantization unit"):
        q_ops(float_units=["encoder.nope"])


def test_quantization_report_names_slow_ops_and_big_files(tmp_path):
    from backdrop.orchestration.int8_stage import write_quantization_report

    g = _golden()
    q = measure_quality(g.expected_masks.copy(), g).to_dict()
    search = search_fallback(FakeProbe(), g, FallbackSearch(AccuracyBudget(min_iou=0.87, min_boundary_iou=0.4)))
    info = {"quality": q, "float_units": ["b", "d"],
            "fallback": "kept the 2 most sensitive unit(s) in float; plain int8 missed: x",
            "search": search.to_dict(), "budget": AccuracyBudget().to_dict()}
    rows = [
        {"key": "t/executorch-int8-native", "precision": "int8", "bucket": "t", "format": "executorch", "state_form": "native",
         "size_ratio": 0.314, "float_twin_precision": "fp32", "speedup": 1.3, "int8": info,
         "quantization": {"float_ops": {"hardswish": {"count": 50, "why": "FP32 only"}}}},
        {"key": "t/coreml-palette6-native", "precision": "palette6", "bucket": "t", "format": "coreml", "state_form": "native",
         "size_ratio": 0.47, "float_twin_precision": "fp16", "speedup": None, "int8": None, "quantization": None},
    ]
    write_quantization_report(rows, AccuracyBudget(), "host", tmp_path)
    md = (tmp_path / "quantization.md").read_text()
    assert "Below the 1.8x" in md and "`hardswish` x50: FP32 only" in md
    assert "t/executorch-int8-native (0.314x)" in md and "coreml-palette6-native (0.470x)" not in md  # fp16 twin: no 0.3x target
    assert "not run on this host" in md and "Sensitivity: t/executorch-int8-native" in md and "1. b:" in md
    assert json.loads((tmp_path / "quantization.json").read_text())["schema"] == "backdrop-quantization/1"
    assert (tmp_path / "quantization.png").stat().st_size > 1000


def _exported_with_fallback() -> Path | None:
    """CI's main job (BACKDROP_EXPORTED_DIST, .ci/run) when its export kept units of an int8
    artifact in float: the fallback then engaged on the real model, budget and held-out clips, and
    the slow test below checks that export instead of forcing a miss and exporting again."""
    root = os.environ.get("BACKDROP_EXPORTED_DIST")
    manifest = Path(root or ".") / "android-arm64" / "manifest.json"
    if not root or not manifest.exists():
        return None
    doc = json.loads(manifest.read_text())
    if any((a.get("quantization") or {}).get("float_units") for a in doc["artifacts"]):
        return manifest.parent
    return None


def _assert_fallback_engaged(out_dir: Path) -> list[dict]:
    """The manifest and reports of an export whose int8 kept units in float say so consistently:
    each such artifact verified, within the budget it names, its search's first trial plain int8
    with misses and its last the real artifact without; returns those artifacts."""
    from backdrop.orchestration.manifest import load_manifest

    manifest = load_manifest(out_dir / "manifest.json")
    fell_back = [a for a in manifest["artifacts"] if (a.get("quantization") or {}).get("float_units")]
    assert fell_back
    report = json.loads((out_dir / "reports" / "quantization.json").read_text())
    rows = {r["key"]: r for r in report["artifacts"]}
    md = (out_dir / "reports" / "quantization.md").read_text()
    assert (out_dir / "reports" / "quantization.png").stat().st_size > 1000
    assert "kept the" in md and "Sensitivity" in md
    for a in fell_back:
        q = a["quantization"]
        assert q["fallback"].startswith(f"kept the {len(q['float_units'])} most sensitive unit(s) in float"), q["fallback"]
        held = q.get("checked") or q["quality"]  # the golden and the held-out clips, where the budget was held on them
        assert held["iou_mean"] >= q["budget"]["min_iou"]
        assert held["boundary_iou_mean"] >= q["budget"]["min_boundary_iou"]
        assert len(q["float_units"]) <= q["budget"]["max_float_fraction"] * len(rows[a["key"]]["int8"]["search"]["ranking"])
        assert a["verified"] is True, a["verification"]
        assert Path(out_dir / a["path"]).exists()
        assert ", ".join(q["float_units"]) in md
        trials = rows[a["key"]]["int8"]["search"]["trials"]
        assert trials[0]["float_units"] == [] and trials[0]["misses"]
        assert trials[-1]["misses"] == [] and trials[-1]["on"].endswith("artifact")
        assert trials[-1]["float_units"] == q["float_units"]
    return fell_back


@pytest.mark.slow
def test_export_with_a_budget_forced_to_miss_engages_fallback(tmp_path, monkeypatch):
    """The trained default model, ONNX int8 at one real bucket, a Boundary IoU budget just above
    what plain int8 reaches on the golden (0.947 with three units in float, measured): fallback
    must engage, keep units in float, meet the budget on the real artifact, and say so in the
    manifest and the report. The budget is held on the golden alone here (no held-out clips), so
    the figure is the golden's. In CI, where the main job's export already fell back on the real
    budget (the people model's ONNX int8 does at both of CI's buckets), that export is checked instead."""
    exported = _exported_with_fallback()
    if exported is not None:
        _assert_fallback_engaged(exported)
        return
    from backdrop.core.buckets import BucketSet
    from backdrop.export.targets import TARGETS, Target, TargetEntry
    from backdrop.orchestration.pipeline import ExportSpec, export_target

    target = Target(
        "test-onnx-int8", "android", "nv21", "ONNX fp32 + int8 (test)",
        (TargetEntry("onnx", "fp32", ("explicit",)), TargetEntry("onnx", "int8", ("explicit",))),
    )
    monkeypatch.setitem(TARGETS._items, target.name, target)
    from backdrop.orchestration import pipeline

    monkeypatch.setattr(pipeline, "HELDOUT_CHECK_CLIPS", ())
    budget = AccuracyBudget(min_iou=0.97, min_boundary_iou=0.955)
    spec = ExportSpec(target=target.name, buckets=BucketSet.parse("landscape_16x9=160x288"),
                      out_root=tmp_path / "dist", jobs=1, budget=budget)
    result = export_target(spec)
    int8 = _assert_fallback_engaged(result.out_dir)
    assert {a["format"] for a in int8} == {"onnx", "ort"}
    for a in int8:
        assert "Boundary IoU" in a["quantization"]["fallback"]
        assert a["quantization"]["budget"]["min_boundary_iou"] == 0.955
