"""The bundled default checkpoint: loads, is phone-sized, says how it was made, and produces real
person masks on held-out carphone frames (compared with the teacher's labels committed in
tests/data/carphone_heldout_teacher.npz, so no teacher venv is needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backdrop.core.frames import bgr_to_yuv
from backdrop.core.metrics import boundary_iou, iou
from backdrop.models import load_checkpoint
from backdrop.models.data import CARPHONE_HELDOUT_START, read_video_rgb
from backdrop.models.reference import ReferencePredictor

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "backdrop" / "data" / "default_model.pt"
LABELS = Path(__file__).parent / "data" / "carphone_heldout_teacher.npz"


@pytest.fixture(scope="module")
def default():
    return load_checkpoint(DEFAULT)


@pytest.fixture(scope="module")
def heldout(carphone_path):
    with np.load(LABELS, allow_pickle=False) as z:
        labels = z["masks"].astype(np.float32) / 255.0
        start = int(z["start"])
        meta = json.loads(str(z["meta_json"]))
    frames = read_video_rgb(carphone_path)[start : start + len(labels)]
    return [bgr_to_yuv(np.ascontiguousarray(f[:, :, ::-1])) for f in frames], labels, start, meta


def test_default_is_phone_sized_and_documents_itself(default):
    assert DEFAULT.stat().st_size <= 8 * 1024 * 1024
    assert default.config.encoder.startswith("fbnetv3")
    meta = default.meta
    assert meta["train_config"]["name"] == "default"
    assert "MediaPipe selfie segmentation" in meta["teacher"]["teacher"]
    assert meta["teacher"]["mediapipe_version"] == "0.10.21"
    assert "train_state" not in meta
    assert meta["heldout_metrics"]["clip_iou"] >= 0.9


def test_heldout_labels_are_the_tail_never_trained_on(heldout):
    _, labels, start, meta = heldout
    assert start == CARPHONE_HELDOUT_START and len(labels) == 120 - start
    assert meta["mediapipe_version"] == "0.10.21"


def test_first_heldout_frame_from_an_empty_state(default, heldout):
    frames, labels, _, _ = heldout
    mask = ReferencePredictor(default.model).step(frames[0]).mask
    assert mask.shape == labels[0].shape
    assert iou(mask, labels[0]) >= 0.9


def test_heldout_clip_with_mask_feedback(default, heldout):
    frames, labels, _, _ = heldout
    predictor = ReferencePredictor(default.model)
    masks = [predictor.step(f).mask for f in frames]
    ious = [iou(m, t) for m, t in zip(masks, labels)]
    assert np.mean(ious) >= 0.9
    assert min(ious) >= 0.8
    assert np.mean([boundary_iou(m, t) for m, t in zip(masks, labels)]) >= 0.5
