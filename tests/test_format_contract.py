"""One contract for every registered format, over its state forms x precisions (the registry,
not a hand-written list, drives the parameters): file names, the kinds of file written, the
self-description inside each file, determinism, and loading and running one frame where this
machine has the runtime (the float files: parity over a real golden sequence on the host).
Slow: every combination is exported (twice for determinism)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backdrop.core.buckets import Bucket
from backdrop.core.contract import state_rule
from backdrop.device_tests.base import first_frame_feed
from backdrop.device_tests.host import HostDevice
from backdrop.device_tests.parity import check_parity
from backdrop.export.artifact import Artifact, tree_sha256
from backdrop.export.formats import FORMATS, ExportRequest
from backdrop.export.goldens import make_golden
from backdrop.models import build_model
from helpers import structure_head

BUCKET = Bucket("tiny", 48, 64)
CASES = [
    (name, form, precision)
    for name in FORMATS.names()
    for form in FORMATS.get(name).state_forms
    for precision in FORMATS.get(name).precisions
]


@pytest.fixture(scope="module")
def model(carphone_path):
    torch.manual_seed(0)
    return structure_head(build_model("lite").eval(), carphone_path, BUCKET)


@pytest.fixture(scope="module")
def golden(model):
    return make_golden(model, BUCKET, num_frames=30, reset_at=15)


class _Golden:
    """The two fields ``first_frame_feed`` reads: one real-looking frame."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.frames = rng.uniform(0, 1, (1, 3, BUCKET.height, BUCKET.width)).astype(np.float32)


def _export(model, name, form, precision, out) -> list[Artifact]:
    return FORMATS.get(name).export(ExportRequest(model, BUCKET, form, precision, out, name))


@pytest.mark.slow
@pytest.mark.parametrize("name, form, precision", CASES, ids=["-".join(c) for c in CASES])
def test_format_contract(model, golden, tmp_path, name, form, precision):
    fmt = FORMATS.get(name)
    made = _export(model, name, form, precision, tmp_path / "a")
    assert [a.format for a in made] == [k.name for k in fmt.kinds if form in k.state_forms]
    for art, kind in zip(made, [k for k in fmt.kinds if form in k.state_forms]):
        assert art.path.name.endswith(kind.suffix) and form in art.path.name and precision in art.path.name
        assert (art.state_form, art.precision, art.bucket, art.runtime) == (form, precision, BUCKET, kind.runtime)
        assert [s.name for s in art.inputs] == list(state_rule(form).inputs)
        assert [s.name for s in art.outputs] == list(state_rule(form).outputs)
        described = fmt.read_description(art)
        if described is not None:
            want = art.description(model.config.to_dict(), torch.__version__, fmt.reset_alternative).fields()
            for key in ("format", "precision", "state_form", "bucket", "inputs", "outputs", "states", "feedback"):
                assert described[key] == want[key], key
        why = fmt.why_not_here(art)
        if not why:
            outs = fmt.load(art)(first_frame_feed(art, _Golden()))
            assert [tuple(np.shape(o)) for o in outs] == [s.shape for s in art.outputs]
            assert all(np.isfinite(np.asarray(o, np.float32)).all() for o in outs)
            if precision == "fp32":  # the float file: parity over a real sequence, state carried, reset
                rec = check_parity(art, golden, HostDevice())
                assert rec.passed, rec.message
    if precision == fmt.precisions[0]:
        again = _export(model, name, form, precision, tmp_path / "b")
        for a, b in zip(made, again):
            if FORMATS.kind_of(a.format).same_bytes_in_process:
                assert tree_sha256(a.path) == tree_sha256(b.path), f"{a.key}: two exports differ"
