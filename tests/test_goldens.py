"""Golden sequences: real carphone frames framed to the bucket, the camera buffer an app gets,
the model input made from the *decoded* buffer, and the reference output after every frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from backdrop.core.buckets import Bucket, BucketSet, plan
from backdrop.core.errors import ConfigError
from backdrop.core.frames import nv12_to_yuv, nv21_to_yuv, yuv_to_nv21
from backdrop.core.sources import iter_frames
from backdrop.export.goldens import (
    MIN_FRAMES,
    NPZ_KEYS,
    GoldenError,
    crop_box,
    load_golden,
    make_golden,
    save_golden,
)
from backdrop.models import build_model
from backdrop.models.reference import ReferencePredictor, bucket_input

BUCKET = Bucket("t", 64, 96)
N, RESET_AT = 30, 15


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("lite")


@pytest.fixture(scope="module")
def golden(model):
    return make_golden(model, BUCKET, "nv21", num_frames=N, reset_at=RESET_AT)


def test_frames_are_the_real_clip_centre_cropped_to_the_bucket_aspect(golden, carphone_path):
    top, left, ch, cw = crop_box(144, 176, BUCKET)
    assert (golden.camera_height, golden.camera_width) == (ch, cw) == (118, 176)
    assert ch % 2 == 0 and cw % 2 == 0
    assert abs(cw / ch - BUCKET.aspect) < 0.02
    assert "carphone_pristine.mp4" in golden.source and "sha256" in golden.source
    assert golden.frame_names == [f"frame_{i:05d}" for i in range(N)]
    for i, frame in enumerate(iter_frames(carphone_path, N)):
        crop = np.ascontiguousarray(frame.yuv[top : top + ch, left : left + cw])
        np.testing.assert_array_equal(golden.camera_buffers[i], yuv_to_nv21(crop))
    # Real video: textured, and moving from frame to frame.
    y = golden.frames[:, 0]
    assert y.std() > 0.1
    assert np.abs(y[1:] - y[:-1]).mean() > 1e-3


@pytest.mark.parametrize(
    "bucket, box",
    [
        (Bucket("l43", 192, 256), (6, 0, 132, 176)),
        (Bucket("p916", 288, 160), (0, 48, 144, 80)),
        (Bucket("l169", 160, 288), (23, 0, 98, 176)),
        (Bucket("sq", 224, 224), (0, 16, 144, 144)),
        (Bucket("p34", 256, 192), (0, 34, 144, 108)),
    ],
)
def test_crop_rule_examples(bucket, box):
    assert crop_box(144, 176, bucket) == box
    _, _, ch, cw = box


def test_resets_at_frame_zero_and_mid_sequence(golden):
    assert golden.reset_indices == [0, RESET_AT]
    assert golden.resets.dtype == bool and golden.resets.shape == (N,)


def test_camera_buffer_decodes_to_the_model_input(golden):
    p = plan(golden.camera_height, golden.camera_width, BUCKET)
    assert golden.placement == p.to_dict()
    zeros = np.zeros((BUCKET.height, BUCKET.width), np.float32)
    for i in range(N):
        yuv = nv21_to_yuv(golden.camera_buffers[i], golden.camera_width, golden.camera_height)
        np.testing.assert_array_equal(golden.frames[i], bucket_input(yuv, p, zeros)[0, :3])
    assert golden.frames.dtype == np.float32
    assert 0.0 <= golden.frames.min() and golden.frames.max() <= 1.0


def test_expected_values_equal_a_fresh_reference_run(golden, model):
    predictor = ReferencePredictor(model, BucketSet((BUCKET,)))
    for i in range(N):
        if i == RESET_AT:
            predictor.reset()
        yuv = nv21_to_yuv(golden.camera_buffers[i], golden.camera_width, golden.camera_height)
        result = predictor.step(yuv)
        assert result.reset == golden.resets[i]
        np.testing.assert_array_equal(golden.expected_masks[i, 0], result.bucket_mask)
        np.testing.assert_array_equal(golden.expected_camera_masks[i], result.mask)
    # The state matters: without the mid-sequence reset frame RESET_AT comes out differently.
    predictor = ReferencePredictor(model, BucketSet((BUCKET,)))
    for i in range(RESET_AT + 1):
        yuv = nv21_to_yuv(golden.camera_buffers[i], golden.camera_width, golden.camera_height)
        carried = predictor.step(yuv).bucket_mask
    assert not np.array_equal(carried, golden.expected_masks[RESET_AT, 0])


def test_save_load_roundtrip_keeps_exact_float32(golden, tmp_path):
    path = save_golden(golden, tmp_path / "goldens" / "t.npz")
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.npz"]  # no temp file left
    with np.load(path, allow_pickle=False) as z:
        assert tuple(z.files) == NPZ_KEYS
        assert z["expected_masks"].dtype == np.float32 and z["frames"].dtype == np.float32
        assert z["camera_buffers"].dtype == np.uint8
    back = load_golden(path)
    for f in dataclasses.fields(golden):
        a, b = getattr(golden, f.name), getattr(back, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b
    assert path.stat().st_size < 4 * 1024 * 1024


def test_nv12_golden_decodes_with_nv12(model):
    g = make_golden(model, BUCKET, "nv12", num_frames=MIN_FRAMES, reset_at=10)
    p = plan(g.camera_height, g.camera_width, BUCKET)
    zeros = np.zeros((BUCKET.height, BUCKET.width), np.float32)
    yuv = nv12_to_yuv(g.camera_buffers[3], g.camera_width, g.camera_height)
    np.testing.assert_array_equal(g.frames[3], bucket_input(yuv, p, zeros)[0, :3])
    swapped = nv21_to_yuv(g.camera_buffers[3], g.camera_width, g.camera_height)
    assert not np.array_equal(swapped, yuv)
    assert g.reset_indices == [0, 10]


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"num_frames": 10, "reset_at": 5}, "at least 30 frames"),
        ({"reset_at": 0}, "reset_at must fall inside the sequence"),
        ({"num_frames": 30, "reset_at": 30}, "reset_at must fall inside the sequence"),
        ({"camera_format": "i420"}, "Unknown camera format 'i420'"),
    ],
)
def test_bad_arguments_say_what_to_change(model, kwargs, text):
    with pytest.raises(ConfigError, match=text):
        make_golden(model, BUCKET, **kwargs)


def test_load_errors_name_the_file_and_problem(golden, tmp_path):
    with pytest.raises(GoldenError, match="does not exist"):
        load_golden(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(GoldenError, match="not a readable .npz"):
        load_golden(bad)
    truncated = tmp_path / "truncated.npz"
    save_golden(golden, truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(GoldenError, match="not a readable .npz"):
        load_golden(truncated)
    partial = tmp_path / "partial.npz"
    np.savez_compressed(partial, frames=golden.frames)
    with pytest.raises(GoldenError, match=r"missing keys \['schema'"):
        load_golden(partial)
    wrong = tmp_path / "wrong.npz"
    save_golden(golden, wrong)
    with np.load(wrong) as z:
        arrays = dict(z)
    arrays["expected_masks"] = arrays["expected_masks"].astype(np.float16)
    np.savez_compressed(wrong, **arrays)
    with pytest.raises(GoldenError, match=r"expected_masks must be float32 \(30, 1, 64, 96\), got float16"):
        load_golden(wrong)
