"""The reference predictor on the real carphone clip: format, feedback, resets, sizes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from backdrop.core.buckets import BucketSet
from backdrop.core.errors import InputError
from backdrop.core.maskio import load_masks
from backdrop.core.sources import iter_frames
from backdrop.models import load_checkpoint
from backdrop.models.reference import ReferencePredictor, bucket_input
from backdrop.orchestration.predict import PredictSpec, predict


def test_predict_on_real_clip_writes_documented_format(lite_checkpoint, carphone_path, tmp_path):
    out = tmp_path / "masks.npz"
    sheet = tmp_path / "sheet.png"
    result = predict(PredictSpec(carphone_path, out, lite_checkpoint, max_frames=12, overlay=sheet))
    assert result.num_frames == 12 and result.buckets_used == {"landscape_4x3": 12}
    seq = load_masks(out)
    assert len(seq) == 12
    assert seq.frame_names[0] == "frame_00000"
    assert seq.frame_sizes == [(144, 176)] * 12
    assert seq.resets == [True] + [False] * 11
    assert seq.threshold == 0.5
    assert seq.meta["checkpoint_sha256"] == result.checkpoint_sha256
    for m in seq.masks:
        assert m.dtype == np.float32 and 0.0 <= m.min() and m.max() <= 1.0
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[0] > 100


def test_mask_feedback_changes_the_next_frame(lite_checkpoint, carphone_path):
    """Frame 2 run after frame 1 differs from frame 2 run cold: the state really feeds back."""
    model = load_checkpoint(lite_checkpoint).model
    frames = [f.yuv for f in iter_frames(carphone_path, 2)]
    warm = ReferencePredictor(model)
    warm.step(frames[0])
    second = warm.step(frames[1])
    cold = ReferencePredictor(model).step(frames[1])
    assert not second.reset and cold.reset
    assert np.abs(second.mask - cold.mask).max() > 1e-4
    warm.reset()
    again = warm.step(frames[1])
    np.testing.assert_array_equal(again.mask, cold.mask)


def test_state_is_the_previous_bucket_probability(lite_checkpoint, carphone_path):
    model = load_checkpoint(lite_checkpoint).model
    frames = [f.yuv for f in iter_frames(carphone_path, 2)]
    pred = ReferencePredictor(model)
    first = pred.step(frames[0])
    x = bucket_input(frames[1], first.placement, first.bucket_mask)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(x)))[0, 0].numpy()
    np.testing.assert_allclose(pred.step(frames[1]).bucket_mask, expected, rtol=0, atol=1e-6)
    assert x.shape == (1, 4, 192, 256) and x[0, :3].max() <= 1.0


def test_bucket_change_resets_state_and_masks_keep_frame_size(lite_checkpoint, carphone_path):
    model = load_checkpoint(lite_checkpoint).model
    yuv = next(iter_frames(carphone_path, 1)).yuv
    portrait = np.ascontiguousarray(np.rot90(yuv))
    pred = ReferencePredictor(model, BucketSet.parse("land=96x128,port=128x96"))
    results = [pred.step(f) for f in (yuv, yuv, portrait, portrait, yuv)]
    assert [r.reset for r in results] == [True, False, True, False, True]
    assert [r.placement.bucket.name for r in results] == ["land", "land", "port", "port", "land"]
    assert results[2].mask.shape == (176, 144)


def test_image_folder_input_in_name_order(lite_checkpoint, carphone_path, tmp_path):
    frames = list(iter_frames(carphone_path, 3))
    folder = tmp_path / "frames"
    folder.mkdir()
    from backdrop.core.frames import yuv_to_bgr

    for f, name in zip(frames, ["b.png", "a.png", "c.png"]):
        cv2.imwrite(str(folder / name), yuv_to_bgr(f.yuv))
    out = tmp_path / "m.npz"
    predict(PredictSpec(folder, out, lite_checkpoint))
    assert load_masks(out).frame_names == ["a.png", "b.png", "c.png"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.mp4", "Input not found"),
        (lambda d: ((d / "empty").mkdir(), d / "empty")[1], "No images in"),
        (lambda d: ((d / "x.mp4").write_bytes(b"not a video"), d / "x.mp4")[1], "Could not open|holds no decodable frames"),
        (lambda d: ((d / "x.png").write_bytes(b"not a png"), d / "x.png")[1], "Could not read image"),
    ],
)
def test_bad_inputs_get_clear_errors(lite_checkpoint, tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        predict(PredictSpec(make(tmp_path), tmp_path / "o.npz", lite_checkpoint))
    assert not (tmp_path / "o.npz").exists()
