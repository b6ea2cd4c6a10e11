"""int8 calibration and quantization: real frames with the feedback loop, PT2E for XNNPACK.

Chained with an assertion at each stage: calibration set (real previous masks, stable hash,
frames disjoint from the goldens) -> PT2E int8 graph (close to float on real golden frames)
-> ExecuTorch int8 ``.pte`` (fully delegated, runs in ``executorch.runtime``; slow).

The fast tests use the lite network at 64x96 with its head rescaled on a real frame so that
the masks are structured (a random-weight head gives a near-constant mask whose IoU is
trivially 1; helpers.structured_lite). The slow test uses the trained default model:
int8 tolerances mean something only on trained weights (field notes).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backdrop.core.buckets import Bucket
from backdrop.core.metrics import boundary_iou, iou
from backdrop.export.goldens import make_golden
from backdrop.models.wrappers import example_inputs, wrap
from backdrop.quantization.calibration import CALIBRATION_START, CalibrationSet, calibration_inputs
from backdrop.quantization.xnnpack_int8 import QuantizationError, quantize_for_xnnpack
from helpers import structured_lite

BUCKET = Bucket("small_2x3", 64, 96)
H, W = BUCKET.height, BUCKET.width
CAL_FRAMES = 12
GOLDEN_FRAMES = 30


@pytest.fixture(scope="module")
def model(carphone_path):
    return structured_lite(carphone_path, BUCKET)


@pytest.fixture(scope="module")
def calibration(model):
    return calibration_inputs(model, BUCKET, num_frames=CAL_FRAMES)


@pytest.fixture(scope="module")
def golden(model):
    return make_golden(model, BUCKET, num_frames=GOLDEN_FRAMES, reset_at=15)


# -- calibration ---------------------------------------------------------------------------


def test_calibration_carries_real_previous_masks(calibration, model):
    c = calibration
    assert c.frames.shape == (CAL_FRAMES, 3, H, W) and c.prev_masks.shape == (CAL_FRAMES, 1, H, W)
    assert c.resets.tolist() == [1.0] + [0.0] * (CAL_FRAMES - 1)
    assert not c.prev_masks[0].any(), "frame 0 follows a reset: empty state"
    for i in range(1, CAL_FRAMES):
        assert c.prev_masks[i].std() > 0.1, f"frame {i}: 4th channel is not a structured previous mask"
    # The state of frame i is exactly the float model's output on frame i-1 with its state.
    with torch.no_grad():
        x = torch.from_numpy(np.concatenate([c.frames[2:3], c.prev_masks[2:3]], axis=1))
        np.testing.assert_allclose(torch.sigmoid(model(x)).numpy(), c.prev_masks[3:4], atol=1e-6)


def test_calibration_hash_is_stable_and_sensitive(calibration, model):
    again = calibration_inputs(model, BUCKET, num_frames=CAL_FRAMES)
    assert again.sha256 == calibration.sha256 and len(calibration.sha256) == 64
    assert again.name == calibration.name == (
        f"calib-small_2x3-carphone_pristine-f{CALIBRATION_START}-{CALIBRATION_START + CAL_FRAMES - 1}"
    )
    changed = calibration.prev_masks.copy()
    changed[1, 0, 0, 0] += 1e-3
    other = CalibrationSet(calibration.name, BUCKET, calibration.frames, changed, calibration.resets, calibration.source)
    assert other.sha256 != calibration.sha256
    assert calibration.describe()["frames"] == CAL_FRAMES


def test_cached_calibration_is_computed_once_per_model_and_bucket(model):
    from backdrop.quantization.calibration import cached_calibration_inputs

    small = Bucket("tiny", 16, 24)
    a = cached_calibration_inputs(model, small)
    assert cached_calibration_inputs(model, small) is a
    assert a.frames.shape[-2:] == (16, 24) and a.name.startswith("calib-tiny-")


def test_calibration_frames_are_not_the_golden_frames(calibration, golden):
    assert f"frames {CALIBRATION_START}.." in calibration.source
    for f in calibration.frames:
        assert all(np.abs(f - g).max() > 1e-3 for g in golden.frames)


# -- PT2E int8 graph -----------------------------------------------------------------------


def _run_loop(fn, golden) -> np.ndarray:
    """Explicit-form feedback loop over the golden: the module's own masks fed back."""
    state = torch.zeros(1, 1, H, W)
    out = []
    with torch.no_grad():
        for i in range(golden.num_frames):
            if golden.resets[i]:
                state = torch.zeros(1, 1, H, W)
            mask, state = fn(torch.from_numpy(golden.frames[i : i + 1]), state)
            out.append(mask[0, 0].numpy().copy())
    return np.stack(out)


# Measured on this machine (x86_64; lite as built by helpers.structured_lite, 12 calibration frames
# 40..51, golden frames 0..29 with the int8 graph's own masks fed back), int8 vs float per
# frame: IoU min 0.907 / mean 0.939, Boundary IoU min 0.826 / mean 0.863, max |dp| 0.22.
# The same graph calibrated with an all-zero 4th channel: IoU min 0.894 / mean 0.910,
# Boundary IoU min 0.785 / mean 0.813. A random network amplifies quantization error (the
# trained default model reaches IoU >= 0.99 at 160x288, scripts/bench_int8.py), so these are
# regression floors for the mechanism, not the accuracy budget: ~0.025 below the measured
# minima, for other CPUs' rounding. A dropped state or a broken scale moves IoU far lower.
MIN_IOU = 0.88
MIN_BIOU = 0.80


@pytest.fixture(scope="module")
def int8_explicit(model, calibration):
    return quantize_for_xnnpack(wrap(model, "explicit", H, W), example_inputs("explicit", H, W), calibration)


def test_int8_graph_is_quantized_and_close_to_float(int8_explicit, golden):
    targets = [str(n.target) for n in int8_explicit.graph.nodes]
    assert sum("dequantize_per_channel" in t for t in targets) >= 10, "weights are not per-channel int8"
    masks = _run_loop(int8_explicit, golden)
    ref = golden.expected_masks[:, 0]
    ious = [iou(masks[i], ref[i]) for i in range(len(ref))]
    bious = [boundary_iou(masks[i], ref[i]) for i in range(len(ref))]
    assert 0.1 < (ref > 0.5).mean() < 0.9, "reference masks must be structured for IoU to mean anything"
    assert min(ious) >= MIN_IOU, (min(ious), np.mean(ious))
    assert min(bious) >= MIN_BIOU, (min(bious), np.mean(bious))


def test_real_state_calibration_beats_zero_state(model, calibration, int8_explicit, golden):
    """Calibrating with real previous masks (the issue's point) is measurably better than
    calibrating with the 4th channel at zero, on the golden frames with the loop running."""
    zero = CalibrationSet(
        "zero-state", BUCKET, calibration.frames, np.zeros_like(calibration.prev_masks), calibration.resets, "test"
    )
    zero_q = quantize_for_xnnpack(wrap(model, "explicit", H, W), example_inputs("explicit", H, W), zero)
    ref = golden.expected_masks[:, 0]

    def mean_iou(q):
        masks = _run_loop(q, golden)
        return float(np.mean([iou(masks[i], ref[i]) for i in range(len(ref))]))

    real, zeros = mean_iou(int8_explicit), mean_iou(zero_q)
    assert real > zeros + 0.01, (real, zeros)  # measured 0.939 vs 0.910


def test_quantize_rejects_wrong_bucket_and_non_wrapper(model, calibration):
    with pytest.raises(QuantizationError, match="32x32"):
        quantize_for_xnnpack(wrap(model, "explicit", 32, 32), example_inputs("explicit", 32, 32), calibration)
    with pytest.raises(QuantizationError, match="export wrapper"):
        quantize_for_xnnpack(model, (torch.zeros(1, 4, H, W),), calibration)


# -- ExecuTorch int8 artifact (slow: XNNPACK lowering of the quantized graph) ----------------


# The explicit form only: the native int8 file's export, load and run are in the format contract
# (test_format_contract.py), and its full delegation on every default bucket is read from CI's
# export by test_delegation.py; the explicit one costs the same ~80 s and checks the same code.
@pytest.mark.slow
@pytest.mark.parametrize("state_form", ["explicit"])
def test_executorch_int8_fully_delegated_and_runs(model, golden, state_form, tmp_path):
    from backdrop.device_tests.host import HostDevice
    from backdrop.export.formats.base import FORMATS, ExportRequest

    (art,) = FORMATS.get("executorch").export(ExportRequest(model, BUCKET, state_form, "int8", tmp_path, "executorch"))
    assert art.path.name == f"model-executorch-int8-{state_form}.pte"
    assert art.precision == "int8"
    d = art.delegation.to_dict()
    assert d["delegated_subgraphs"] == 1 and not d["compute_ops_outside"], d
    assert "quantized_decomposed_quantize_per_tensor_default" in d["ops"]
    cal = art.details["calibration"]
    assert cal["frames"] > 0 and len(cal["sha256"]) == 64 and cal["name"].startswith("calib-small_2x3-")
    masks = HostDevice().run_sequence(art, golden)[:, 0]
    ref = golden.expected_masks[:, 0]
    assert min(iou(masks[i], ref[i]) for i in range(len(ref))) >= MIN_IOU
    assert min(boundary_iou(masks[i], ref[i]) for i in range(len(ref))) >= MIN_BIOU


def test_the_default_recipe_calibrates_on_training_people_only(model, monkeypatch, tmp_path):
    from backdrop.core.errors import ConfigError, InputError
    from backdrop.models.data import source
    from backdrop.quantization.calibration import DIVERSE_RECIPE, Stretch, recipe_calibration_inputs

    assert all(source(st.source).split == "train" for st in DIVERSE_RECIPE)
    small = Bucket("tiny", 16, 24)
    cal = recipe_calibration_inputs(model, small)
    assert cal.num_frames == sum(st.num_frames * st.passes for st in DIVERSE_RECIPE)
    starts = np.flatnonzero(cal.resets == 1.0)
    assert len(starts) == len(DIVERSE_RECIPE) and not cal.prev_masks[starts].any()  # each stretch from a reset
    fed = np.setdiff1d(np.arange(cal.num_frames), starts)
    assert cal.prev_masks[fed].max() > 0.5  # and the mask fed back after it
    assert recipe_calibration_inputs(model, small).sha256 == cal.sha256
    assert "band_studio" in cal.source and "solvay_1927" in cal.source
    with pytest.raises(ConfigError, match="held-out"):
        recipe_calibration_inputs(model, small, (Stretch("video_call", 0, 4),))
    monkeypatch.setenv("BACKDROP_MEDIA_DIR", str(tmp_path))
    with pytest.raises(InputError, match="backdrop data"):
        recipe_calibration_inputs(model, small, (Stretch("portrait_f1"),))
