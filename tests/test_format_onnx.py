"""ONNX / ORT-format export (export/formats/onnx.py): names, static shapes, standard ops,
embedded metadata, the ORT twin, and outputs against the PyTorch wrapper.

One export of the lite variant at a small bucket serves the module (about 20 s on 2 cores).
Tolerances here are for random weights; trained-weight parity thresholds live with the parity
check over real frames.
"""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from backdrop import __version__
from backdrop.core.buckets import Bucket
from backdrop.export.artifact import io_specs
from backdrop.export.formats import FORMATS, ExportError, ExportRequest
from backdrop.export.formats.onnx import OPSET, OnnxFormat
from backdrop.models.wrappers import wrap
from helpers import lively_lite

BUCKET = Bucket("small_2x3", 64, 96)
ORT_TYPES = {"float32": "tensor(float)"}


@pytest.fixture(scope="module")
def model():
    return lively_lite()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    return FORMATS.get("onnx").export(ExportRequest(model, BUCKET, "explicit", "fp32", out))


def sessions(exported):
    return {a.format: ort.InferenceSession(str(a.path), providers=["CPUExecutionProvider"]) for a in exported}


def test_registered_with_its_capabilities():
    fmt = FORMATS.get("onnx")
    assert (fmt.name, fmt.runtime) == ("onnx", "onnxruntime")
    assert fmt.state_forms == ("explicit",)
    assert fmt.precisions == ("fp32", "int8")


def test_writes_onnx_and_ort_twin(exported):
    onnx_art, ort_art = exported
    assert onnx_art.path.name == "model-onnx-fp32-explicit.onnx"
    assert ort_art.path.name == "model-onnx-fp32-explicit.ort"
    assert sorted(p.name for p in onnx_art.path.parent.iterdir()) == [onnx_art.path.name, ort_art.path.name]
    assert (onnx_art.format, onnx_art.runtime) == ("onnx", "onnxruntime")
    assert (ort_art.format, ort_art.runtime) == ("ort", "onnxruntime-ortformat")
    inputs, outputs, states = io_specs("explicit", BUCKET.height, BUCKET.width)
    for a in exported:
        assert (a.precision, a.state_form, a.bucket) == ("fp32", "explicit", BUCKET)
        assert (a.inputs, a.outputs, a.states) == (inputs, outputs, states)
        assert a.details["smoke_max_abs_diff"] <= 1e-4
    assert onnx_art.key != ort_art.key
    assert ort_art.details["required_operators"], "the minimal-build operator list is recorded"


def test_graph_is_static_standard_and_named_as_specified(exported):
    model = onnx.load(exported[0].path)
    onnx.checker.check_model(model, full_check=True)
    assert {(o.domain or "ai.onnx", o.version) for o in model.opset_import} == {("ai.onnx", OPSET)}
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert not model.functions
    inputs, outputs, _ = io_specs("explicit", BUCKET.height, BUCKET.width)
    for values, specs in ((model.graph.input, inputs), (model.graph.output, outputs)):
        assert [v.name for v in values] == [s.name for s in specs]
        for v, s in zip(values, specs):
            dims = v.type.tensor_type.shape.dim
            assert all(d.HasField("dim_value") for d in dims), f"{v.name} has a dynamic dimension"
            assert tuple(d.dim_value for d in dims) == s.shape
            assert v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # The replicate padding (concatenated edge slices) stays Slice + Concat: no Pad/Gather.
    ops = {n.op_type for n in model.graph.node}
    assert {"Slice", "Concat", "Conv"} <= ops
    assert not ops & {"Pad", "Gather", "GatherElements", "Shape"}


def test_runtime_sees_the_specified_names_shapes_and_dtypes(exported):
    inputs, outputs, _ = io_specs("explicit", BUCKET.height, BUCKET.width)
    for fmt, session in sessions(exported).items():
        got_in = [(i.name, tuple(i.shape), i.type) for i in session.get_inputs()]
        got_out = [(o.name, tuple(o.shape), o.type) for o in session.get_outputs()]
        assert got_in == [(s.name, s.shape, ORT_TYPES[s.dtype]) for s in inputs], fmt
        assert got_out == [(s.name, s.shape, ORT_TYPES[s.dtype]) for s in outputs], fmt


def test_both_files_describe_themselves(exported, model):
    for fmt, session in sessions(exported).items():
        meta = session.get_modelmeta().custom_metadata_map
        assert meta["backdrop.version"] == __version__, fmt
        assert meta["backdrop.state_form"] == "explicit"
        assert meta["backdrop.precision"] == "fp32"
        assert json.loads(meta["backdrop.bucket"]) == {"name": BUCKET.name, "height": 64, "width": 96}
        art = exported[0]
        assert json.loads(meta["backdrop.inputs"]) == [s.to_dict() for s in art.inputs]
        assert json.loads(meta["backdrop.outputs"]) == [s.to_dict() for s in art.outputs]
        assert json.loads(meta["backdrop.states"]) == []
        assert "next_mask" in meta["backdrop.feedback"] and "prev_mask" in meta["backdrop.feedback"]
        assert json.loads(meta["backdrop.model_config"]) == model.config.to_dict()


def test_loop_with_fed_back_state_matches_pytorch(exported, model):
    reference = wrap(model, "explicit", BUCKET.height, BUCKET.width)
    gen = torch.Generator().manual_seed(7)
    frames = [torch.rand(1, 3, BUCKET.height, BUCKET.width, generator=gen) for _ in range(3)]
    want, prev = [], torch.zeros(1, 1, BUCKET.height, BUCKET.width)
    with torch.no_grad():
        for f in frames:
            mask, prev = reference(f, prev)
            want.append(mask.numpy())
    # The state matters: without feedback the second mask is visibly different.
    with torch.no_grad():
        no_feedback = reference(frames[1], torch.zeros_like(prev))[0].numpy()
    assert np.abs(no_feedback - want[1]).max() > 1e-3

    for fmt, session in sessions(exported).items():
        prev_np = np.zeros((1, 1, BUCKET.height, BUCKET.width), np.float32)
        for i, f in enumerate(frames):
            mask, nxt = session.run(None, {"frame": f.numpy(), "prev_mask": prev_np})
            np.testing.assert_allclose(mask, want[i], atol=1e-4, rtol=0, err_msg=f"{fmt} frame {i}")
            np.testing.assert_array_equal(mask, nxt)
            prev_np = nxt


def test_unsupported_precision_names_format_and_precision(model, tmp_path):
    request = ExportRequest(model, BUCKET, "explicit", "fp16", tmp_path)
    with pytest.raises(ExportError, match=re.escape("Format 'onnx' cannot export precision 'fp16'")):
        FORMATS.get("onnx").export(request)
    assert not any(tmp_path.iterdir())


def test_native_state_is_refused(model, tmp_path):
    request = ExportRequest(model, BUCKET, "native", "fp32", tmp_path)
    with pytest.raises(ExportError, match=re.escape("Format 'onnx' cannot export state form 'native'")):
        FORMATS.get("onnx").export(request)


class _Bessel(nn.Module):
    """A 'model' using an op with no ONNX translation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x[:, :1])


def test_op_without_onnx_translation_names_op_and_format(tmp_path):
    request = ExportRequest(_Bessel(), Bucket("tiny", 4, 6), "explicit", "fp32", tmp_path)
    with pytest.raises(ExportError, match=r"Format 'onnx' cannot take op '[\w.]*bessel_j0[\w.]*'"):
        FORMATS.get("onnx").export(request)


def test_custom_domain_op_names_op_and_format():
    from onnx import TensorProto, helper

    node = helper.make_node("FusedConv", ["x", "w"], ["y"], domain="com.microsoft")
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 1, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])],
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)

    class _Stub:
        key = "tiny/onnx-fp32-explicit"

    with pytest.raises(ExportError, match=re.escape("Format 'onnx' cannot take op 'com.microsoft::FusedConv'")):
        OnnxFormat()._check_graph(model, _Stub())
