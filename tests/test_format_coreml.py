"""Core ML export (export/formats/coreml.py) and its Linux spec check.

Core ML cannot run here, so each stage is checked on the saved package: convert -> save ->
load the spec -> names, shapes, dtypes, states, deployment target, metadata -> the validator
accepts it -> the validator rejects a wrong artifact, a flexible shape, a bad pad, and warns
(``ane:``) on a state the Neural Engine cannot take.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import coremltools as ct  # noqa: E402  (a pinned dependency: never skipped)
import numpy as np
import pytest
import torch
from torch import nn

from backdrop.core.buckets import Bucket
from backdrop.export.artifact import Artifact, TensorSpec, io_specs
from backdrop.export.formats import FORMATS, ExportError, ExportRequest
from backdrop.export.formats.coreml import VERIFICATION_NOTE, CoreMLFormat, validate_coreml_spec
from backdrop.models import build_model

pytestmark = [
    # Upstream noise, scoped to this module: coremltools' torch frontend calls its own
    # deprecated registry method per op, and torch.export's pytree warns on every export.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:coremltools.*"),
    pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\).*:FutureWarning"),
]

BUCKET = Bucket("test_2x3", 64, 96)  # sides multiples of 32
SPEC_VERSION = {"native": 9, "explicit": 7}  # iOS 18, iOS 16


def _export_lite(tmp_path_factory, form: str) -> Artifact:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp(f"coreml-{form}")
    [art] = CoreMLFormat(progress=False).export(ExportRequest(build_model("lite"), BUCKET, form, "fp16", out))
    return art


# One fixture per form (about 10-15 s each on 2 cores), so that a failure names its form.
@pytest.fixture(scope="module")
def lite_native(tmp_path_factory) -> Artifact:
    return _export_lite(tmp_path_factory, "native")


@pytest.fixture(scope="module")
def lite_explicit(tmp_path_factory) -> Artifact:
    return _export_lite(tmp_path_factory, "explicit")


def _lite(request, form: str) -> Artifact:
    return request.getfixturevalue(f"lite_{form}")


class _TinySegmenter(nn.Module):
    """Stands in for a Segmenter where only the export path is under test (4 -> 1 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _spec(path):
    return ct.utils.load_spec(str(path))


def _features(features) -> list[tuple[str, tuple[int, ...], str]]:
    out = []
    for f in features:
        t = f.type
        arr = t.stateType.arrayType if t.WhichOneof("Type") == "stateType" else t.multiArrayType
        dtype = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(arr.dataType).lower()
        out.append((f.name, tuple(arr.shape), dtype))
    return out


def _expected(specs) -> list[tuple[str, tuple[int, ...], str]]:
    return [(s.name, s.shape, s.dtype) for s in specs]


def test_registered():
    fmt = FORMATS.get("coreml")
    assert isinstance(fmt, CoreMLFormat)
    assert (fmt.name, fmt.runtime) == ("coreml", "coreml")
    assert set(fmt.state_forms) == {"native", "explicit"}
    assert fmt.precisions == ("fp16", "int8", "palette6")  # compressed ones: test_coreml_compression.py


@pytest.mark.parametrize("form", ["native", "explicit"])
def test_spec_matches_io_specs(request, form):
    art = _lite(request, form)
    assert art.path.name == f"model-coreml-fp16-{form}.mlpackage"
    assert art.path.is_dir()
    inputs, outputs, states = io_specs(form, BUCKET.height, BUCKET.width, dtype="float16")
    assert (art.inputs, art.outputs, art.states) == (inputs, outputs, states)

    spec = _spec(art.path)
    assert spec.WhichOneof("Type") == "mlProgram"
    assert spec.specificationVersion == SPEC_VERSION[form]
    assert _features(spec.description.input) == _expected(inputs)
    assert _features(spec.description.output) == _expected(outputs)
    assert _features(spec.description.state) == _expected(states)
    for f in spec.description.input:
        assert f.type.multiArrayType.WhichOneof("ShapeFlexibility") is None

    assert art.verified is None
    assert art.verification_note == VERIFICATION_NOTE
    assert art.details["deployment_target"] == {"native": "iOS18", "explicit": "iOS16"}[form]
    assert art.details["mil_ops"]["conv"] > 0


def test_native_form_reads_and_writes_its_state(lite_native):
    ops = lite_native.details["mil_ops"]
    assert ops["read_state"] == 1 and ops["write_state"] == 1


def test_explicit_outputs_are_two_distinct_features(lite_explicit):
    # The wrapper returns (mask, mask); coremltools would name both outputs after one var.
    art = lite_explicit
    assert [f.name for f in _spec(art.path).description.output] == ["mask", "next_mask"]
    assert art.details["mil_ops"]["identity"] == 1


@pytest.mark.parametrize("form", ["native", "explicit"])
def test_metadata_in_model(request, form):
    art = _lite(request, form)
    meta = _spec(art.path).description.metadata
    user = dict(meta.userDefined)
    assert user["backdrop.version"]
    assert user["backdrop.state_form"] == form
    assert user["backdrop.precision"] == "fp16"
    assert json.loads(user["backdrop.bucket"]) == {"name": BUCKET.name, "height": 64, "width": 96}
    assert json.loads(user["backdrop.inputs"]) == [t.to_dict() for t in art.inputs]
    assert json.loads(user["backdrop.outputs"]) == [t.to_dict() for t in art.outputs]
    assert json.loads(user["backdrop.states"]) == [t.to_dict() for t in art.states]
    assert json.loads(user["backdrop.model_config"])["encoder"] == "lite"
    assert "com.github.apple.coremltools.conversion_date" not in user  # repeatable files
    assert "reset" in meta.shortDescription and BUCKET.size in meta.shortDescription
    described = {f.name: f.shortDescription for f in _spec(art.path).description.input}
    assert all(described.values()), described


@pytest.mark.parametrize("form", ["native", "explicit"])
def test_validator_accepts_the_export(request, form):
    art = _lite(request, form)
    check = validate_coreml_spec(art.path, art)
    assert check.errors == [] and check.warnings == []
    assert check.ok and check.ane_compatible


def test_validator_catches_wrong_name_shape_and_dtype(lite_explicit):
    art = lite_explicit
    frame, prev = art.inputs
    mask, nxt = art.outputs
    wrong = dataclasses.replace(
        art,
        inputs=(frame, dataclasses.replace(prev, name="previous_mask")),
        outputs=(dataclasses.replace(mask, shape=(1, 1, 96, 64)), dataclasses.replace(nxt, dtype="float32")),
    )
    errors = validate_coreml_spec(art.path, wrong).errors
    text = "\n".join(errors)
    assert "input names are ['frame', 'prev_mask'], expected ['frame', 'previous_mask']" in text
    assert "output 'mask' has shape (1, 1, 64, 96), expected (1, 1, 96, 64)" in text
    assert "output 'next_mask' has dtype float16, expected float32" in text


def test_validator_catches_wrong_state_form(lite_native):
    art = lite_native
    inputs, outputs, states = io_specs("explicit", BUCKET.height, BUCKET.width, dtype="float16")
    claimed = dataclasses.replace(art, state_form="explicit", inputs=inputs, outputs=outputs, states=states)
    text = "\n".join(validate_coreml_spec(art.path, claimed).errors)
    assert "specification version 9, expected 7 (iOS16" in text
    assert "state names are ['mask_state'], expected []" in text
    assert "backdrop.state_form is 'native', expected 'explicit'" in text


def test_validator_catches_wrong_precision(lite_explicit):
    # An fp16 package claimed as compressed: no compressed weights, metadata disagrees.
    art = lite_explicit
    text = "\n".join(validate_coreml_spec(art.path, dataclasses.replace(art, precision="palette6")).errors)
    assert "a palette6 package has no compressed weights (no constexpr_lut_to_dense op)" in text
    assert "metadata backdrop.precision is 'fp16', expected 'palette6'" in text


def test_validator_rejects_flexible_shape(lite_explicit, tmp_path):
    art = lite_explicit
    copy = tmp_path / art.path.name
    shutil.copytree(art.path, copy)
    spec = _spec(copy)
    ranges = spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges
    for d in (1, 3, 64, 96):
        ranges.add(lowerBound=d, upperBound=d if d != 64 else 128)
    (copy / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(spec.SerializeToString())
    errors = validate_coreml_spec(copy, art).errors
    assert len(errors) == 1 and "input 'frame' has a flexible shape (shapeRange)" in errors[0]


def test_validator_rejects_missing_package(tmp_path, lite_native):
    errors = validate_coreml_spec(tmp_path / "nothing.mlpackage", lite_native).errors
    assert errors == ["nothing.mlpackage: not an .mlpackage directory (no Manifest.json)"]


def test_ane_warning_on_state_sides_not_multiple_of_32(tmp_path, capfd):
    bucket = Bucket("odd", 48, 80)
    request = ExportRequest(_TinySegmenter().eval(), bucket, "native", "fp16", tmp_path)
    [art] = CoreMLFormat(progress=False).export(request)
    assert "passes/s" not in capfd.readouterr().err  # progress bars dropped
    check = validate_coreml_spec(art.path, art)
    assert check.errors == []
    assert len(check.warnings) == 1 and check.warnings[0].startswith("ane: state 'mask_state'")
    assert "48, 80 are not multiples of 32" in check.warnings[0]
    assert not check.ane_compatible


def test_validator_rejects_replicate_pad_outside_last_two_dims(tmp_path):
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 8, 8), dtype=types.fp16)], opset_version=ct.target.iOS16)
    def prog(frame):
        on_channels = mb.pad(x=frame, pad=np.array([1, 1, 0, 0, 0, 0], np.int32), mode="replicate", name="bad_pad")
        on_sides = mb.pad(x=frame, pad=np.array([0, 0, 1, 1, 2, 2], np.int32), mode="reflect", name="ok_pad")
        zeros = mb.pad(x=frame, pad=np.array([1, 1, 0, 0, 0, 0], np.int32), mode="constant", name="const_pad")
        parts = [mb.slice_by_size(x=v, begin=[0, 0, 0, 0], size=[1, 3, 8, 8]) for v in (on_channels, on_sides, zeros)]
        return mb.add(x=mb.add(x=parts[0], y=parts[1]), y=parts[2], name="mask")

    mlmodel = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16)
    mlmodel.user_defined_metadata["backdrop.state_form"] = "explicit"
    mlmodel.user_defined_metadata["backdrop.precision"] = "fp16"
    path = tmp_path / "pad.mlpackage"
    mlmodel.save(str(path))
    spec8 = TensorSpec("frame", (1, 3, 8, 8), "float16", "NCHW", (0.0, 1.0), "test")
    art = Artifact(
        path=path, format="coreml", runtime="coreml", precision="fp16", state_form="explicit",
        bucket=Bucket("tiny", 8, 8), inputs=(spec8,), outputs=(dataclasses.replace(spec8, name="mask"),), states=(),
    )
    errors = validate_coreml_spec(path, art).errors
    assert len(errors) == 1, errors
    assert "replicate pad op 'bad_pad" in errors[0] and "only in the last two dimensions" in errors[0]


@pytest.mark.parametrize(
    ("precision", "form", "message"),
    [
        ("bf16", "native", "Format 'coreml' cannot export precision 'bf16'; supported: fp16, int8, palette6."),
        ("fp32", "explicit", "Format 'coreml' cannot export precision 'fp32'; supported: fp16, int8, palette6."),
        ("fp16", "stateless", "Format 'coreml' has no state form 'stateless'; supported: native, explicit."),
    ],
)
def test_unsupported_request_raises_before_work(tmp_path, precision, form, message):
    request = ExportRequest(_TinySegmenter(), BUCKET, form, precision, tmp_path)
    with pytest.raises(ExportError) as e:
        FORMATS.get("coreml").export(request)
    assert str(e.value) == message
    assert not any(tmp_path.iterdir())



def test_export_is_repeatable_byte_for_byte(tmp_path):
    from backdrop.export.artifact import tree_sha256

    model = _TinySegmenter().eval()
    fmt = CoreMLFormat(progress=False)
    first, second = (
        fmt.export(ExportRequest(model, Bucket("tiny", 32, 32), "explicit", "fp16", tmp_path / d))[0] for d in "ab"
    )
    assert tree_sha256(first.path) == tree_sha256(second.path)
    assert not (first.path / "executorch_debug_handle_mapping.json").exists()
    assert validate_coreml_spec(first.path, first).ok


def test_unconvertible_op_is_named(tmp_path):
    class WithErfcx(_TinySegmenter):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.special.erfcx(self.conv(x))

    request = ExportRequest(WithErfcx().eval(), Bucket("tiny", 32, 32), "explicit", "fp16", tmp_path)
    with pytest.raises(
        ExportError,
        match=(
            rf"^Core ML \(coremltools {re.escape(ct.__version__)}\) cannot convert op 'special_erfcx' "
            rf"in tiny 32x32/explicit\."
        ),
    ):
        CoreMLFormat(progress=False).export(request)
