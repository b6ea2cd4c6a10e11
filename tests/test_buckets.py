"""Aspect-ratio buckets: selection, placement, resize, padding, and the bucket-set formats.

Expected numbers are worked out by hand from the rules in docs/buckets.md (the working is in
the comments), not produced by the code under test.
"""

from __future__ import annotations

import json
import re
from importlib import resources

import cv2
import numpy as np
import pytest

from backdrop.core.buckets import (
    DEFAULT_BUCKETS,
    MAX_ASPECT_FACTOR,
    Bucket,
    BucketSet,
    Placement,
    from_bucket,
    load_buckets,
    plan,
    resize_bilinear,
    to_bucket,
)
from backdrop.core.errors import BackdropError, BucketError, ConfigError, FrameError

# Frame sizes as (height, width), with the default bucket each must land in.
# Camera sizes are usually quoted width x height; here 1080x1920 is a landscape 1080p frame.
SELECT_CASES = [
    ((1, 1), "square_1x1"),
    ((2, 3), "landscape_4x3"),  # 1.5: 1.5/1.333 = 1.125 < 1.8/1.5 = 1.2
    ((3, 2), "portrait_3x4"),
    ((175, 143), "portrait_3x4"),  # 0.817: 0.817/0.75 = 1.09 < 1/0.817 = 1.22
    ((143, 175), "landscape_4x3"),
    ((721, 1281), "landscape_16x9"),  # 1.777
    ((1281, 721), "portrait_9x16"),
    ((1080, 1920), "landscape_16x9"),
    ((1920, 1080), "portrait_9x16"),
    ((480, 640), "landscape_4x3"),
    ((640, 480), "portrait_3x4"),
    ((144, 176), "landscape_4x3"),  # the carphone clip: 1.222 -> 4:3 (1.09x) beats 1:1 (1.22x)
    ((176, 144), "portrait_3x4"),
    ((720, 720), "square_1x1"),
    ((160, 288), "landscape_16x9"),
    ((288, 160), "portrait_9x16"),
    ((192, 256), "landscape_4x3"),
    ((256, 192), "portrait_3x4"),
    ((224, 224), "square_1x1"),
    # Either side of the log-midpoint of 4:3 and 16:9 (sqrt(2.4) = 1.5492):
    ((100, 155), "landscape_16x9"),  # 1.8/1.55 = 1.1613 < 1.55/1.3333 = 1.1625
    ((100, 154), "landscape_4x3"),  # 1.54/1.3333 = 1.1550 < 1.8/1.54 = 1.1688
    # Exactly MAX_ASPECT_FACTOR (2x) off the nearest bucket is still accepted:
    ((10, 36), "landscape_16x9"),  # aspect 3.6 = 2 * 1.8
    ((18, 5), "portrait_9x16"),  # aspect 5/18 = (160/288) / 2
]

GRID = [hw for hw, _ in SELECT_CASES]


def test_default_set_is_the_documented_one():
    assert [(b.name, b.height, b.width) for b in DEFAULT_BUCKETS] == [
        ("landscape_16x9", 160, 288),
        ("portrait_9x16", 288, 160),
        ("landscape_4x3", 192, 256),
        ("portrait_3x4", 256, 192),
        ("square_1x1", 224, 224),
    ]
    # Core ML states only run on the Neural Engine with sides that are multiples of 32.
    assert all(b.height % 32 == 0 and b.width % 32 == 0 for b in DEFAULT_BUCKETS)


def test_default_set_comes_from_package_data():
    text = resources.files("backdrop").joinpath("data/buckets_default.json").read_text()
    assert DEFAULT_BUCKETS.to_dict() == json.loads(text)
    assert load_buckets(None) is DEFAULT_BUCKETS


def test_bucket_aspect_and_str():
    b = DEFAULT_BUCKETS.get("landscape_16x9")
    assert b.aspect == 288 / 160
    assert b.size == "160x288"
    assert str(b) == "landscape_16x9 160x288"


# --- selection ---------------------------------------------------------------------------


@pytest.mark.parametrize(("hw", "name"), SELECT_CASES, ids=[f"{h}x{w}" for (h, w), _ in SELECT_CASES])
def test_select(hw, name):
    assert DEFAULT_BUCKETS.select(*hw).name == name


def test_select_agrees_with_log_distance():
    """The integer comparison is the documented |ln(frame aspect) - ln(bucket aspect)| rule."""
    for h in range(1, 60, 3):
        for w in range(1, 60, 4):
            d = [abs(np.log(w / h) - np.log(b.aspect)) for b in DEFAULT_BUCKETS]
            best = DEFAULT_BUCKETS.buckets[int(np.argmin(d))]
            if min(d) > np.log(MAX_ASPECT_FACTOR) + 1e-12:
                with pytest.raises(BucketError):
                    DEFAULT_BUCKETS.select(h, w)
            else:
                assert DEFAULT_BUCKETS.select(h, w) == best, (h, w)


def test_select_ties_go_to_the_earlier_bucket():
    wide, tall = Bucket("wide", 160, 288), Bucket("tall", 288, 160)
    assert BucketSet((wide, tall)).select(50, 50).name == "wide"
    assert BucketSet((tall, wide)).select(50, 50).name == "tall"
    small, big = Bucket("small", 96, 128), Bucket("big", 192, 256)
    assert BucketSet((small, big)).select(480, 640).name == "small"


@pytest.mark.parametrize("hw", [(1, 7), (7, 1), (10, 37), (19, 5), (1, 1000)])
def test_select_rejects_extreme_aspect_ratios(hw):
    with pytest.raises(BucketError) as e:
        DEFAULT_BUCKETS.select(*hw)
    h, w = hw
    assert f"Frame {h}x{w} (HxW" in str(e.value)
    assert "at most 2x is allowed" in str(e.value)
    assert "--buckets" in str(e.value)


def test_select_extreme_message_text():
    with pytest.raises(BucketError) as e:
        DEFAULT_BUCKETS.select(1, 7)
    assert str(e.value) == (
        "Frame 1x7 (HxW, aspect 7.000) is 3.89x off the nearest bucket landscape_16x9 160x288 "
        "(aspect 1.800); at most 2x is allowed, so this set takes aspects 0.278 to 3.600. "
        "Crop the frame, or add a bucket of that shape with --buckets NAME=HxW,..."
    )


@pytest.mark.parametrize(
    ("hw", "fragment"),
    [
        ((0, 10), "Frame size 0x10 (HxW) is not usable: each side must be between 1 and 65536"),
        ((10, -3), "Frame size 10x-3 (HxW) is not usable"),
        ((10.0, 10), "Frame height must be an integer number of pixels, got 10.0 (float)"),
        ((10, True), "Frame width must be an integer number of pixels, got True (bool)"),
        ((10, "20"), "Frame width must be an integer number of pixels, got '20' (str)"),
        ((70000, 10), "between 1 and 65536"),
    ],
)
def test_bad_frame_sizes(hw, fragment):
    for call in (lambda: DEFAULT_BUCKETS.select(*hw), lambda: plan(*hw, DEFAULT_BUCKETS.buckets[0])):
        with pytest.raises(BucketError, match=re.escape(fragment)):
            call()


def test_numpy_integer_sizes_are_accepted():
    assert DEFAULT_BUCKETS.select(np.int64(480), np.int32(640)).name == "landscape_4x3"


# --- bucket definitions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("a", 0, 32), "Bucket 'a' has height 0; a bucket side must be an integer from 1 to 4096"),
        (("a", 32, -32), "Bucket 'a' has width -32"),
        (("a", 32.0, 32), "Bucket 'a' has height 32.0"),
        (("a", 5000, 32), "has height 5000"),
        (("", 32, 32), "Bucket name '' is invalid"),
        (("has space", 32, 32), "Bucket name 'has space' is invalid"),
    ],
)
def test_bad_bucket(args, fragment):
    with pytest.raises(BucketError, match=re.escape(fragment)):
        Bucket(*args)


def test_empty_and_duplicate_sets():
    with pytest.raises(BucketError, match="A bucket set needs at least one bucket"):
        BucketSet(())
    with pytest.raises(BucketError, match="Bucket names must be unique; repeated: a. Rename or drop them."):
        BucketSet((Bucket("a", 32, 32), Bucket("b", 32, 64), Bucket("a", 64, 32)))


def test_errors_are_typed():
    assert issubclass(BucketError, BackdropError) and issubclass(BucketError, ValueError)


def test_get_and_names():
    assert DEFAULT_BUCKETS.names() == [
        "landscape_16x9",
        "portrait_9x16",
        "landscape_4x3",
        "portrait_3x4",
        "square_1x1",
    ]
    assert DEFAULT_BUCKETS.get("square_1x1") == Bucket("square_1x1", 224, 224)
    with pytest.raises(BucketError) as e:
        DEFAULT_BUCKETS.get("square")
    assert str(e.value) == (
        "Unknown bucket 'square'. Valid buckets: landscape_16x9, portrait_9x16, landscape_4x3, "
        "portrait_3x4, square_1x1."
    )


# --- JSON and CLI forms ------------------------------------------------------------------


def test_dict_round_trip():
    assert BucketSet.from_dict(DEFAULT_BUCKETS.to_dict()) == DEFAULT_BUCKETS


def test_from_file(tmp_path):
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"buckets": [{"name": "wide", "height": 144, "width": 256}]}))
    s = BucketSet.from_file(p)
    assert s.buckets == (Bucket("wide", 144, 256),)
    assert BucketSet.parse(str(p)) == s
    assert load_buckets(str(p)) == s


def test_from_file_errors(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=re.escape(f"Bucket file {missing} does not exist.")):
        BucketSet.from_file(missing)
    with pytest.raises(ConfigError, match="does not exist"):
        BucketSet.parse(str(missing))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=re.escape(f"Bucket file {bad} is not valid JSON")):
        BucketSet.from_file(bad)
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"buckets": [{"name": "a", "height": 32, "width": 32, "depth": 3}]}))
    with pytest.raises(BucketError) as e:
        BucketSet.from_file(extra)
    assert str(e.value) == (
        f'Bucket file {extra}: Bucket #0 must be an object with exactly the keys "name", "height", '
        "\"width\"; got ['depth', 'height', 'name', 'width']."
    )
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"buckets": []}))
    with pytest.raises(BucketError, match="needs at least one bucket"):
        BucketSet.from_file(empty)


@pytest.mark.parametrize("d", [[], {"bucket": []}, {"buckets": {}}, {"buckets": [], "x": 1}])
def test_from_dict_structure_errors(d):
    with pytest.raises(BucketError, match='exactly one key, "buckets"'):
        BucketSet.from_dict(d)


def test_parse_inline():
    s = BucketSet.parse(" wide = 144x256 , tall=256X144")
    assert s.buckets == (Bucket("wide", 144, 256), Bucket("tall", 256, 144))
    assert s.to_spec() == "wide=144x256,tall=256x144"
    assert BucketSet.parse(DEFAULT_BUCKETS.to_spec()) == DEFAULT_BUCKETS


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("wide=144x256,tall", "Bucket spec item 'tall' is not NAME=HxW (height x width in pixels)."),
        ("wide=144*256", "Bucket spec item 'wide=144*256' is not NAME=HxW"),
        ("wide=144x256,", "Bucket spec item '' is not NAME=HxW"),
        ("wide=0x256", "Bucket 'wide' has height 0"),
        ("a=32x32,a=64x64", "repeated: a"),
        ("  ", "Empty bucket spec."),
    ],
)
def test_parse_errors(spec, fragment):
    with pytest.raises(BucketError, match=re.escape(fragment)):
        BucketSet.parse(spec)


# --- placement ---------------------------------------------------------------------------

# (frame HxW, bucket) -> (scaled HxW, pad top, bottom, left, right), worked by hand.
PLAN_CASES = [
    # 1920/1080*160 = 284.44 -> 284; pad 4 -> 2, 2
    ((1080, 1920), "landscape_16x9", (160, 284), (0, 0, 2, 2)),
    ((1920, 1080), "portrait_9x16", (284, 160), (2, 2, 0, 0)),
    ((480, 640), "landscape_4x3", (192, 256), (0, 0, 0, 0)),
    # carphone: 176*192/144 = 234.67 -> 235; pad 21 -> 10, 11
    ((144, 176), "landscape_4x3", (192, 235), (0, 0, 10, 11)),
    # width limits (256/175 > 192/143): 175*192/143 = 234.97 -> 235; pad 21 -> 10, 11
    ((175, 143), "portrait_3x4", (235, 192), (10, 11, 0, 0)),
    # 1281*160/721 = 284.27 -> 284
    ((721, 1281), "landscape_16x9", (160, 284), (0, 0, 2, 2)),
    ((1, 1), "square_1x1", (224, 224), (0, 0, 0, 0)),
    # width limits: 2*256/3 = 170.67 -> 171; pad 21 -> 10, 11
    ((2, 3), "landscape_4x3", (171, 256), (10, 11, 0, 0)),
    # exact half: 113*160/64 = 282.5 -> 283 (half up, not to even); pad 5 -> 2, 3
    ((64, 113), "landscape_16x9", (160, 283), (0, 0, 2, 3)),
    # 720x720 in the 4:3 bucket (plan does not select): 192x192, pad 64 -> 32, 32
    ((720, 720), "landscape_4x3", (192, 192), (0, 0, 32, 32)),
    # 0.224 would round to 0: clamped to 1 row
    ((1, 1000), "square_1x1", (1, 224), (111, 112, 0, 0)),
]


@pytest.mark.parametrize(("hw", "bucket", "scaled", "pads"), PLAN_CASES)
def test_plan(hw, bucket, scaled, pads):
    p = plan(*hw, DEFAULT_BUCKETS.get(bucket))
    assert (p.src_height, p.src_width) == hw
    assert (p.scaled_height, p.scaled_width) == scaled
    assert (p.pad_top, p.pad_bottom, p.pad_left, p.pad_right) == pads


@pytest.mark.parametrize("hw", GRID, ids=[f"{h}x{w}" for h, w in GRID])
def test_plan_invariants(hw):
    b = DEFAULT_BUCKETS.select(*hw)
    p = plan(*hw, b)
    assert p.pad_top + p.scaled_height + p.pad_bottom == b.height
    assert p.pad_left + p.scaled_width + p.pad_right == b.width
    assert p.scaled_height == b.height or p.scaled_width == b.width
    assert 0 <= p.pad_bottom - p.pad_top <= 1 and 0 <= p.pad_right - p.pad_left <= 1
    # the aspect ratio is kept to within half a pixel of rounding on the shorter side
    if p.scaled_height == b.height:
        assert abs(p.scaled_width - hw[1] * b.height / hw[0]) <= 0.5
    else:
        assert abs(p.scaled_height - hw[0] * b.width / hw[1]) <= 0.5


def test_placement_checks_consistency():
    b = Bucket("a", 32, 32)
    with pytest.raises(BucketError, match="Inconsistent placement"):
        Placement(b, 10, 10, 32, 30, 0, 0, 0, 0)


def test_placement_to_dict():
    p = plan(144, 176, DEFAULT_BUCKETS.get("landscape_4x3"))
    assert p.to_dict() == {
        "bucket": "landscape_4x3",
        "bucket_size": [192, 256],
        "src_size": [144, 176],
        "scaled_size": [192, 235],
        "pad": {"top": 0, "bottom": 0, "left": 10, "right": 11},
    }


# --- resize ------------------------------------------------------------------------------

RESIZE_CASES = [
    (7, 11, 13, 5),  # up in y, down in x
    (100, 37, 33, 91),
    (30, 40, 60, 80),  # integer up
    (30, 40, 15, 20),  # integer down
    (143, 175, 235, 192),
    (1080, 1920, 160, 284),  # a real bucket downscale
    (1, 9, 4, 3),
    (9, 1, 3, 4),
    (5, 5, 5, 5),
]


@pytest.mark.parametrize(("h", "w", "oh", "ow"), RESIZE_CASES)
@pytest.mark.parametrize("channels", [None, 3])
def test_resize_matches_opencv(h, w, oh, ow, channels):
    rng = np.random.default_rng(h * 1000 + w)
    img = rng.random((h, w) if channels is None else (h, w, channels)).astype(np.float32)
    ours = resize_bilinear(img, oh, ow)
    ref = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_LINEAR)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)
    img255 = img * np.float32(255)
    ref255 = cv2.resize(img255, (ow, oh), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(resize_bilinear(img255, oh, ow), ref255, rtol=0, atol=255e-5 / 10)


def test_resize_by_hand():
    # 1x2 -> 1x4: src x = (d + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamp 0, 0.25, 0.75, 1
    img = np.array([[0.0, 8.0]], dtype=np.float32)
    np.testing.assert_array_equal(resize_bilinear(img, 1, 4), [[0.0, 2.0, 6.0, 8.0]])
    # 4 -> 3: src x = (d + 0.5) * 4/3 - 0.5 = 1/6, 3/2, 17/6
    img = np.array([[0.0, 6.0, 12.0, 18.0]], dtype=np.float32)
    np.testing.assert_allclose(resize_bilinear(img, 1, 3), [[1.0, 9.0, 17.0]], rtol=0, atol=1e-5)


def test_resize_keeps_constants_exactly_and_identity():
    for c in (0.0, 1.0, 0.7, 0.123456):
        img = np.full((13, 17), c, dtype=np.float32)
        out = resize_bilinear(img, 29, 7)
        assert (out == np.float32(c)).all()
    rng = np.random.default_rng(1)
    img = rng.random((9, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(resize_bilinear(img, 9, 6), img)
    u8 = rng.integers(0, 256, (9, 6), dtype=np.uint8)
    np.testing.assert_array_equal(resize_bilinear(u8, 9, 6), u8.astype(np.float32))


def test_resize_bad_input():
    with pytest.raises(FrameError, match=re.escape("non-empty (H, W) or (H, W, C) array, got (0, 3)")):
        resize_bilinear(np.zeros((0, 3), np.float32), 2, 2)
    with pytest.raises(BucketError, match="Frame size 0x2"):
        resize_bilinear(np.zeros((3, 3), np.float32), 0, 2)


# --- to_bucket / from_bucket -------------------------------------------------------------


def _smooth(h: int, w: int, channels: int | None = None) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 0.5 + 0.25 * np.sin(2 * np.pi * y / max(h, 2) * 0.7) * np.cos(2 * np.pi * x / max(w, 2) * 0.5)
    if channels is not None:
        img = np.stack([img * (0.5 + 0.2 * k) for k in range(channels)], axis=-1)
    return img.astype(np.float32)


@pytest.mark.parametrize("hw", GRID, ids=[f"{h}x{w}" for h, w in GRID])
def test_to_and_from_bucket_shapes_and_constants(hw):
    p = plan(*hw, DEFAULT_BUCKETS.select(*hw))
    b = p.bucket
    frame = np.full((*hw, 3), 77, dtype=np.uint8)
    x = to_bucket(frame, p)
    assert x.dtype == np.float32 and x.shape == (b.height, b.width, 3)
    assert (x == 77).all()
    mask = np.full((b.height, b.width), 0.625, dtype=np.float32)
    m = from_bucket(mask, p)
    assert m.dtype == np.float32 and m.shape == hw
    assert (m == np.float32(0.625)).all()


def test_padding_replicates_edges():
    p = plan(144, 176, DEFAULT_BUCKETS.get("landscape_4x3"))  # pad left 10, right 11
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (144, 176, 3), dtype=np.uint8)
    x = to_bucket(frame, p)
    scaled = resize_bilinear(frame, 192, 235)
    np.testing.assert_array_equal(x[:, 10:245], scaled)
    np.testing.assert_array_equal(x[:, :10], np.repeat(scaled[:, :1], 10, axis=1))
    np.testing.assert_array_equal(x[:, 245:], np.repeat(scaled[:, -1:], 11, axis=1))
    # and vertically
    p = plan(175, 143, DEFAULT_BUCKETS.get("portrait_3x4"))  # pad top 10, bottom 11
    gray = rng.random((175, 143)).astype(np.float32)
    x = to_bucket(gray, p)
    scaled = resize_bilinear(gray, 235, 192)
    np.testing.assert_array_equal(x[10:245], scaled)
    np.testing.assert_array_equal(x[:10], np.repeat(scaled[:1], 10, axis=0))
    np.testing.assert_array_equal(x[245:], np.repeat(scaled[-1:], 11, axis=0))


def test_exact_bucket_size_is_identity():
    b = DEFAULT_BUCKETS.get("portrait_9x16")
    p = plan(288, 160, b)
    rng = np.random.default_rng(4)
    frame = rng.random((288, 160)).astype(np.float32)
    np.testing.assert_array_equal(to_bucket(frame, p), frame)
    np.testing.assert_array_equal(from_bucket(frame, p), frame)


@pytest.mark.parametrize("hw", [(144, 176), (175, 143), (721, 1281), (480, 640), (1080, 1920), (2, 3)])
def test_round_trip_of_a_smooth_image_stays_close(hw):
    p = plan(*hw, DEFAULT_BUCKETS.select(*hw))
    img = _smooth(*hw)
    back = from_bucket(to_bucket(img, p), p)
    assert back.shape == hw
    # smooth content; downscaling by up to 6.75x then up again loses only a little
    assert np.abs(back - img).max() < 0.005


def test_shape_mismatch_errors():
    p = plan(144, 176, DEFAULT_BUCKETS.get("landscape_4x3"))
    with pytest.raises(FrameError) as e:
        to_bucket(np.zeros((176, 144, 3), np.uint8), p)
    assert str(e.value) == "Frame has shape (176, 144, 3); expected (144, 176) or (144, 176, C)."
    with pytest.raises(FrameError) as e:
        from_bucket(np.zeros((1, 1, 192, 256), np.float32), p)
    assert str(e.value) == (
        "Mask for bucket landscape_4x3 192x256 has shape (1, 1, 192, 256); expected (192, 256) or (192, 256, C)."
    )
    with pytest.raises(FrameError, match="has dtype bool"):
        to_bucket(np.zeros((144, 176), bool), p)
