"""Training stage: losses on hand-made masks, sample synthesis, teacher caches, configs, and tiny
training runs (reproducible, and resume == uninterrupted).

Training runs here use the ``lite`` variant on tiny synthetic pools at a fifth of the bucket
size, so they take seconds; the real data and recipe are exercised by `backdrop train`.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from backdrop.core.buckets import DEFAULT_BUCKETS
from backdrop.core.errors import ConfigError, InputError
from backdrop.models.augment import AugmentConfig, PrevMaskConfig, make_sample, synthesize_prev_mask
from backdrop.models.data import TEACHER_FORMAT, Sample, TrainingData, load_teacher_cache, quantize_labels
from backdrop.models.losses import boundary_width, inner_boundary, segmentation_loss
from backdrop.models.train import TrainConfig, load_train_config, make_batch, train, train_bucket

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------
# losses
# ------------------------------------------------------------------------------------------


def _t(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask.astype(np.float32))[None, None]


def test_boundary_width_matches_boundary_iou_rule():
    assert boundary_width(100, 100) == 3  # 0.02 * 141.42 = 2.83 -> 3
    assert boundary_width(144, 256) == 6  # 0.02 * 293.7 = 5.87 -> 6
    assert boundary_width(10, 10) == 1  # max(1, round(0.28))


def test_inner_boundary_of_a_square_is_its_ring():
    m = np.zeros((20, 20), np.float32)
    m[5:15, 5:15] = 1
    band = inner_boundary(_t(m), 1)[0, 0].numpy()
    expected = m.copy()
    expected[6:14, 6:14] = 0  # 10x10 minus the 8x8 interior: 36 pixels
    np.testing.assert_array_equal(band, expected)
    assert band.sum() == 36


def test_inner_boundary_counts_image_border_as_background():
    m = np.ones((8, 8), np.float32)
    band = inner_boundary(_t(m), 2)[0, 0].numpy()
    assert band.sum() == 64 - 16  # only the 4x4 centre survives a 2-step erosion


def test_loss_is_small_for_a_confident_correct_prediction():
    m = np.zeros((32, 32), np.float32)
    m[8:24, 8:24] = 1
    logits = _t(m * 20 - 10)
    terms = segmentation_loss(logits, _t(m), boundary_weight=1.0)
    assert float(terms.bce) < 1e-4 and float(terms.boundary) < 1e-4


def test_boundary_term_off_gives_plain_bce():
    m = np.zeros((32, 32), np.float32)
    m[8:24, 8:24] = 1
    logits = torch.zeros(1, 1, 32, 32)
    t = segmentation_loss(logits, _t(m), boundary_weight=0.0)
    assert float(t.total) == pytest.approx(float(np.log(2)), rel=1e-5)
    assert float(t.boundary) == 0.0


def test_boundary_region_includes_the_predictions_false_boundary():
    """A false blob far from the label is in the prediction's band, so the boundary term sees it."""
    label = np.zeros((64, 64), np.float32)
    label[8:24, 8:24] = 1
    pred = label.copy()
    pred[40:56, 40:56] = 1  # a false positive blob
    logits = _t(pred * 8 - 4)
    with_pred = segmentation_loss(logits, _t(label), boundary_weight=1.0)
    clean = segmentation_loss(_t(label * 8 - 4), _t(label), boundary_weight=1.0)
    # the blob's ring is about as large as the label's ring: the boundary BCE must rise a lot
    assert float(with_pred.boundary) > 10 * float(clean.boundary)


def test_hard_label_mode_thresholds_the_teacher():
    soft = torch.full((1, 1, 4, 4), 0.7)
    logits = torch.full((1, 1, 4, 4), 10.0)
    assert float(segmentation_loss(logits, soft, boundary_weight=0, label_mode="hard").total) < 1e-3
    assert float(segmentation_loss(logits, soft, boundary_weight=0, label_mode="soft").total) > 1.0


# ------------------------------------------------------------------------------------------
# previous-mask synthesis and samples
# ------------------------------------------------------------------------------------------


def _person_label(h: int = 48, w: int = 64) -> np.ndarray:
    lab = np.zeros((h, w), np.float32)
    lab[h // 4 :, w // 3 : 2 * w // 3] = 1.0
    return lab


def test_prev_mask_disabled_or_first_frame_is_zeros():
    lab = _person_label()
    rng = np.random.default_rng(0)
    assert not synthesize_prev_mask(lab, rng, PrevMaskConfig(enabled=False)).any()
    assert not synthesize_prev_mask(lab, rng, PrevMaskConfig(empty_prob=1.0)).any()


def test_prev_mask_without_errors_is_the_label():
    cfg = PrevMaskConfig(empty_prob=0, garbage_prob=0, max_shift=0, max_scale=0, max_morph=0,
                         blob_prob=0, hole_prob=0, blur_prob=0)
    lab = _person_label()
    np.testing.assert_allclose(synthesize_prev_mask(lab, np.random.default_rng(3), cfg), lab, atol=1e-6)


def test_prev_mask_has_realistic_errors_and_is_seeded():
    lab = _person_label()
    cfg = PrevMaskConfig()
    outs = [synthesize_prev_mask(lab, np.random.default_rng(s), cfg) for s in range(200)]
    for o in outs:
        assert o.shape == lab.shape and o.dtype == np.float32
        assert o.min() >= 0 and o.max() <= 1
    empty = sum(not o.any() for o in outs)
    assert 25 <= empty <= 80  # empty_prob 0.25 of 200, loosely
    ious = []
    for o in outs:
        if o.any():
            p, g = o >= 0.5, lab >= 0.5
            ious.append((p & g).sum() / max((p | g).sum(), 1))
    ious = np.array(ious)
    assert np.median(ious) > 0.6  # mostly close to the label ...
    assert (ious < 0.98).mean() > 0.5  # ... but usually wrong somewhere
    again = synthesize_prev_mask(lab, np.random.default_rng(7), cfg)
    np.testing.assert_array_equal(again, outs[7])


def _tiny_data() -> TrainingData:
    rng = np.random.default_rng(0)
    persons, bgs = [], []
    for i in range(3):
        rgb = rng.integers(0, 255, (36, 44, 3), dtype=np.uint8)
        lab = _person_label(36, 44)
        rgb[lab > 0.5] = (200, 150, 120)
        persons.append(Sample(rgb, lab, "carphone_pristine", i))
    persons.append(Sample(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8), _person_label(40, 30), "astronaut", 0))
    for i in range(2):
        bgs.append(Sample(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8), np.zeros((30, 50), np.float32), "bikes", i))
    return TrainingData(persons, bgs, {"teacher": "synthetic"})


@pytest.mark.parametrize("bucket_name", DEFAULT_BUCKETS.names())
def test_make_sample_fills_every_bucket(bucket_name):
    data = _tiny_data()
    bucket = train_bucket(DEFAULT_BUCKETS.get(bucket_name), 0.25)
    x, y = make_sample(data.persons[0], data.backgrounds[0], bucket, np.random.default_rng(1), AugmentConfig(), PrevMaskConfig())
    assert x.shape == (4, bucket.height, bucket.width) and y.shape == (1, bucket.height, bucket.width)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 and 0 <= y.min() and y.max() <= 1
    x2, y2 = make_sample(
        data.persons[0], data.backgrounds[0], bucket, np.random.default_rng(1), AugmentConfig(), PrevMaskConfig()
    )
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_batches_are_grouped_by_bucket_and_depend_only_on_step():
    cfg = TrainConfig(variant="lite", batch_size=3, resolution_schedule=((1.0, 0.25),))
    data = _tiny_data()
    x, y, bucket = make_batch(cfg, data, 5)
    assert x.shape == (3, 4, bucket.height, bucket.width) and y.shape == (3, 1, bucket.height, bucket.width)
    x2, _, b2 = make_batch(cfg, data, 5)
    assert b2 == bucket and torch.equal(x, x2)
    sizes = {make_batch(cfg, data, s)[2].name for s in range(40)}
    assert sizes == set(DEFAULT_BUCKETS.names())


# ------------------------------------------------------------------------------------------
# teacher caches
# ------------------------------------------------------------------------------------------


def _write_cache(path: Path, masks: list[np.ndarray]) -> None:
    arrays = {
        "format": np.array(TEACHER_FORMAT),
        "format_version": np.array(1, dtype=np.int64),
        "num_frames": np.array(len(masks), dtype=np.int64),
        "frame_names": np.array([f"frame_{i:05d}" for i in range(len(masks))]),
        "frame_sizes": np.array([m.shape for m in masks], dtype=np.int32),
        "meta_json": np.array(
            json.dumps({"teacher": "MediaPipe selfie segmentation (general 256x256)", "mediapipe_version": "0.10.21"})
        ),
    }
    for i, m in enumerate(masks):
        arrays[f"mask_{i:05d}"] = m
    np.savez_compressed(path, **arrays)


def test_teacher_cache_round_trip(tmp_path):
    masks = [np.random.default_rng(i).random((6, 8)).astype(np.float32) for i in range(3)] + [np.zeros((4, 5), np.float32)]
    _write_cache(tmp_path / "c.npz", masks)
    labels = load_teacher_cache(tmp_path / "c.npz")
    assert len(labels.masks) == 4 and labels.names[3] == "frame_00003"
    assert labels.meta["mediapipe_version"] == "0.10.21"
    for a, b in zip(labels.masks, masks):
        np.testing.assert_array_equal(a, b)
    q = quantize_labels(masks[:3])
    assert q.dtype == np.uint8 and np.abs(q / 255.0 - np.stack(masks[:3])).max() <= 0.5 / 255 + 1e-7


def test_teacher_cache_errors_say_what_to_do(tmp_path):
    with pytest.raises(InputError, match="backdrop labels"):
        load_teacher_cache(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="not a teacher label cache"):
        load_teacher_cache(tmp_path / "other.npz")


def test_teacher_script_writes_the_format_the_loader_reads():
    spec = importlib.util.spec_from_file_location("teacher_labels", REPO / "scripts" / "teacher_labels.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # imports only the standard library at module level
    assert mod.FORMAT == TEACHER_FORMAT and mod.FORMAT_VERSION == 1


def test_labels_command_without_teacher_venv_says_make_teacher(tmp_path):
    from backdrop.orchestration.commands.train import teacher_python_path

    with pytest.raises(ConfigError, match="make teacher"):
        teacher_python_path(tmp_path / "no-venv" / "bin" / "python")


# ------------------------------------------------------------------------------------------
# configs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "ablation_full", "ablation_no_boundary", "ablation_no_feedback"])
def test_shipped_configs_load(name):
    cfg = load_train_config(REPO / "configs" / f"{name}.json")
    assert cfg.to_dict() == TrainConfig.from_dict(cfg.to_dict()).to_dict()


def test_ablation_configs_differ_from_full_in_one_thing():
    full = load_train_config(REPO / "configs" / "ablation_full.json").to_dict()
    for name, key in [("no_boundary", "boundary_weight"), ("no_feedback", "prev_mask")]:
        other = load_train_config(REPO / "configs" / f"ablation_{name}.json").to_dict()
        diff = {k for k in full if full[k] != other[k]} - {"name", "out_dir"}
        assert diff == {key}


def test_config_errors(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"stepz": 3}))
    with pytest.raises(ConfigError, match="stepz"):
        load_train_config(p)
    p.write_text(json.dumps({"resolution_schedule": [[0.5, 0.5]]}))
    with pytest.raises(ConfigError, match="ending at 1.0"):
        load_train_config(p)
    p.write_text(json.dumps({"variant": "fbnetv3_z"}))
    with pytest.raises(ConfigError):
        load_train_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "nope.json")


# ------------------------------------------------------------------------------------------
# tiny training runs
# ------------------------------------------------------------------------------------------


def _tiny_config(out: Path, **kw) -> TrainConfig:
    base = dict(name="tiny", variant="lite", steps=4, batch_size=2, warmup_steps=1, val_every=0,
                ckpt_every=2, resolution_schedule=((1.0, 0.2),), out_dir=str(out), num_threads=1)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from backdrop.models import load_checkpoint

    return load_checkpoint(path).model.state_dict()


def test_tiny_training_run_writes_a_loadable_checkpoint(tmp_path):
    from backdrop.models import load_checkpoint

    cfg = _tiny_config(tmp_path / "run", export_path=str(tmp_path / "exported.pt"))
    result = train(cfg, progress=False, data=_tiny_data())
    assert np.isfinite(result.final_loss)
    ckpt = load_checkpoint(result.final_checkpoint)
    assert ckpt.meta["train_config"] == cfg.to_dict()
    assert ckpt.meta["mask_feedback"] is True and ckpt.meta["step"] == 4
    assert "train_state" not in ckpt.meta  # the shipped file carries no optimizer state
    assert "train_state" in load_checkpoint(tmp_path / "run" / "last.pt").meta
    assert result.exported == tmp_path / "exported.pt" and result.exported.is_file()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 4


def test_training_is_reproducible_and_resume_matches_uninterrupted(tmp_path):
    data = _tiny_data()
    a = train(_tiny_config(tmp_path / "a", ckpt_every=3), progress=False, data=data)
    # a second identical run gives identical weights
    b = train(_tiny_config(tmp_path / "b", ckpt_every=3), progress=False, data=data)
    # an interrupted run (stopped after 2 steps) resumed from its own last.pt
    cfg_c = _tiny_config(tmp_path / "c", ckpt_every=3)
    stopped = train(cfg_c, progress=False, data=data, stop_after=2)
    assert stopped.steps == 2 and not (tmp_path / "c" / "final.pt").exists()
    c = train(cfg_c, resume=True, progress=False, data=data)
    wa, wb, wc = _weights(a.final_checkpoint), _weights(b.final_checkpoint), _weights(c.final_checkpoint)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
        assert torch.equal(wa[k], wc[k]), k
    last = _weights(tmp_path / "a" / "last.pt")
    assert all(torch.equal(wa[k], last[k]) for k in wa)


def test_resume_refuses_a_different_config_or_missing_checkpoint(tmp_path):
    data = _tiny_data()
    with pytest.raises(ConfigError, match="does not exist"):
        train(_tiny_config(tmp_path / "x"), resume=True, progress=False, data=data)
    train(_tiny_config(tmp_path / "x"), progress=False, data=data, stop_after=2)
    with pytest.raises(ConfigError, match="boundary_weight"):
        train(_tiny_config(tmp_path / "x", boundary_weight=0.5), resume=True, progress=False, data=data)
