"""Teacher votes (models/data.py) and the new augmentations (models/augment.py), on tiny synthetic data.

The teachers' caches are built here as :class:`TeacherLabels` with hand-made masks, so each label
rule (the RVM pick, the median of three, the max, the selfie-only rule) is checked against exact
arrays. The augmentation checks use 64x48 synthetic frames: a "person" whose label is a centred
ellipse and a background with an empty label.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import backdrop.models.data as data
from backdrop.core.buckets import DEFAULT_BUCKETS, Bucket
from backdrop.core.errors import ConfigError, InputError
from backdrop.models.augment import AugmentConfig, PrevMaskConfig, make_sample, make_scene, photometric
from backdrop.models.data import (
    CARPHONE_HELDOUT_START,
    HELDOUT_CLIPS,
    HELDOUT_IMAGES,
    SOURCES,
    Sample,
    SourceSpec,
    TeacherLabels,
    combine_teachers,
    label_rule,
    labels_dir,
    load_teacher_cache,
    load_training_data,
    source,
    teacher_cache_path,
    write_teacher_cache,
)

# ------------------------------------------------------------------------------------------
# teachers per source and label rules
# ------------------------------------------------------------------------------------------


def test_teachers_and_rules_per_kind_of_source():
    person_clip = SourceSpec("c", "video", "person", "o")
    person_still = SourceSpec("s", "image", "person", "o")
    media_background = SourceSpec("b", "video", "background", "o", media="pkg/b.mp4")
    media_background_still = SourceSpec("b2", "image", "background", "o", media="pkg/b.jpg")
    old_background = SourceSpec("o", "image", "background", "o")
    assert person_clip.teachers == ("rvm", "selfie") and label_rule(person_clip) == "rvm"
    assert person_still.teachers == ("rvm", "isnet", "selfie") and label_rule(person_still) == "median"
    assert media_background.teachers == ("rvm", "selfie") and label_rule(media_background) == "max"
    assert media_background_still.teachers == ("rvm", "selfie") and label_rule(media_background_still) == "max"
    assert old_background.teachers == ("selfie",) and label_rule(old_background) == "selfie"


@pytest.mark.parametrize("spec", SOURCES, ids=lambda s: s.name)
def test_every_source_has_its_rule(spec):
    rule = label_rule(spec)
    if spec.role == "person":
        assert rule == ("rvm" if spec.kind == "video" else "median")
        assert "rvm" in spec.teachers and "selfie" in spec.teachers
    elif spec.media:
        assert rule == "max"
    else:
        assert rule == "selfie" and spec.teachers == ("selfie",)
    assert len(set(spec.teachers)) == len(spec.teachers)


def test_named_sources():
    assert label_rule(source("carphone_pristine")) == "rvm"
    assert label_rule(source("astronaut")) == "median"
    assert label_rule(source("cartoon_sky")) == "max"
    assert label_rule(source("coffee")) == "selfie"
    assert label_rule(source("group_table")) == "median"  # held out, still voted the same way


# ------------------------------------------------------------------------------------------
# combine_teachers
# ------------------------------------------------------------------------------------------


def _cache(teacher: str, masks: list) -> TeacherLabels:
    meta = {"teacher": f"{teacher} teacher", "teacher_package": f"{teacher}-pkg", "model_file": f"{teacher}.onnx",
            "model_sha256": teacher[0] * 64, "extra": "not copied"}
    return TeacherLabels([np.asarray(m, np.float64) for m in masks], [f"frame_{i:05d}" for i in range(len(masks))], meta)


RVM = [[0.0, 0.2, 0.9], [0.6, 0.7, 0.1]]
ISNET = [[0.5, 0.1, 0.3], [0.4, 0.8, 0.2]]
SELFIE = [[1.0, 0.4, 0.6], [0.9, 0.6, 0.0]]


def test_median_of_three_on_stills():
    spec = source("astronaut")
    caches = {"rvm": _cache("rvm", [RVM]), "isnet": _cache("isnet", [ISNET]), "selfie": _cache("selfie", [SELFIE])}
    masks, meta = combine_teachers(spec, caches)
    assert len(masks) == 1 and masks[0].dtype == np.float32 and masks[0].flags.c_contiguous
    np.testing.assert_allclose(masks[0], np.array([[0.5, 0.2, 0.6], [0.6, 0.7, 0.1]], np.float32), rtol=0, atol=1e-7)
    # hard votes (>= 0.5): all agree on pixels (0,1) [no,no,no], (1,1) [yes,yes,yes] and (1,2) [no,no,no]
    assert meta["agreement_mean"] == pytest.approx(3 / 6)
    assert meta["rule"] == "median" and meta["teacher"] == "median of RVM, ISNet, MediaPipe selfie"
    assert meta["source"] == "astronaut" and meta["num_frames"] == 1
    assert meta["teachers"]["isnet"] == {"teacher": "isnet teacher", "teacher_package": "isnet-pkg",
                                         "model_file": "isnet.onnx", "model_sha256": "i" * 64}
    assert set(meta["teachers"]) == {"rvm", "isnet", "selfie"}


def test_max_on_media_backgrounds():
    spec = source("cartoon_sky")
    caches = {"rvm": _cache("rvm", [RVM, ISNET]), "selfie": _cache("selfie", [SELFIE, RVM])}
    masks, meta = combine_teachers(spec, caches)
    np.testing.assert_array_equal(masks[0], np.maximum(RVM, SELFIE).astype(np.float32))
    np.testing.assert_array_equal(masks[1], np.maximum(ISNET, RVM).astype(np.float32))
    np.testing.assert_allclose(masks[0], [[1.0, 0.4, 0.9], [0.9, 0.7, 0.1]], atol=1e-7)
    # frame 0: rvm [F F T / T T F] vs selfie [T F T / T T F] -> 5 of 6 agree; frame 1: isnet [T F F / F T F] -> 3 of 6
    assert meta["agreement_mean"] == pytest.approx((5 / 6 + 3 / 6) / 2)
    assert meta["rule"] == "max" and meta["teacher"] == "max of RVM, MediaPipe selfie" and meta["num_frames"] == 2


def test_rvm_pick_on_person_clips():
    spec = source("carphone_pristine")
    frames = [RVM, ISNET, SELFIE]
    caches = {"rvm": _cache("rvm", frames), "selfie": _cache("selfie", [SELFIE, SELFIE, SELFIE]),
              "isnet": _cache("isnet", [])}  # a teacher the source does not use is ignored
    masks, meta = combine_teachers(spec, caches)
    assert len(masks) == 3
    for got, want in zip(masks, frames):
        np.testing.assert_array_equal(got, np.asarray(want, np.float32))
    assert meta["rule"] == "rvm" and meta["teacher"] == "Robust Video Matting (MobileNetV3)"
    assert set(meta["teachers"]) == {"rvm", "selfie"}
    assert meta["agreement_mean"] == pytest.approx((5 / 6 + 4 / 6 + 6 / 6) / 3)  # each frame vs selfie's
    masks[0][0, 0] = 7.0
    assert caches["rvm"].masks[0][0, 0] == 0.0  # the label is a copy


def test_selfie_rule_on_old_backgrounds():
    spec = source("coffee")
    masks, meta = combine_teachers(spec, {"selfie": _cache("selfie", [SELFIE])})
    np.testing.assert_array_equal(masks[0], np.asarray(SELFIE, np.float32))
    assert meta["rule"] == "selfie" and meta["teacher"] == "selfie teacher" and meta["agreement_mean"] == 1.0


def test_missing_teacher_is_an_input_error():
    with pytest.raises(InputError, match="isnet") as e:
        combine_teachers(source("astronaut"), {"rvm": _cache("rvm", [RVM]), "selfie": _cache("selfie", [SELFIE])})
    assert "backdrop labels" in str(e.value) and "astronaut" in str(e.value)


def test_mismatched_frame_counts_are_an_input_error():
    caches = {"rvm": _cache("rvm", [RVM, RVM]), "selfie": _cache("selfie", [SELFIE])}
    with pytest.raises(InputError, match="different frame counts") as e:
        combine_teachers(source("carphone_pristine"), caches)
    assert "--force" in str(e.value)


def test_mismatched_mask_sizes_are_an_input_error():
    caches = {"rvm": _cache("rvm", [np.zeros((4, 6))]), "selfie": _cache("selfie", [np.zeros((3, 6))])}
    with pytest.raises(InputError):
        combine_teachers(source("carphone_pristine"), caches)


# ------------------------------------------------------------------------------------------
# teacher caches on disk
# ------------------------------------------------------------------------------------------


def test_teacher_cache_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    masks = [rng.random((5, 7)).astype(np.float32), rng.random((3, 4))]  # sizes differ; float64 is stored as float32
    meta = {"teacher": "median of RVM, ISNet, MediaPipe selfie", "rule": "median", "agreement_mean": 0.75,
            "teachers": {"rvm": {"model_sha256": "a" * 64}}, "num_frames": 2}
    path = tmp_path / "labels" / "astronaut.npz"
    assert write_teacher_cache(path, masks, ["frame_00000", "frame_00001"], meta) == path
    assert sorted(p.name for p in path.parent.iterdir()) == ["astronaut.npz"]  # no temp file left
    got = load_teacher_cache(path)
    assert got.path == path and got.names == ["frame_00000", "frame_00001"] and got.meta == meta
    assert [m.dtype for m in got.masks] == [np.float32, np.float32]
    np.testing.assert_array_equal(got.masks[0], masks[0])
    np.testing.assert_array_equal(got.masks[1], masks[1].astype(np.float32))
    with np.load(path) as z:
        assert z["frame_sizes"].tolist() == [[5, 7], [3, 4]]

    # overwriting replaces the file in place, still without leftovers
    write_teacher_cache(path, masks[:1], ["only"], {"rule": "rvm"})
    assert sorted(p.name for p in path.parent.iterdir()) == ["astronaut.npz"]
    again = load_teacher_cache(path)
    assert again.names == ["only"] and again.meta == {"rule": "rvm"} and len(again.masks) == 1


def test_combined_labels_round_trip(tmp_path):
    spec = source("astronaut")
    caches = {"rvm": _cache("rvm", [RVM]), "isnet": _cache("isnet", [ISNET]), "selfie": _cache("selfie", [SELFIE])}
    masks, meta = combine_teachers(spec, caches)
    out = labels_dir(tmp_path) / f"{spec.name}.npz"
    write_teacher_cache(out, masks, caches["rvm"].names, meta)
    got = load_teacher_cache(out)
    assert got.meta == meta and got.names == ["frame_00000"]
    np.testing.assert_array_equal(got.masks[0], masks[0])
    assert teacher_cache_path(tmp_path, "astronaut", "isnet") == tmp_path / "labels" / "astronaut.isnet.npz"


def test_an_empty_cache_round_trips(tmp_path):
    path = write_teacher_cache(tmp_path / "e.npz", [], [], {})
    got = load_teacher_cache(path)
    assert got.masks == [] and got.names == [] and got.meta == {}


def test_loading_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(InputError, match="backdrop labels"):
        load_teacher_cache(tmp_path / "absent.npz")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="not a teacher label cache"):
        load_teacher_cache(tmp_path / "foreign.npz")


# ------------------------------------------------------------------------------------------
# held-out split
# ------------------------------------------------------------------------------------------


def test_heldout_lists_follow_the_split_fields():
    held = [s for s in SOURCES if s.split == "heldout"]
    assert set(HELDOUT_CLIPS) == {s.name for s in held if s.kind == "video"}
    assert set(HELDOUT_IMAGES) == {s.name for s in held if s.kind == "image"}
    assert HELDOUT_CLIPS[0] == "video_call"  # the clip training validates on
    assert "grace_hopper" in HELDOUT_IMAGES and {"group_table", "street_full_body"} <= set(HELDOUT_IMAGES)
    assert {"long_hair_hands"} <= set(HELDOUT_CLIPS)
    assert all(s.split in ("train", "heldout") for s in SOURCES)
    assert all(s.role == "person" for s in held)
    # no training source borrows a held-out source's labels or media
    train = [s for s in SOURCES if s.split == "train"]
    assert not {s.label_from for s in train} & {s.name for s in held}
    assert not {s.media for s in train if s.media} & {s.media for s in held}


def test_heldout_sources_never_reach_the_training_pools(monkeypatch, tmp_path):
    """load_training_data on synthetic frames and labels: held-out sources are never even read."""
    read = []

    def frames_of(spec, data_dir):
        assert spec.split == "train", f"{spec.name} is held out but was read"
        read.append(spec.name)
        n = 120 if spec.name.startswith("carphone") else (10 if spec.kind == "video" else 1)
        return [np.full((6, 8, 3), i % 255, np.uint8) for i in range(n)]

    monkeypatch.setattr(data, "_frames_of", frames_of)
    for spec in SOURCES:
        if spec.split != "train" or spec.label_from:
            continue
        n = 120 if spec.name.startswith("carphone") else (10 if spec.kind == "video" else 1)
        value = 0.8 if spec.role == "person" else 0.0
        write_teacher_cache(labels_dir(tmp_path) / f"{spec.name}.npz", [np.full((6, 8), value, np.float32)] * n,
                            [f"f{i}" for i in range(n)], {"rule": label_rule(spec), "teacher": "synthetic"})
    got = load_training_data(tmp_path)
    held = set(HELDOUT_CLIPS) | set(HELDOUT_IMAGES)
    pooled = {s.source for s in got.persons + got.backgrounds}
    assert pooled == {s.name for s in SOURCES if s.split == "train"}
    assert not pooled & held and not set(read) & held
    carphone = [s.index for s in got.persons if s.source.startswith("carphone")]
    assert carphone and max(carphone) < CARPHONE_HELDOUT_START  # the carphone tail is held out
    assert {s.source for s in got.persons} == {s.name for s in SOURCES if s.split == "train" and s.role == "person"}
    assert set(got.teacher_meta) == {"rvm", "median", "max", "selfie"}


# ------------------------------------------------------------------------------------------
# augmentation: crowds, occluders, motion blur, JPEG, colour casts
# ------------------------------------------------------------------------------------------

H, W = 48, 64
SMALL = Bucket("t", 32, 48)
LANDSCAPE = DEFAULT_BUCKETS.get("landscape_16x9")
NEW_AT_ONE = {"crowd_prob": 1.0, "occluder_prob": 1.0, "motion_blur_prob": 1.0, "jpeg_prob": 1.0, "colour_cast_prob": 1.0}
NEW_DEFAULTS = {"crowd_prob": 0.0, "crowd_max": 5, "crowd_zoom": (0.3, 0.75), "occluder_prob": 0.0, "motion_blur_prob": 0.0,
                "jpeg_prob": 0.0, "jpeg_quality": (20.0, 70.0), "colour_cast_prob": 0.0, "colour_cast": 0.35}
OLD = {"composite_prob": 0.7, "background_only_prob": 0.1, "blur_prob": 0.3, "noise_prob": 0.5, "low_light_prob": 0.2,
       "zoom_composite": (0.5, 1.0), "max_rotation_deg": 5.0}


def _person(seed: int = 0, colour=(200, 150, 120)) -> Sample:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    lab = np.zeros((H, W), np.float32)
    cv2.ellipse(lab, (W // 2, H // 2), (W // 5, H // 3), 0, 0, 360, 1.0, -1)
    rgb[lab > 0.5] = colour
    return Sample(rgb, lab, "astronaut", seed)


def _background() -> Sample:
    rng = np.random.default_rng(99)
    return Sample(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8), np.zeros((40, 56), np.float32), "coffee", 0)


CROWD = [_person(1, (90, 60, 40)), _person(2, (240, 210, 190))]


def _sample(seed: int, cfg: AugmentConfig, bucket: Bucket = SMALL, crowd=CROWD, prev: PrevMaskConfig | None = None):
    return make_sample(_person(), _background(), bucket, np.random.default_rng(seed), cfg, prev or PrevMaskConfig(), crowd)


@pytest.mark.parametrize("bucket", [SMALL, LANDSCAPE], ids=lambda b: b.name)
def test_new_augmentations_at_full_probability_give_valid_samples(bucket):
    cfg = AugmentConfig(**NEW_AT_ONE, composite_prob=1.0, background_only_prob=0.0)
    for seed in range(4):
        x, y = _sample(seed, cfg, bucket)
        assert x.shape == (4, bucket.height, bucket.width) and y.shape == (1, bucket.height, bucket.width)
        assert x.dtype == np.float32 and y.dtype == np.float32
        assert np.isfinite(x).all() and np.isfinite(y).all()
        assert 0.0 <= x.min() and x.max() <= 1.0 and 0.0 <= y.min() and y.max() <= 1.0
        assert y.max() > 0.5  # a person is in it


def test_samples_are_a_pure_function_of_the_seed():
    cfg = AugmentConfig(**NEW_AT_ONE, composite_prob=1.0)
    x1, y1 = _sample(7, cfg)
    x2, y2 = _sample(7, cfg)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    x3, _ = _sample(8, cfg)
    assert not np.array_equal(x1, x3)


def test_crowd_adds_people_to_the_label():
    no_crowd = AugmentConfig(composite_prob=1.0, background_only_prob=0.0)
    crowd = AugmentConfig(composite_prob=1.0, background_only_prob=0.0, crowd_prob=1.0, crowd_max=3)
    gained = 0.0
    for seed in range(6):
        _, y0 = _sample(seed, no_crowd)
        _, y1 = _sample(seed, crowd)
        # the main person and the background are drawn before the crowd, so they are the same:
        # extra people only ever add label
        assert (y1 >= y0 - 1e-5).all()
        gained += float(y1.mean() - y0.mean())
    assert gained > 0.05


def test_crowd_needs_candidates_and_probability():
    cfg = AugmentConfig(composite_prob=1.0, background_only_prob=0.0, crowd_prob=1.0)
    np.testing.assert_array_equal(_sample(3, cfg, crowd=[])[0], _sample(3, cfg, crowd=None)[0])  # no candidates: no draw
    off = AugmentConfig(composite_prob=1.0, background_only_prob=0.0)
    np.testing.assert_array_equal(_sample(3, off, crowd=CROWD)[0], _sample(3, off, crowd=None)[0])


def test_occluder_only_removes_label():
    plain = AugmentConfig(composite_prob=1.0, background_only_prob=0.0)
    occluded = AugmentConfig(composite_prob=1.0, background_only_prob=0.0, occluder_prob=1.0)
    lost = 0.0
    for seed in range(8):
        rgb0, lab0 = make_scene(_person(), _background(), (H, W), np.random.default_rng(seed), plain)
        rgb1, lab1 = make_scene(_person(), _background(), (H, W), np.random.default_rng(seed), occluded)
        assert rgb1.dtype == np.uint8 and lab1.dtype == np.float32 and lab1.shape == (H, W)
        assert (lab1 <= lab0 + 1e-5).all()  # the patch's label is the (empty) background's
        lost += float(lab0.sum() - lab1.sum())
    assert lost > 0


@pytest.mark.parametrize("field", ["motion_blur_prob", "jpeg_prob", "colour_cast_prob"])
def test_each_photometric_change_takes_effect(field):
    rgb = _person().rgb
    base = photometric(rgb, np.random.default_rng(5), AugmentConfig())
    changed = photometric(rgb, np.random.default_rng(5), AugmentConfig(**{field: 1.0}))
    assert changed.dtype == np.uint8 and changed.shape == rgb.shape
    assert not np.array_equal(base, changed)


def test_new_fields_at_defaults_reproduce_old_configs():
    assert {k: getattr(AugmentConfig(), k) for k in NEW_DEFAULTS} == NEW_DEFAULTS
    old = AugmentConfig(**OLD)
    explicit = AugmentConfig(**OLD, **NEW_DEFAULTS)
    from_json = AugmentConfig.from_dict({**OLD, "zoom_composite": [0.5, 1.0]})
    assert old == explicit == from_json
    for bucket in (SMALL, LANDSCAPE):
        for seed in range(6):
            x0, y0 = _sample(seed, old, bucket, crowd=None)
            for cfg, crowd in ((explicit, None), (explicit, CROWD), (from_json, CROWD)):
                x1, y1 = _sample(seed, cfg, bucket, crowd=crowd)
                np.testing.assert_array_equal(x0, x1)
                np.testing.assert_array_equal(y0, y1)


@pytest.mark.parametrize("bad", [{"crowd_prob": 1.5}, {"occluder_prob": -0.1}, {"jpeg_prob": 2.0}, {"motion_blur_prob": 1.01},
                                 {"colour_cast_prob": -1.0}, {"crowd_max": 0}, {"crowd_zoom": (0.8, 0.3)},
                                 {"jpeg_quality": (70.0, 20.0)}, {"crowd_zoom": (-0.1, 0.5)}])
def test_new_fields_are_validated(bad):
    with pytest.raises(ConfigError):
        AugmentConfig(**bad)


def test_new_fields_from_a_config_file():
    cfg = AugmentConfig.from_dict({"crowd_prob": 0.3, "crowd_zoom": [0.2, 0.5], "jpeg_quality": [30, 60]})
    assert cfg.crowd_zoom == (0.2, 0.5) and cfg.jpeg_quality == (30.0, 60.0) and cfg.crowd_prob == 0.3
    with pytest.raises(ConfigError, match="crowd_probability"):
        AugmentConfig.from_dict({"crowd_probability": 0.3})
