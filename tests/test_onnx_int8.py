"""ONNX int8 (static QDQ, per-channel; quantization/onnx_qdq.py, export/formats/onnx.py): the
.onnx and its .ort twin, units kept in float, and the fallback search's probe on ONNX Runtime.

The model is the lite network with its head rescaled on a real frame and the state channel of
its first conv at 0.1 (``helpers.structured_lite``), BatchNorm fused as before every
export: its masks are structured (about 60 % person) and stay so with the state fed back.
``helpers.lively_lite`` is not used here: its randomised BatchNorm statistics make any 8-bit
version of it drift far from float (measured: IoU 0.62 for ONNX Runtime QDQ and 0.58 for
PT2E/XNNPACK over the same golden), so nothing could be asserted about accuracy on it.
Numbers below were measured on x86_64 (2 cores); int8 floors sit well under them because a
random network amplifies quantization error (the trained default model is much closer to
float; see docs/quantization.md).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from backdrop.core.buckets import Bucket
from backdrop.device_tests.host import HostDevice
from backdrop.export.formats import FORMATS, ExportError, ExportRequest
from backdrop.export.formats.onnx import OPSET, OnnxFormat
from backdrop.export.goldens import make_golden
from backdrop.quantization import fuse_model
from backdrop.quantization.budget import measure_quality, run_explicit
from backdrop.quantization.calibration import DIVERSE_RECIPE
from backdrop.quantization.fallback import Int8Probe
from backdrop.quantization.units import quant_units
from helpers import structured_lite

BUCKET = Bucket("t", 64, 96)
FLOAT_UNITS = ("encoder.stages.3.1", "head")
GOLDEN_FRAMES, RESET_AT = 30, 15


@pytest.fixture(scope="module")
def model(carphone_path):
    fused, _ = fuse_model(structured_lite(carphone_path, BUCKET))
    return fused


@pytest.fixture(scope="module")
def golden(model):
    return make_golden(model, BUCKET, "nv21", num_frames=GOLDEN_FRAMES, reset_at=RESET_AT)


def _export(model, out, precision, float_units=()):
    return FORMATS.get("onnx").export(ExportRequest(model, BUCKET, "explicit", precision, out, "onnx", float_units))


@pytest.fixture(scope="module")
def fp32(model, tmp_path_factory):
    return _export(model, tmp_path_factory.mktemp("fp32"), "fp32")


@pytest.fixture(scope="module")
def int8(model, tmp_path_factory):
    return _export(model, tmp_path_factory.mktemp("int8"), "int8")


@pytest.fixture(scope="module")
def int8_float_units(model, tmp_path_factory):
    return _export(model, tmp_path_factory.mktemp("int8f"), "int8", FLOAT_UNITS)


@pytest.fixture(scope="module")
def probe(model):
    return FORMATS.get("onnx").int8_probe(ExportRequest(model, BUCKET, "explicit", "int8", None, "onnx"))


def _ops(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


def _initializer_types(model: onnx.ModelProto) -> dict[str, int]:
    return {t.name: t.data_type for t in model.graph.initializer}


def test_int8_is_offered():
    assert FORMATS.get("onnx").precisions == ("fp32", "int8")
    assert isinstance(FORMATS.get("onnx"), OnnxFormat)


def test_int8_writes_a_qdq_onnx_and_its_ort_twin(int8, fp32):
    onnx_art, ort_art = int8
    assert onnx_art.path.name == "model-onnx-int8-explicit.onnx"
    assert ort_art.path.name == "model-onnx-int8-explicit.ort"
    assert sorted(p.name for p in onnx_art.path.parent.iterdir()) == [onnx_art.path.name, ort_art.path.name]
    assert (onnx_art.precision, ort_art.precision) == ("int8", "int8")
    for a in int8:
        session = ort.InferenceSession(str(a.path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["frame", "prev_mask"]
        assert [o.name for o in session.get_outputs()] == ["mask", "next_mask"]
        assert a.details["smoke_max_abs_diff"] <= 0.2
    assert ort_art.details["required_operators"]

    model = onnx.load(onnx_art.path)
    onnx.checker.check_model(model, full_check=True)
    assert {(o.domain or "ai.onnx", o.version) for o in model.opset_import} == {("ai.onnx", OPSET)}
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node) and not model.functions
    ops = _ops(model)
    assert ops["QuantizeLinear"] > 50 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    # Every conv weight is int8 (per output channel: a scale per channel) and read through a DequantizeLinear.
    inits = {t.name: t for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    producer = {o: n for n in model.graph.node for o in n.output}
    for conv in convs:
        dq = producer[conv.input[1]]
        assert dq.op_type == "DequantizeLinear", conv.name
        weight, scale = inits[dq.input[0]], inits[dq.input[1]]
        assert weight.data_type == onnx.TensorProto.INT8, conv.name
        assert scale.dims == [weight.dims[0]], f"{conv.name}: not per-channel"
    # The lite network has 1.2 MB of float weights; int8 keeps scales, int32 biases and QDQ
    # nodes: measured 0.38 of the fp32 file after compaction (the default model: 0.29).
    ratio = onnx_art.path.stat().st_size / fp32[0].path.stat().st_size
    assert ratio < 0.5, ratio


def test_int8_files_describe_themselves(int8, model):
    quant = int8[0].details["quantization"]
    calibration = int8[0].details["calibration"]
    assert calibration["name"].startswith("calib-t-") and len(calibration["sha256"]) == 64
    # The default recipe: every stretch of DIVERSE_RECIPE, each still fed `passes` times.
    assert calibration["frames"] == sum(s.num_frames * s.passes for s in DIVERSE_RECIPE) == 38
    assert quant["weights"] == "int8 symmetric per-channel"
    assert quant["activations"] == "uint8 affine per-tensor"
    assert quant["calibration_method"] == "MinMax"
    assert quant["float_units"] == [] and quant["excluded_nodes"] == 0
    assert quant["quantized_nodes"] == _ops(onnx.load(int8[0].path))["QuantizeLinear"]
    for a in int8:
        assert (a.details["calibration"], a.details["quantization"]) == (calibration, quant)
        meta = ort.InferenceSession(str(a.path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
        assert meta["backdrop.precision"] == "int8"
        assert json.loads(meta["backdrop.model_config"]) == model.config.to_dict()
        assert json.loads(meta["backdrop.calibration"]) == calibration
        assert json.loads(meta["backdrop.quantization"]) == quant
        assert not any(k.startswith("onnx.") for k in meta), "only the artifact's own description"


def test_float_units_keep_exactly_their_nodes_in_float(int8, int8_float_units, fp32):
    plain, floats = onnx.load(int8[0].path), onnx.load(int8_float_units[0].path)
    quant = int8_float_units[0].details["quantization"]
    assert quant["float_units"] == list(FLOAT_UNITS) and quant["excluded_nodes"] > 0
    # The int8 graph's internal names are compacted, so the units' convs are found by their
    # weights: the fp32 graph names them (model.<unit>.<...>.weight).
    fp32_model = onnx.load(fp32[0].path)
    fp32_weights = {t.name: onnx.numpy_helper.to_array(t) for t in fp32_model.graph.initializer}
    fp32_convs = [n for n in fp32_model.graph.node if n.op_type == "Conv"]
    unit_weights = {
        unit: [fp32_weights[n.input[1]] for n in fp32_convs if n.input[1].startswith(f"model.{unit}.")]
        for unit in FLOAT_UNITS
    }
    assert all(unit_weights.values()), unit_weights.keys()

    def float_conv_weights(graph_model):
        inits = {t.name: t for t in graph_model.graph.initializer}
        convs = [n for n in graph_model.graph.node if n.op_type == "Conv"]
        assert len(convs) == len(fp32_convs)
        out = []
        for conv in convs:
            if conv.input[1] in inits:  # read directly, not through a DequantizeLinear
                weight = inits[conv.input[1]]
                assert weight.data_type == onnx.TensorProto.FLOAT, conv.name
                out.append(onnx.numpy_helper.to_array(weight))
        return out

    kept = float_conv_weights(floats)
    expected = [w for unit in FLOAT_UNITS for w in unit_weights[unit]]
    assert len(kept) == len(expected)
    for w in expected:
        assert any(k.shape == w.shape and np.array_equal(k, w) for k in kept), "a unit conv was quantized"
    # Everything else is quantized as in the plain int8 graph.
    assert float_conv_weights(plain) == []
    assert _ops(floats)["QuantizeLinear"] < _ops(plain)["QuantizeLinear"]


def test_int8_graph_is_compacted_without_changing_its_outputs(int8, fp32):
    """compact_qdq_graph: shared identical initializers, no value_info, short internal names,
    public names kept; the file runs bit-identically to the quantizer's own graph."""
    compaction = int8[0].details["quantization"]["compaction"]
    assert compaction["shared_initializers"] > 0 and compaction["renamed_tensors"] > 0
    model = onnx.load(int8[0].path)
    assert not model.graph.value_info
    keys = [(t.data_type, tuple(t.dims), onnx.numpy_helper.to_array(t).tobytes()) for t in model.graph.initializer]
    assert len(keys) == len(set(keys)), "identical initializers stored twice"
    names = [t.name for t in model.graph.initializer] + [o for n in model.graph.node for o in n.output]
    internal = [x for x in names if x not in ("mask", "next_mask")]
    assert max(len(x) for x in internal) <= 3, "internal names are short ids"
    assert all(len(n.input) == 3 for n in model.graph.node if n.op_type == "DequantizeLinear"), "zero points kept"


def test_compaction_is_exact_on_a_quantizer_graph(tmp_path):
    """On a graph straight from quantize_static (two convs sharing a shape, so their
    zero-point tensors coincide), ONNX Runtime gives the same bytes before and after."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from backdrop.quantization.onnx_qdq import compact_qdq_graph

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1))
    x = torch.rand(1, 3, 16, 16)
    torch.onnx.export(net.eval(), (x,), tmp_path / "f.onnx", input_names=["x"], output_names=["y"], dynamo=True)
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(tmp_path / "f.onnx", tmp_path / "q.onnx", Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    model = onnx.load(tmp_path / "q.onnx")
    before = model.SerializeToString()
    counts = compact_qdq_graph(model)
    assert counts["shared_initializers"] >= 1 and len(model.SerializeToString()) < len(before)
    onnx.checker.check_model(model, full_check=True)
    feeds = {"x": rng.random((1, 3, 16, 16), dtype=np.float32)}
    a = ort.InferenceSession(before, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    b = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_array_equal(a, b)
    assert [o.name for o in model.graph.output] == ["y"]


def test_unknown_float_unit_is_refused_before_anything_is_written(model, tmp_path, probe):
    request = ExportRequest(model, BUCKET, "explicit", "int8", tmp_path, "onnx", ("encoder.nope",))
    with pytest.raises(ExportError, match=re.escape("Unknown quantization unit(s) encoder.nope") + ".*encoder.stem"):
        FORMATS.get("onnx").export(request)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ExportError, match=r"float_units \(head\) apply to int8 only"):
        FORMATS.get("onnx").export(ExportRequest(model, BUCKET, "explicit", "fp32", tmp_path, "onnx", ("head",)))
    with pytest.raises(ExportError, match="Unknown quantization unit"):
        probe.build(["nope"])


def test_probe_is_an_int8_probe(probe, model):
    # Int8Probe's members (a Protocol, not runtime-checkable): the annotated attributes and build.
    for name in (*Int8Probe.__annotations__, "build"):
        assert hasattr(probe, name), name
    assert probe.units == (*quant_units(model), "rest") and len(probe.units) == 24
    assert probe.runtime == "onnxruntime (CPU EP, QDQ)"


# Measured: probe build(()) over the golden: IoU mean 0.907 / min 0.883, Boundary IoU mean
# 0.813 / min 0.759, temporal IoU 0.024 below float's, mean |error| 0.032; encoder.stages.1.0
# quantized alone (the rest float): mean |error| 0.0083. Floors about 0.05 under the minima.
ONE_UNIT = "encoder.stages.1.0"


def test_probe_quality_and_the_artifact_matches_it(probe, golden, int8):
    assert 0.1 < (golden.expected_masks >= 0.5).mean() < 0.9, "structured reference masks"
    masks_all = run_explicit(probe.build(()), golden)
    q_all = measure_quality(masks_all, golden)
    assert q_all.iou_mean >= 0.85 and q_all.iou_min >= 0.83
    assert q_all.boundary_iou_mean >= 0.76 and q_all.boundary_iou_min >= 0.70
    assert q_all.temporal_drop <= 0.05

    one = [u for u in probe.units if u != ONE_UNIT]
    q_one = measure_quality(run_explicit(probe.build(one), golden), golden)
    assert 1e-3 < q_one.mean_abs_error < q_all.mean_abs_error / 2, (q_one.mean_abs_error, q_all.mean_abs_error)
    # Everything in float: the float graph in ONNX Runtime.
    q_none = measure_quality(run_explicit(probe.build(probe.units), golden), golden)
    assert q_none.max_abs_error < 1e-4

    assert not list(Path(tempfile.gettempdir()).glob("backdrop-onnx-int8-probe-*")), "probe scratch files left"

    # The written .onnx is the probe's build(()) exactly: same graph, same calibration ranges.
    artifact_masks = HostDevice().run_sequence(int8[0], golden)
    np.testing.assert_allclose(artifact_masks, masks_all, atol=1e-5, rtol=0)


def test_int8_graph_with_contrib_quantize_ops_is_refused():
    """ONNX Runtime's quantizer can emit com.microsoft QuantizeLinear (UseQDQContribOps); the
    portable .onnx must not carry it."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("QuantizeLinear", ["frame", "s", "z"], ["q"], domain="com.microsoft"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["mask"], domain="com.microsoft"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("frame", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.UINT8, [], [0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)])

    class _Stub:
        key = "tiny/onnx-int8-explicit"

    with pytest.raises(ExportError, match=re.escape("non-standard ops ['com.microsoft::DequantizeLinear'")):
        OnnxFormat()._check_int8_graph(model, _Stub())
