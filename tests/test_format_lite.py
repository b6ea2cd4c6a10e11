"""PyTorch Lite export (export/formats/lite.py), checked through the host's lite interpreter:
state carried by the ``mask_state`` buffer exactly like NativeStateWrapper, ``reset()`` and
``reset = 1.0`` both clearing it, the explicit form's loop, and the embedded description.

Tolerances are for random weights (the outputs match to float rounding: both sides run
PyTorch's CPU kernels); trained-weight thresholds live with the parity check.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch.jit.mobile import _load_for_lite_interpreter

from backdrop import __version__
from backdrop.core.buckets import Bucket
from backdrop.export.artifact import io_specs
from backdrop.export.formats import FORMATS, ExportError, ExportRequest
from backdrop.export.formats.lite import METADATA_FILE
from backdrop.models.wrappers import wrap
from helpers import lively_lite

BUCKET = Bucket("small_2x3", 64, 96)
ATOL = 1e-4


@pytest.fixture(scope="module")
def model():
    return lively_lite()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("lite")
    fmt = FORMATS.get("torchscript-lite")
    return {form: fmt.export(ExportRequest(model, BUCKET, form, "fp32", out)) for form in ("native", "explicit")}


def frames(n, seed=11):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, BUCKET.height, BUCKET.width, generator=gen) for _ in range(n)]


def close(got, want):
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_registered_with_its_capabilities():
    fmt = FORMATS.get("torchscript-lite")
    assert (fmt.name, fmt.runtime) == ("torchscript-lite", "pytorch-lite")
    assert set(fmt.state_forms) == {"native", "explicit"}
    assert fmt.precisions == ("fp32", "int8")


@pytest.mark.parametrize("form", ["native", "explicit"])
def test_artifact_describes_the_file(exported, form):
    (art,) = exported[form]
    assert art.path.name == f"model-torchscript-lite-fp32-{form}.ptl"
    assert (art.format, art.runtime) == ("torchscript-lite", "pytorch-lite")
    assert (art.precision, art.state_form) == ("fp32", form)
    assert (art.inputs, art.outputs, art.states) == io_specs(form, BUCKET.height, BUCKET.width)
    assert art.details["bytecode_version"] >= 8
    assert "aten::_convolution" in art.details["operators"]
    assert "aten::batch_norm" not in art.details["operators"], "BatchNorm is folded by freezing"
    assert art.details["smoke_max_abs_diff"] <= ATOL


@pytest.mark.parametrize("form", ["native", "explicit"])
def test_embedded_metadata(exported, form, model):
    (art,) = exported[form]
    extra = {METADATA_FILE: ""}
    torch.jit.load(str(art.path), _extra_files=extra)
    meta = json.loads(extra[METADATA_FILE])
    assert meta["version"] == __version__
    assert (meta["format"], meta["precision"], meta["state_form"]) == ("torchscript-lite", "fp32", form)
    assert meta["bucket"] == {"name": BUCKET.name, "height": 64, "width": 96}
    assert meta["inputs"] == [s.to_dict() for s in art.inputs]
    assert meta["outputs"] == [s.to_dict() for s in art.outputs]
    assert meta["states"] == [s.to_dict() for s in art.states]
    assert meta["model_config"] == model.config.to_dict()
    assert [s["name"] for s in meta["inputs"]] == (["frame", "reset"] if form == "native" else ["frame", "prev_mask"])


def test_native_state_carries_like_the_pytorch_wrapper(exported, model):
    lite = _load_for_lite_interpreter(str(exported["native"][0].path))
    reference = wrap(model, "native", BUCKET.height, BUCKET.width)
    keep = torch.zeros(1)
    with torch.no_grad():
        outs = []
        for f in frames(3):  # the loaded state is zeros: no reset needed on the first call
            got, want = lite(f, keep), reference(f, keep)
            close(got, want)
            outs.append(got)
        # The state really is carried: the third frame from an empty state looks different.
        fresh = wrap(model, "native", BUCKET.height, BUCKET.width)(frames(3)[2], torch.ones(1))
    assert (fresh - outs[2]).abs().max() > 1e-3


def test_reset_method_and_reset_input_both_clear_the_state(exported, model):
    lite = _load_for_lite_interpreter(str(exported["native"][0].path))
    keep, clear = torch.zeros(1), torch.ones(1)
    f = frames(4, seed=5)
    with torch.no_grad():
        from_empty = wrap(model, "native", BUCKET.height, BUCKET.width)(f[3], clear)
        lite(f[0], keep)
        lite(f[1], keep)
        lite.run_method("reset")
        close(lite(f[3], keep), from_empty)
        lite(f[2], keep)
        close(lite(f[3], clear), from_empty)


def test_explicit_loop_matches_the_pytorch_wrapper(exported, model):
    lite = _load_for_lite_interpreter(str(exported["explicit"][0].path))
    reference = wrap(model, "explicit", BUCKET.height, BUCKET.width)
    prev_lite = prev_ref = torch.zeros(1, 1, BUCKET.height, BUCKET.width)
    with torch.no_grad():
        for f in frames(3):
            (mask, nxt), (want_mask, want_next) = lite(f, prev_lite), reference(f, prev_ref)
            close(mask, want_mask)
            close(nxt, want_next)
            prev_lite, prev_ref = nxt, want_next


def test_export_leaves_the_model_untouched(exported, model):
    # The exported module is traced and frozen from a copy; the eager model stays an eager,
    # eval-mode Segmenter with its own weights.
    assert type(model).__name__ == "Segmenter" and not model.training
    assert not isinstance(model, torch.jit.ScriptModule)


def test_unsupported_precision_names_format_and_precision(model, tmp_path):
    request = ExportRequest(model, BUCKET, "native", "fp16", tmp_path)
    with pytest.raises(ExportError, match=re.escape("Format 'torchscript-lite' cannot export precision 'fp16'")):
        FORMATS.get("torchscript-lite").export(request)
    assert not any(tmp_path.iterdir())


def test_unknown_state_form_is_refused(model, tmp_path):
    request = ExportRequest(model, BUCKET, "stateful", "fp32", tmp_path)
    with pytest.raises(ExportError, match=re.escape("Format 'torchscript-lite' cannot export state form 'stateful'")):
        FORMATS.get("torchscript-lite").export(request)
