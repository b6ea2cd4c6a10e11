"""Parity over golden sequences on this host's runtimes: correct artifacts pass, a wrong one
fails with a message naming artifact, frame and metric, and the reports are written.

Artifacts are built here by hand at 64x96 so that each stage is visible and quick: ONNX
(explicit state) from the lite network, ExecuTorch (native state, mutable buffer) and PyTorch
Lite from a two-conv network (lowering the lite network takes ~40 s: see the slow test, which
also runs every registered format's exporter).

Random weights give near-constant probabilities (every mask empty, IoU trivially 1), so each
model's last conv is rescaled on a real frame to give structured masks that depend strongly on
the fed-back state (``helpers.structure_head``); a dropped state or a missed reset then cannot pass.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from backdrop.core.buckets import Bucket
from backdrop.core.errors import ConfigError, RegistryError
from backdrop.device_tests.base import DEVICES, Device, DeviceError, get_device
from backdrop.device_tests.host import HostDevice
from backdrop.device_tests.parity import (
    ParityRecord,
    Thresholds,
    check_parity,
    thresholds_for,
    write_parity_report,
)
from backdrop.export.artifact import Artifact, io_specs
from backdrop.export.goldens import make_golden
from backdrop.models import build_model
from backdrop.models.wrappers import STATE_NAME, example_inputs, wrap
from helpers import TwoConv, structure_head

BUCKET = Bucket("t", 64, 96)
H, W = BUCKET.height, BUCKET.width
N, RESET_AT = 30, 15


def _artifact(path, fmt: str, state_form: str, precision: str = "fp32", **changes) -> Artifact:
    inputs, outputs, states = io_specs(state_form, H, W)
    fields = dict(
        path=path, format=fmt, runtime={"onnx": "onnxruntime", "executorch": "executorch-xnnpack"}.get(fmt, fmt),
        precision=precision, state_form=state_form, bucket=BUCKET, inputs=inputs, outputs=outputs, states=states,
    )
    fields.update(changes)
    return Artifact(**fields)


def _onnx(model: nn.Module, path) -> Artifact:
    torch.onnx.export(
        wrap(model, "explicit", H, W), example_inputs("explicit", H, W), str(path),
        input_names=["frame", "prev_mask"], output_names=["mask", "next_mask"], dynamo=False,
    )
    return _artifact(path, "onnx", "explicit")


def _pte(model: nn.Module, state_form: str, path) -> Artifact:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes.init_mutable_pass import InitializedMutableBufferPass

    with torch.no_grad():
        ep = torch.export.export(wrap(model, state_form, H, W), example_inputs(state_form, H, W))
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    passes = [InitializedMutableBufferPass([STATE_NAME])] if state_form == "native" else []
    path.write_bytes(edge.to_executorch(ExecutorchBackendConfig(passes=passes)).buffer)
    return _artifact(path, "executorch", state_form)


def _ptl(model: nn.Module, state_form: str, path) -> Artifact:
    torch.jit.script(wrap(model, state_form, H, W))._save_for_lite_interpreter(str(path))
    return _artifact(path, "torchscript-lite", state_form)


@pytest.fixture(scope="module")
def lite(carphone_path):
    torch.manual_seed(0)
    return structure_head(build_model("lite"), carphone_path, BUCKET)


@pytest.fixture(scope="module")
def lite_golden(lite):
    return make_golden(lite, BUCKET, num_frames=N, reset_at=RESET_AT)


@pytest.fixture(scope="module")
def onnx_explicit(lite, tmp_path_factory):
    return _onnx(lite, tmp_path_factory.mktemp("onnx") / "model-onnx-fp32-explicit.onnx")


@pytest.fixture(scope="module")
def small(carphone_path):
    torch.manual_seed(3)
    return structure_head(TwoConv(), carphone_path, BUCKET)


@pytest.fixture(scope="module")
def small_golden(small):
    return make_golden(small, BUCKET, num_frames=N, reset_at=RESET_AT)


@pytest.fixture(scope="module")
def pte_native(small, tmp_path_factory):
    return _pte(small, "native", tmp_path_factory.mktemp("pte") / "model-executorch-fp32-native.pte")


@pytest.fixture(scope="module")
def host():
    return HostDevice()


class Forgetful(HostDevice):
    """A broken app loop: resets the state before every frame (explicit: zeros as prev_mask)."""

    name = "forgetful"

    def run_sequence(self, artifact, golden):
        return super().run_sequence(artifact, dataclasses.replace(golden, resets=np.ones_like(golden.resets)))


class ResetOnce(HostDevice):
    """A broken app loop: resets before frame 0 only, never again."""

    name = "reset-once"

    def run_sequence(self, artifact, golden):
        resets = np.zeros_like(golden.resets)
        resets[0] = True
        return super().run_sequence(artifact, dataclasses.replace(golden, resets=resets))


# ---------------------------------------------------------------------------------------------
# The golden test model is meaningful: structured masks that depend on the state
# ---------------------------------------------------------------------------------------------


def test_test_model_gives_structured_state_dependent_masks(lite_golden):
    fg = (lite_golden.expected_masks >= 0.5).mean(axis=(1, 2, 3))
    assert 0.1 < fg[0] < 0.9  # neither empty nor full from an empty state
    assert fg[RESET_AT - 1] - fg[0] > 0.1  # the carried state changes the mask


# ---------------------------------------------------------------------------------------------
# Correct artifacts pass, on every runtime here, both state forms
# ---------------------------------------------------------------------------------------------


def test_onnx_explicit_passes(onnx_explicit, lite_golden, host):
    rec = check_parity(onnx_explicit, lite_golden, host)
    assert rec.passed, rec.message
    assert rec.first_failure is None and not rec.error
    assert len(rec.iou) == len(rec.boundary_iou) == len(rec.max_abs_error) == N
    assert min(rec.iou) >= 0.99 and max(rec.max_abs_error) <= 1e-3
    assert [(s["label"], s["start"], s["stop"]) for s in rec.segments] == [
        ("before_reset", 0, RESET_AT),
        ("after_reset", RESET_AT, N),
    ]
    assert rec.runtime_versions["onnxruntime"] == __import__("onnxruntime").__version__
    assert rec.tier.startswith("host-") and rec.artifact == "t/onnx-fp32-explicit"
    assert rec.message.startswith("Parity passed: t/onnx-fp32-explicit on host")
    summary = rec.summary().to_dict()
    assert summary["passed"] and summary["frames"] == N and summary["resets"] == [0, RESET_AT]


def test_executorch_native_state_passes_and_restarts_cleanly(pte_native, small_golden, host):
    rec = check_parity(pte_native, small_golden, host)
    assert rec.passed, rec.message
    assert rec.runtime_versions["executorch"] == "1.5.1"
    # reset=1.0 on frame 0 makes a second run identical, although the mutable buffer survives.
    a = host.run_sequence(pte_native, small_golden)
    b = host.run_sequence(pte_native, small_golden)
    np.testing.assert_array_equal(a, b)


def test_executorch_missed_reset_fails_after_the_reset(pte_native, small_golden):
    """The runtime keeps the state unless told: an app loop that never passes reset=1.0 again
    gets frame RESET_AT wrong, and the record says it is the frame after the reset."""
    rec = check_parity(pte_native, small_golden, ResetOnce())
    assert not rec.passed
    assert rec.first_failure["frame"] == RESET_AT
    assert f"frame {RESET_AT} (frame_{RESET_AT:05d}, after reset)" in rec.message
    before, after = rec.segments
    assert before["max_abs_error"] <= 1e-3 and after["max_abs_error"] > 1e-3


@pytest.mark.parametrize("state_form", ["explicit", "native"])
def test_pytorch_lite_passes(small, small_golden, host, tmp_path, state_form):
    art = _ptl(small, state_form, tmp_path / f"model-torchscript-lite-fp32-{state_form}.ptl")
    rec = check_parity(art, small_golden, host)
    assert rec.passed, rec.message
    assert rec.runtime_versions["torch"] == torch.__version__


# ---------------------------------------------------------------------------------------------
# Wrong artifacts fail, naming artifact, frame and metric
# ---------------------------------------------------------------------------------------------


def test_dropped_state_fails_naming_frame_and_metric(onnx_explicit, lite_golden):
    rec = check_parity(onnx_explicit, lite_golden, Forgetful())
    assert not rec.passed
    f = rec.first_failure
    assert f["frame"] == 1 and f["metric"] == "max_abs_error" and f["value"] > 1e-3
    assert rec.message.startswith(
        "Parity failed: t/onnx-fp32-explicit on forgetful (host-"
    ), rec.message
    assert "frame 1 (frame_00001, before reset) max_abs_error = " in rec.message
    assert "above the maximum 1.00e-03" in rec.message
    assert rec.max_abs_error[0] <= 1e-3 and rec.max_abs_error[RESET_AT] <= 1e-3  # reset frames agree


def test_different_weights_fail_on_iou(carphone_path, lite_golden, tmp_path, host):
    torch.manual_seed(1)
    other = _onnx(structure_head(build_model("lite"), carphone_path, BUCKET), tmp_path / "model-onnx-fp32-explicit.onnx")
    loose = Thresholds(min_iou=0.99, min_boundary_iou=0.0, max_abs_error=1.0)  # IoU alone must catch it
    rec = check_parity(other, lite_golden, host, loose)
    assert not rec.passed
    assert rec.first_failure["frame"] == 0 and rec.first_failure["metric"] == "iou"
    assert "frame 0 (frame_00000, before reset) iou = " in rec.message and "below the minimum 0.9900" in rec.message


def test_structure_mismatch_is_a_failed_record(onnx_explicit, lite_golden, host):
    inputs, outputs, states = io_specs("explicit", H, W)
    renamed = (dataclasses.replace(outputs[0], name="probability"), outputs[1])
    bad = dataclasses.replace(onnx_explicit, outputs=renamed)
    rec = check_parity(bad, lite_golden, host)
    assert not rec.passed and rec.error
    assert "the run failed" in rec.message and "'probability'" in rec.message


def test_wrong_bucket_golden_is_refused(onnx_explicit, lite_golden, host):
    other = dataclasses.replace(onnx_explicit, bucket=Bucket("u", 96, 64))
    rec = check_parity(other, lite_golden, host)
    assert not rec.passed and "artifact bucket u 96x64 but golden bucket t 64x96" in rec.error


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


def test_reports_are_written(onnx_explicit, lite_golden, host, tmp_path):
    good = check_parity(onnx_explicit, lite_golden, host)
    bad = check_parity(onnx_explicit, lite_golden, Forgetful())
    out = tmp_path / "reports"
    json_path, md_path = write_parity_report([good, bad], out)
    assert (json_path, md_path) == (out / "parity.json", out / "parity.md")
    assert sorted(p.name for p in out.iterdir()) == ["parity.json", "parity.md"]  # no temp files
    doc = json.loads(json_path.read_text())
    assert doc["schema"] == "backdrop-parity/1" and doc["passed"] is False and doc["num_records"] == 2
    first = doc["records"][0]
    assert first["passed"] is True and len(first["iou"]) == N and first["thresholds"]["min_iou"] == 0.99
    assert doc["records"][1]["first_failure"]["frame"] == 1
    md = md_path.read_text()
    assert "**1 of 2 passed.**" in md and "**FAIL**" in md and bad.message in md
    assert "| `t/onnx-fp32-explicit` | host (host-" in md
    assert "onnxruntime " + __import__("onnxruntime").__version__ in md
    # Same records, same bytes.
    write_parity_report([good, bad], tmp_path / "again")
    assert (tmp_path / "again" / "parity.json").read_bytes() == json_path.read_bytes()


# ---------------------------------------------------------------------------------------------
# Thresholds, devices, registry
# ---------------------------------------------------------------------------------------------


def test_thresholds_per_precision_and_validation():
    assert thresholds_for("fp32") == Thresholds()
    assert all(thresholds_for(p).min_iou == 0.99 for p in ("fp32", "fp16"))
    # int8: per-frame guards set on trained weights over held-out clips (docs/quantization.md, "Floors"), below float's
    # but still failing a wrong region (max |error| near 1) or a mask that lost a tenth of itself.
    int8 = thresholds_for("int8")
    assert 0.5 < int8.min_iou < 0.99 and 0.5 < int8.min_boundary_iou < thresholds_for("fp16").min_boundary_iou
    assert int8.max_abs_error < 0.9
    assert thresholds_for("fp16").max_abs_error > thresholds_for("fp32").max_abs_error
    with pytest.raises(ConfigError, match="No parity thresholds for precision 'fp8'; known: fp32, fp16, int8, palette6"):
        thresholds_for("fp8")
    with pytest.raises(ConfigError, match="min_iou must be in"):
        Thresholds(min_iou=1.5)


def test_host_cannot_run_coreml_and_says_why(lite_golden, host, tmp_path):
    art = _artifact(tmp_path / "model.mlpackage", "coreml", "native")
    assert not host.can_run(art)
    assert "macOS" in host.why_not(art)
    with pytest.raises(DeviceError, match=r"t/coreml-fp32-native cannot run on host .*backdrop parity"):
        check_parity(art, lite_golden, host)
    onnx_native = _artifact(tmp_path / "m.onnx", "onnx", "native")
    assert not host.can_run(onnx_native) and "explicit" in host.why_not(onnx_native)


def test_device_registry():
    dev = get_device("host")
    assert isinstance(dev, HostDevice) and isinstance(dev, Device)
    assert "host" in DEVICES
    with pytest.raises(RegistryError, match="Unknown device 'hots'. Did you mean 'host'?"):
        get_device("hots")


def test_record_is_plain_data(onnx_explicit, lite_golden, host):
    rec = check_parity(onnx_explicit, lite_golden, host)
    assert isinstance(rec, ParityRecord)
    json.dumps(rec.to_dict(), allow_nan=False)
