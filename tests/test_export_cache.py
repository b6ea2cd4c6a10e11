"""The export cache: a re-export with nothing changed copies every artifact and still verifies
it; anything an artifact depends on changes its key; a damaged entry is rebuilt; --no-cache
leaves no trace."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from backdrop.core.buckets import BucketSet
from backdrop.device_tests.parity import Thresholds
from backdrop.export.cache import ExportCache, _digest, model_digest
from backdrop.export.formats import ExportRequest
from backdrop.export.targets import TARGETS, Target, TargetEntry
from backdrop.models import build_model, load_checkpoint
from backdrop.orchestration import pipeline
from backdrop.orchestration.manifest import load_manifest
from backdrop.orchestration.pipeline import ExportSpec, export_target
from backdrop.quantization.budget import AccuracyBudget

SMALL = BucketSet.parse("small_4x3=64x96")


def _register(monkeypatch, name: str, entries: tuple[TargetEntry, ...]) -> str:
    target = Target(name, "android", "nv21", f"{name} (test)", entries)
    monkeypatch.setitem(TARGETS._items, target.name, target)
    return target.name


@pytest.fixture()
def small_target(monkeypatch):
    """ExecuTorch fp32, ONNX fp32 and int8 (int8 ExecuTorch lowering would add minutes; the cache
    does not care about the format); the int8 budget checked over the golden and one held-out
    clip (the export's two would only make the test slower)."""
    monkeypatch.setattr(pipeline, "HELDOUT_CHECK_CLIPS", ("video_call",))
    # The network has random weights: its int8 would miss the real budget and floors and start a fallback
    # search (minutes, and not what this test is about); the budget is still measured on every run.
    floors = pipeline.thresholds_for
    monkeypatch.setattr(pipeline, "thresholds_for", lambda p: Thresholds(0.0, 0.0, 1.0) if p == "int8" else floors(p))
    return _register(monkeypatch, "test-cache", (
        TargetEntry("executorch", "fp32", ("native",)), TargetEntry("onnx", "fp32", ("explicit",)),
        TargetEntry("onnx", "int8", ("explicit",))))


@pytest.fixture()
def onnx_target(monkeypatch):
    """ONNX fp32 only (the cheapest format to export): what the damaged-entry test rebuilds."""
    return _register(monkeypatch, "test-cache-onnx", (TargetEntry("onnx", "fp32", ("explicit",)),))


LENIENT = AccuracyBudget(min_iou=0.0, min_boundary_iou=0.0, max_temporal_drop=1.0)


def _spec(tmp_path, ckpt, target, buckets=SMALL, **kw):
    return ExportSpec(target=target, checkpoint=ckpt, buckets=buckets, out_root=tmp_path / "dist", jobs=1, golden_frames=30,
                      budget=LENIENT,
                      cache_dir=tmp_path / "cache", **kw)


def _files(manifest: dict) -> dict[str, str]:
    return {a["key"] + ":" + a["format"]: a["sha256"] for a in manifest["artifacts"]}


def test_second_export_comes_from_the_cache_and_is_verified_again(tmp_path, lite_checkpoint, small_target):
    logs: list[str] = []
    first = export_target(_spec(tmp_path, lite_checkpoint, small_target), log=logs.append)
    assert (first.cache_hits, first.cache_misses) == (0, 3)
    goldens = sorted((tmp_path / "cache" / "goldens").glob("*.npz"))
    assert len(goldens) == 2  # the bucket's golden and its held-out check sequence
    m1 = load_manifest(first.manifest_path)
    assert any("exported in" in line and "left" in line for line in logs)

    logs.clear()
    second = export_target(_spec(tmp_path, lite_checkpoint, small_target), log=logs.append)
    assert (second.cache_hits, second.cache_misses) == (3, 0)
    assert sum("from the cache" in line for line in logs) == len(second.artifacts) == 5  # onnx writes .onnx and .ort
    m2 = load_manifest(second.manifest_path)
    assert _files(m1) == _files(m2)  # the same bytes
    assert sorted((tmp_path / "cache" / "goldens").glob("*.npz")) == goldens  # the references were reused, not rebuilt
    assert m1["golden_sha256"] == m2["golden_sha256"]
    assert all(a["verified"] is True for a in m2["artifacts"])  # parity ran again on every cached file
    assert all(r["passed"] for r in json.loads((second.out_dir / "reports" / "parity.json").read_text())["records"])
    int8 = next(a for a in m2["artifacts"] if a["precision"] == "int8")
    assert int8["quantization"]["quality"]["iou_mean"] > 0  # the budget was measured again, not copied


def test_a_damaged_entry_is_rebuilt_and_no_cache_leaves_nothing(tmp_path, lite_checkpoint, onnx_target):
    two = BucketSet.parse("small_4x3=64x96,small_3x4=96x64")
    # two worker processes (the requests come back as they finish); the manifest keeps request order
    first = export_target(replace(_spec(tmp_path, lite_checkpoint, onnx_target, two), jobs=2), log=lambda m: None)
    assert [a["bucket"] for a in load_manifest(first.manifest_path)["artifacts"]] == ["small_4x3"] * 2 + ["small_3x4"] * 2
    assert [r["artifact"].split("/")[0] for r in json.loads((first.out_dir / "reports" / "parity.json").read_text())["records"]] \
        == ["small_4x3"] * 2 + ["small_3x4"] * 2
    onnx = sorted((tmp_path / "cache" / "artifacts").glob("*/*/files/*-fp32-explicit.onnx"))
    assert len(onnx) == 2  # one entry per bucket
    onnx[0].write_bytes(b"not a model")
    again = export_target(_spec(tmp_path, lite_checkpoint, onnx_target, two), log=lambda m: None)
    assert (again.cache_hits, again.cache_misses) == (1, 1)  # only the damaged entry is exported again
    assert all(a.verified for a in again.artifacts)
    rebuilt = sorted((tmp_path / "cache" / "artifacts").glob("*/*/files/*-fp32-explicit.onnx"))
    assert len(rebuilt) == 2 and all(p.read_bytes() != b"not a model" for p in rebuilt)
    # workers and hits together: one entry damaged and a new bucket are exported by two workers while the
    # intact entry's copy is verified; the manifest keeps request order
    rebuilt[1].write_bytes(b"not a model")
    three = BucketSet.parse("small_4x3=64x96,small_3x4=96x64,small_1x1=80x80")
    mixed = export_target(replace(_spec(tmp_path, lite_checkpoint, onnx_target, three), jobs=2), log=lambda m: None)
    assert (mixed.cache_hits, mixed.cache_misses) == (1, 2)
    assert all(a.verified for a in mixed.artifacts)
    assert [a["bucket"] for a in load_manifest(mixed.manifest_path)["artifacts"]][::2] == ["small_4x3", "small_3x4", "small_1x1"]

    fresh = tmp_path / "nocache"
    result = export_target(replace(_spec(tmp_path, lite_checkpoint, onnx_target), cache_dir=fresh, use_cache=False),
                           log=lambda m: None)
    assert (result.cache_hits, result.cache_misses) == (0, len(result.artifacts))
    assert not fresh.exists()


def test_every_input_of_an_artifact_is_in_its_key(tmp_path, lite_checkpoint):
    ckpt = load_checkpoint(lite_checkpoint)
    cache = ExportCache(tmp_path, {"torch": torch.__version__})
    bucket = SMALL.get("small_4x3")
    base = ExportRequest(ckpt.model, bucket, "explicit", "int8", tmp_path / "out", "executorch")
    key = _digest(cache.artifact_material(base))
    other = build_model("lite")
    variants = [
        replace(base, state_form="native"),
        replace(base, precision="fp32"),
        replace(base, format="onnx"),
        replace(base, float_units=("rest",)),
        replace(base, bucket=BucketSet.parse("small_4x3=64x128").get("small_4x3")),
        replace(base, model=other),
    ]
    keys = {_digest(cache.artifact_material(r)) for r in variants}
    assert key not in keys and len(keys) == len(variants)
    assert _digest(ExportCache(tmp_path, {"torch": "0.0"}).artifact_material(base)) != key  # tool versions
    assert "calibration" in cache.artifact_material(base) and "calibration" not in cache.artifact_material(variants[1])
    with torch.no_grad():
        nudged = build_model("lite")
        nudged.load_state_dict(ckpt.model.state_dict())
        assert model_digest(nudged) == model_digest(ckpt.model)
        next(nudged.parameters()).view(-1)[0] += 1e-6
    assert model_digest(nudged) != model_digest(ckpt.model)


def test_a_decision_round_trips_and_is_keyed_by_budget(tmp_path, lite_checkpoint):
    ckpt = load_checkpoint(lite_checkpoint)
    cache = ExportCache(tmp_path, {})
    req = ExportRequest(ckpt.model, SMALL.get("small_4x3"), "explicit", "int8", tmp_path / "out", "onnx")
    budget, floors = {"min_iou": 0.97}, {"min_iou": 0.99}
    assert cache.decision(req, budget, floors) is None
    cache.store_decision(req, budget, floors, {"float_units": ["head"], "fallback": "kept 1", "search": None})
    got = cache.decision(req, budget, floors)
    assert got["float_units"] == ["head"] and got["fallback"] == "kept 1"
    assert cache.decision(req, {"min_iou": 0.98}, floors) is None
    assert cache.decision(replace(req, state_form="native"), budget, floors)["float_units"] == ["head"]  # per bucket+format
    assert not list(Path(tmp_path).glob("decisions/.*"))  # written atomically, no temporary left
