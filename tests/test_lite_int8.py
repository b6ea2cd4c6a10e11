"""PyTorch Lite int8 (FX graph mode, qnnpack; quantization/qnnpack_int8.py and
export/formats/lite.py): the .ptl runs in the lite interpreter under qnnpack exactly as the
quantized graph does in torch, units kept in float stay float, and the fallback probe.

Same model recipe as test_onnx_int8.py (lite network, head rescaled on a real frame, BatchNorm
fused): structured masks, so accuracy can be asserted.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile

import numpy as np
import pytest
import torch
from torch.jit.mobile import _export_operator_list, _load_for_lite_interpreter

from backdrop.core.buckets import Bucket
from backdrop.device_tests.host import HostDevice
from backdrop.export.formats import FORMATS, ExportError, ExportRequest
from backdrop.export.formats.lite import METADATA_FILE
from backdrop.export.goldens import make_golden
from backdrop.quantization import fuse_model
from backdrop.quantization.budget import measure_quality, run_explicit
from backdrop.quantization.calibration import cached_calibration_inputs
from backdrop.quantization.qnnpack_int8 import ENGINE, qnnpack_engine, quantize_for_qnnpack, quantized_modules
from backdrop.quantization.units import quant_units
from helpers import structured_lite

BUCKET = Bucket("t", 64, 96)
FLOAT_UNITS = ("encoder.stages.3.1", "head")


@pytest.fixture(scope="module")
def model(carphone_path):
    fused, _ = fuse_model(structured_lite(carphone_path, BUCKET))
    return fused


@pytest.fixture(scope="module")
def golden(model):
    return make_golden(model, BUCKET, "nv21", num_frames=30, reset_at=15)


@pytest.fixture(scope="module")
def int8(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("lite8")
    fmt = FORMATS.get("torchscript-lite")
    return {
        form: fmt.export(ExportRequest(model, BUCKET, form, "int8", out, "torchscript-lite"))[0]
        for form in ("explicit", "native")
    }


@pytest.fixture(scope="module")
def probe(model):
    request = ExportRequest(model, BUCKET, "explicit", "int8", None, "torchscript-lite")
    return FORMATS.get("torchscript-lite").int8_probe(request)


def test_int8_ptl_runs_quantized_kernels_and_describes_itself(int8, model):
    before = torch.backends.quantized.engine
    for form, art in int8.items():
        assert art.path.name == f"model-torchscript-lite-int8-{form}.ptl"
        with qnnpack_engine():
            ops = set(_export_operator_list(_load_for_lite_interpreter(str(art.path))))
        assert {"quantized::conv2d.new", "quantized::add", "aten::quantize_per_tensor.tensor_qparams"} <= ops, ops
        assert torch.backends.quantized.engine == before, "engine restored"
        with zipfile.ZipFile(art.path) as z:
            name = next(n for n in z.namelist() if n.endswith(f"extra/{METADATA_FILE}"))
            meta = json.loads(z.read(name))
        for doc in (meta, art.details):
            assert doc["quantization"]["engine"] == ENGINE and doc["quantization"]["float_units"] == []
            assert doc["calibration"]["sha256"] == cached_calibration_inputs(model, BUCKET).sha256
        assert art.details["smoke_max_abs_diff"] <= 1e-3


def test_ptl_computes_what_the_quantized_graph_computes(int8, probe, golden):
    """Parity of the file with the probe's build(()) over real frames, state carried by the
    runtime in both forms; and the int8 masks stay close to float on this structured model."""
    expected = run_explicit(probe.build(()), golden)
    for art in int8.values():
        masks = HostDevice().run_sequence(art, golden)
        np.testing.assert_allclose(masks, expected, atol=1e-5, rtol=0)
    q = measure_quality(expected, golden)
    # Measured (x86_64): IoU mean 0.948 / min 0.935, Boundary IoU mean 0.876 / min 0.846; floors below.
    assert q.iou_mean >= 0.90 and q.boundary_iou_mean >= 0.78, q


def test_float_units_stay_float(model):
    # Which modules are quantized does not depend on how many frames calibrate them: the first 4
    # of the real set (each FX calibration pass through the observers is the cost of this test).
    full = cached_calibration_inputs(model, BUCKET)
    calibration = dataclasses.replace(full, name=f"{full.name}-first4", frames=full.frames[:4],
                                      prev_masks=full.prev_masks[:4], resets=full.resets[:4])
    plain = quantized_modules(quantize_for_qnnpack(model, calibration))
    floats = quantized_modules(quantize_for_qnnpack(model, calibration, FLOAT_UNITS))

    def in_units(names, unit):
        return [n for n in names if n == unit or n.startswith(unit + ".")]

    for unit in FLOAT_UNITS:
        assert in_units(plain, unit), f"{unit} is quantized in the plain graph"
        assert not in_units(floats, unit), f"{unit} kept in float"
    assert set(floats) == {n for n in plain if not any(in_units([n], u) for u in FLOAT_UNITS)}
    # "rest" only: every unit quantized, the ops outside them (decoder resizes, concats) float.
    rest = quantize_for_qnnpack(model, calibration, ("rest",))
    assert set(quantized_modules(rest)) == set(plain)

    def resizes_read_float(gm):
        nodes = [n for n in gm.graph.nodes if n.op == "call_function" and "interpolate" in str(n.target)]
        assert nodes, "the decoder resizes"
        return {n.args[0].op == "call_method" and n.args[0].target == "dequantize" for n in nodes}

    assert resizes_read_float(quantize_for_qnnpack(model, calibration)) == {False}
    assert resizes_read_float(rest) == {True}
    everything = (*quant_units(model), "rest")
    assert quantized_modules(quantize_for_qnnpack(model, calibration, everything)) == {}


def test_probe_all_float_is_the_float_model(probe, golden):
    assert probe.units == (*quant_units(probe.request.model), "rest")
    masks = run_explicit(probe.build(probe.units), golden)
    assert float(np.abs(masks - golden.expected_masks).max()) < 1e-4


def test_bad_requests_are_refused_before_anything_is_written(model, tmp_path, probe):
    fmt = FORMATS.get("torchscript-lite")
    with pytest.raises(ExportError, match=re.escape("Unknown quantization unit(s) encoder.nope")):
        fmt.export(ExportRequest(model, BUCKET, "explicit", "int8", tmp_path, "torchscript-lite", ("encoder.nope",)))
    with pytest.raises(ExportError, match=r"float_units \(head\) apply to int8 only"):
        fmt.export(ExportRequest(model, BUCKET, "explicit", "fp32", tmp_path, "torchscript-lite", ("head",)))
    assert not any(tmp_path.iterdir())
    with pytest.raises(ExportError, match="Unknown quantization unit"):
        probe.build(["nope"])
