"""The default model (backdrop/data/default_model.pt, retrained on real people) and the
lite checkpoint: phone-sized, say how they were made, and segment people they never saw,
measured against the held-out teacher labels committed in tests/data/heldout_labels.npz (no
teacher needed; the frames come from `make data`)."""

from __future__ import annotations

import numpy as np
import pytest

from backdrop.core.metrics import boundary_iou, iou
from backdrop.models import load_checkpoint
from backdrop.models.checkpoint import default_checkpoint_path
from backdrop.models.data import HELDOUT_CLIPS, HELDOUT_IMAGES
from backdrop.orchestration.heldout import COMMITTED_LABELS, items_from_labels, predict_item

DEFAULT = default_checkpoint_path()
LITE = default_checkpoint_path().parent / "lite_model.pt"

# Floors a little under what the shipped checkpoints measure (docs/model-card.md, `make evaluate`:
# default 0.723 / 0.418 overall, video call 0.962; lite 0.709). Only the video-call floor is the
# issue's target (0.95); the overall targets (0.92 / 0.75) are not met yet.
DEFAULT_FLOORS = {"video_call_iou": 0.95, "overall_iou": 0.70, "overall_biou": 0.40}
LITE_FLOORS = {"overall_iou": 0.68}
PHOTO_FLOORS = {"group_table": 0.50, "street_full_body": 0.28}


@pytest.fixture(scope="module")
def default():
    return load_checkpoint(DEFAULT)


@pytest.fixture(scope="module")
def items():
    return {it.name: it for it in items_from_labels(COMMITTED_LABELS)}


def test_default_is_phone_sized_and_documents_itself(default):
    assert DEFAULT.stat().st_size <= 8 * 1024 * 1024
    assert default.config.encoder.startswith("fbnetv3")
    meta = default.meta
    assert meta["train_config"]["name"] == "default"
    teachers = meta["teacher"]
    assert "Robust Video Matting" in teachers["rvm"]["teacher"]
    assert set(teachers["median"]["teachers"]) == {"rvm", "isnet", "selfie"}
    assert "train_state" not in meta
    assert meta["heldout_metrics"]["clip"] == "video_call"
    assert meta["heldout_metrics"]["clip_iou"] >= DEFAULT_FLOORS["video_call_iou"]


def test_committed_labels_cover_the_heldout_split(items):
    assert set(items) == set(HELDOUT_CLIPS) | {"carphone_pristine"} | set(HELDOUT_IMAGES)
    for it in items.values():
        assert it.groups.keys() >= {"framing", "people", "lighting", "skin_tone"}
        assert len(it.labels) == len(it.bgr) and it.labels[0].dtype == bool
        assert 0.02 < float(np.mean(it.labels[0])) < 0.9, it.name  # a person, not an empty or full mask
    assert items["carphone_pristine"].first_frame == 90
    assert {it.groups["framing"] for it in items.values()} >= {"head-and-shoulders", "half body", "full body"}


def test_video_call_with_mask_feedback(default, items):
    call = items["video_call"]
    call.bgr, call.labels = call.bgr[:24], call.labels[:24]  # the first second; the slow test runs all of it
    masks = predict_item(default.model, call)
    ious = [iou(m, t) for m, t in zip(masks, call.labels)]
    assert np.mean(ious) >= 0.93  # the first frame starts from an empty mask (0.908)
    assert np.mean([boundary_iou(m, t) for m, t in zip(masks, call.labels)]) >= 0.7


def test_group_and_full_body_photos(default, items):
    for name, floor in PHOTO_FLOORS.items():
        m = predict_item(default.model, items[name])[0]
        assert iou(m, items[name].labels[0]) >= floor, name


def test_lite_is_mediapipe_sized():
    lite = load_checkpoint(LITE)
    assert lite.meta["train_config"]["name"] == "lite"
    assert sum(p.numel() for p in lite.model.parameters()) < 500_000


@pytest.mark.slow
@pytest.mark.parametrize("which", ["default", "lite"])
def test_heldout_figures(which, tmp_path):
    from backdrop.orchestration.heldout import evaluate_checkpoint

    ckpt = DEFAULT if which == "default" else LITE
    r, _ = evaluate_checkpoint(ckpt, items_from_labels(COMMITTED_LABELS), tmp_path)
    o = r["overall"]
    if which == "lite":
        assert o["iou_mean"] >= LITE_FLOORS["overall_iou"]
        return
    assert o["iou_mean"] >= DEFAULT_FLOORS["overall_iou"]
    assert o["boundary_iou_mean"] >= DEFAULT_FLOORS["overall_biou"]
    assert r["items"]["video_call"]["iou_mean"] >= DEFAULT_FLOORS["video_call_iou"]
    classes = {(c["category"], c["class"]): c for c in r["groups"]["classes"]}
    assert ("framing", "full body") in classes and ("people", "2-6") in classes
    assert (tmp_path / "groups" / "report.json").is_file()
