"""Camera buffers to YUV444: colour maths, plane layouts, strides, ranges, and errors.

Expected values are worked out by hand from the rules in docs/frames.md (working in comments).
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from backdrop.core.errors import FrameError
from backdrop.core.frames import (
    bgr_to_yuv,
    i420_to_yuv,
    model_input,
    nv12_to_yuv,
    nv21_to_yuv,
    rgb_to_yuv,
    yuv_to_bgr,
    yuv_to_i420,
    yuv_to_nv12,
    yuv_to_nv21,
    yuv_to_rgb,
)

# --- colour maths ------------------------------------------------------------------------

# (R, G, B) -> (Y, Cb, Cr), JFIF, round half up, clip:
RGB_CASES = [
    # Y = 0.299*255 = 76.245 -> 76; Cb = 128 - 0.168736*255 = 84.97 -> 85; Cr = 128 + 127.5 = 255.5 -> 256 -> 255
    ((255, 0, 0), (76, 85, 255)),
    # Y = 149.685 -> 150; Cb = 128 - 84.47 = 43.53 -> 44; Cr = 128 - 106.765 = 21.23 -> 21
    ((0, 255, 0), (150, 44, 21)),
    # Y = 29.07 -> 29; Cb = 255.5 -> 255; Cr = 128 - 20.735 = 107.27 -> 107
    ((0, 0, 255), (29, 255, 107)),
    ((255, 255, 255), (255, 128, 128)),  # coefficients of Y sum to 1, of Cb/Cr to 0
    ((0, 0, 0), (0, 128, 128)),
    ((128, 128, 128), (128, 128, 128)),
    # Y = 0.114*250 = 28.5 exactly -> 29 (half up); Cb = 128 + 125 = 253; Cr = 128 - 20.328 = 107.67 -> 108
    ((0, 0, 250), (29, 253, 108)),
]


def test_rgb_to_yuv_by_hand():
    rgb = np.array([[c for c, _ in RGB_CASES]], dtype=np.uint8)
    want = np.array([[y for _, y in RGB_CASES]], dtype=np.uint8)
    out = rgb_to_yuv(rgb)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(bgr_to_yuv(np.ascontiguousarray(rgb[:, :, ::-1])), want)


def test_yuv_to_rgb_by_hand():
    yuv = np.array([[[128, 128, 255], [128, 255, 128], [0, 128, 128], [255, 128, 128]]], dtype=np.uint8)
    # (128,128,255): R = 128 + 1.402*127 = 306.05 -> 255; G = 128 - 0.714136*127 = 37.30 -> 37; B = 128
    # (128,255,128): R = 128; G = 128 - 0.344136*127 = 84.29 -> 84; B = 128 + 1.772*127 = 353 -> 255
    want = np.array([[[255, 37, 128], [128, 84, 255], [0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(yuv_to_rgb(yuv), want)
    np.testing.assert_array_equal(yuv_to_bgr(yuv), want[:, :, ::-1])


def test_colour_round_trip_and_opencv_agree():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    yuv = rgb_to_yuv(rgb)
    assert np.abs(yuv_to_rgb(yuv).astype(int) - rgb).max() <= 1
    # OpenCV uses the same JFIF matrix in fixed point (output order Y, Cr, Cb).
    ref = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[:, :, [0, 2, 1]]
    assert np.abs(yuv.astype(int) - ref).max() <= 1


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), [[0, 0, 0]]],
)
def test_colour_functions_reject_bad_arrays(bad):
    for fn in (rgb_to_yuv, bgr_to_yuv, yuv_to_rgb, yuv_to_nv21, yuv_to_i420):
        with pytest.raises(FrameError, match=r"must be a uint8 \(H, W, 3\) array"):
            fn(bad)


# --- 4:2:0 buffers -----------------------------------------------------------------------

# A 3x3 frame (odd both ways): chroma is 2x2 (ceil(3/2)).
Y3 = [10, 20, 30, 40, 50, 60, 70, 80, 90]
VU3 = [200, 100, 201, 101, 202, 102, 203, 103]  # NV21 chroma rows: V00 U00 V01 U01 / V10 U10 V11 U11
# Each chroma sample covers its 2x2 block: columns 0-1 take sample 0, column 2 sample 1.
WANT3 = np.array(
    [
        [[10, 100, 200], [20, 100, 200], [30, 101, 201]],
        [[40, 100, 200], [50, 100, 200], [60, 101, 201]],
        [[70, 102, 202], [80, 102, 202], [90, 103, 203]],
    ],
    dtype=np.uint8,
)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, np.uint8)])
def test_nv21_3x3_by_hand(kind):
    out = nv21_to_yuv(kind(bytes(Y3 + VU3)), 3, 3)
    assert out.dtype == np.uint8 and out.shape == (3, 3, 3)
    np.testing.assert_array_equal(out, WANT3)


def test_nv12_is_nv21_with_chroma_swapped():
    out = nv12_to_yuv(bytes(Y3 + VU3), 3, 3)  # now 200.. are U (Cb), 100.. are V (Cr)
    np.testing.assert_array_equal(out, WANT3[:, :, [0, 2, 1]])


def test_i420_3x3_by_hand():
    u, v = [100, 101, 102, 103], [200, 201, 202, 203]
    np.testing.assert_array_equal(i420_to_yuv(bytes(Y3 + u + v), 3, 3), WANT3)


def test_row_stride():
    # stride 6: every row of both planes is 6 bytes; padding bytes (255) must be ignored
    pad = [255, 255, 255]
    buf = Y3[0:3] + pad + Y3[3:6] + pad + Y3[6:9] + pad + VU3[0:4] + [255, 255] + VU3[4:8] + [255, 255]
    assert len(buf) == 6 * 3 + 6 * 2
    np.testing.assert_array_equal(nv21_to_yuv(bytes(buf), 3, 3, row_stride=6), WANT3)
    np.testing.assert_array_equal(nv12_to_yuv(bytes(buf), 3, 3, row_stride=6), WANT3[:, :, [0, 2, 1]])
    # the smallest stride for width 3 is 4 (chroma rows hold 2 pairs)
    buf4 = Y3[0:3] + [0] + Y3[3:6] + [0] + Y3[6:9] + [0] + VU3
    np.testing.assert_array_equal(nv21_to_yuv(bytes(buf4), 3, 3, row_stride=4), WANT3)


def test_row_stride_too_small():
    with pytest.raises(FrameError) as e:
        nv21_to_yuv(bytes(17), 3, 3, row_stride=3)
    assert str(e.value) == (
        "row_stride 3 is too small for a NV21 frame of width 3: each row needs at least 4 bytes "
        "(Y rows 3, chroma rows 2*ceil(width/2) = 4). Pass the plane's bytes-per-row as reported by the camera API."
    )


def test_wrong_buffer_size_messages():
    with pytest.raises(FrameError) as e:
        nv21_to_yuv(bytes(16), 3, 3)
    assert str(e.value) == (
        "NV21 buffer for a 3x3 (width x height) frame with no row padding must be 17 bytes "
        "(3 Y rows of 3 + 2 chroma rows of 4); got 16. "
        "Check width/height/row_stride, or copy the planes into one contiguous buffer."
    )
    fragment = "NV12 buffer for a 640x480 (width x height) frame with row_stride 704 must be 506880 bytes"
    with pytest.raises(FrameError, match=re.escape(fragment)):
        nv12_to_yuv(bytes(640 * 480 * 3 // 2), 640, 480, row_stride=704)
    with pytest.raises(FrameError) as e:
        i420_to_yuv(bytes(18), 3, 3)
    assert str(e.value) == (
        "I420 buffer for a 3x3 (width x height) frame with no row padding must be 17 bytes "
        "(Y 3 rows of 3 + U and V 2 rows of 2 each); got 18. Check width/height/row_stride."
    )


@pytest.mark.parametrize(
    ("buf", "fragment"),
    [
        (np.zeros((17,), np.int16), "NV21 buffer must be a 1-D uint8 array, got dtype int16 shape (17,)"),
        (np.zeros((1, 17), np.uint8), "NV21 buffer must be a 1-D uint8 array, got dtype uint8 shape (1, 17)"),
        (list(range(17)), "NV21 buffer must be bytes, bytearray, memoryview or a 1-D uint8 array, got list"),
    ],
)
def test_bad_buffer_types(buf, fragment):
    with pytest.raises(FrameError, match=re.escape(fragment)):
        nv21_to_yuv(buf, 3, 3)


@pytest.mark.parametrize(("w", "h"), [(0, 3), (3, -1), (3.0, 3), (True, 3)])
def test_bad_dimensions(w, h):
    with pytest.raises(FrameError, match="frame (width|height) must be a positive integer"):
        nv21_to_yuv(bytes(17), w, h)
    with pytest.raises(FrameError, match="I420 frame (width|height) must be a positive integer"):
        i420_to_yuv(bytes(17), w, h)


def test_unknown_color_range():
    with pytest.raises(FrameError) as e:
        nv21_to_yuv(bytes(17), 3, 3, color_range="limited")
    assert str(e.value) == (
        "Unknown color_range 'limited'; use 'full' (Android camera, iOS 420f) or 'video' (iOS 420v, Y 16..235)."
    )


def test_video_range_by_hand():
    # Y' = (Y - 16) * 255 / 219: 16 -> 0, 235 -> 255, 126 -> 128.08 -> 128, 15 -> -1.16 -> 0, 240 -> 260.8 -> 255
    # C' = (C - 128) * 255 / 224 + 128: 128 -> 128, 129 -> 129.14 -> 129, 200 -> 209.96 -> 210,
    #      16 -> 0.5 -> 1 (half up), 240 -> 255.5 -> 255 (clipped), 0 -> -17.7 -> 0
    ys = [16, 235, 126, 15, 240, 0]
    us = [128, 129, 200, 16, 240, 0]
    vs = [129, 200, 16, 240, 0, 128]
    # a 12x2 frame: chroma 6x1, so pixel column 2k takes chroma sample k
    w, h = 12, 2
    y_plane = [v for v in ys for _ in (0, 1)] * 2
    uv = [b for u, v in zip(us, vs, strict=True) for b in (u, v)]  # NV12: U then V
    out = nv12_to_yuv(bytes(y_plane + uv), w, h, color_range="video")
    lut_y = {16: 0, 235: 255, 126: 128, 15: 0, 240: 255, 0: 0}
    lut_c = {128: 128, 129: 129, 200: 210, 16: 1, 240: 255, 0: 0}
    want_row = [[lut_y[ys[k]], lut_c[us[k]], lut_c[vs[k]]] for k in range(6) for _ in (0, 1)]
    np.testing.assert_array_equal(out, np.array([want_row, want_row], dtype=np.uint8))
    full = nv12_to_yuv(bytes(y_plane + uv), w, h)  # full range passes values through
    np.testing.assert_array_equal(full[0, ::2, 0], ys)


def test_subsampling_by_hand():
    # 3 wide x 2 high, Cb values per pixel; Cr constant 128
    cb = np.array([[10, 11, 7], [11, 11, 8]], dtype=np.uint8)
    yuv = np.stack([np.zeros_like(cb), cb, np.full_like(cb, 128)], axis=-1)
    # block 0: (10+11+11+11)/4 = 10.75 -> 11; block 1 (right edge, 2 pixels): (7+8)/2 = 7.5 -> 8
    nv21 = yuv_to_nv21(yuv)
    assert list(nv21) == [0, 0, 0, 0, 0, 0, 128, 11, 128, 8]
    nv12 = yuv_to_nv12(yuv)
    assert list(nv12) == [0, 0, 0, 0, 0, 0, 11, 128, 8, 128]
    assert list(yuv_to_i420(yuv)) == [0, 0, 0, 0, 0, 0, 11, 8, 128, 128]
    # exact half in a full block: (10+10+11+11)/4 = 10.5 -> 11; (10+10+10+11)/4 = 10.25 -> 10
    yuv2 = np.zeros((2, 4, 3), np.uint8)
    yuv2[:, :, 1] = [[10, 10, 10, 10], [11, 11, 10, 11]]
    assert list(yuv_to_i420(yuv2)[8:10]) == [11, 10]


def _block_constant_yuv(h: int, w: int, seed: int) -> np.ndarray:
    """Random Y; chroma constant over each 2x2 block (partial blocks at odd edges)."""
    rng = np.random.default_rng(seed)
    ch, cw = (h + 1) // 2, (w + 1) // 2
    c = rng.integers(0, 256, (ch, cw, 2), dtype=np.uint8)
    c = np.repeat(np.repeat(c, 2, axis=0), 2, axis=1)[:h, :w]
    return np.concatenate([rng.integers(0, 256, (h, w, 1), dtype=np.uint8), c], axis=-1)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (3, 5), (5, 3), (143, 175), (144, 176), (2, 2), (4, 6)])
def test_round_trips_are_exact_on_block_constant_chroma(h, w):
    yuv = _block_constant_yuv(h, w, seed=h * 1000 + w)
    np.testing.assert_array_equal(nv21_to_yuv(yuv_to_nv21(yuv).tobytes(), w, h), yuv)
    np.testing.assert_array_equal(nv12_to_yuv(yuv_to_nv12(yuv), w, h), yuv)
    np.testing.assert_array_equal(i420_to_yuv(yuv_to_i420(yuv), w, h), yuv)
    stride = 2 * ((w + 1) // 2) + 13
    buf = yuv_to_nv21(yuv, row_stride=stride)
    assert buf.size == stride * (h + (h + 1) // 2)
    np.testing.assert_array_equal(nv21_to_yuv(buf, w, h, row_stride=stride), yuv)
    np.testing.assert_array_equal(nv12_to_yuv(yuv_to_nv12(yuv, row_stride=stride), w, h, row_stride=stride), yuv)


def test_buffer_sizes_for_odd_frames():
    yuv = np.zeros((143, 175, 3), np.uint8)  # chroma 72 x 88
    assert yuv_to_nv21(yuv).size == 175 * 143 + 2 * 88 * 72
    assert yuv_to_i420(yuv).size == 175 * 143 + 2 * 88 * 72
    assert yuv_to_nv21(np.zeros((1, 1, 3), np.uint8)).size == 1 + 2


def test_nv21_from_rgb_matches_rgb_path_on_flat_colours():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :2] = (255, 0, 0)
    rgb[:, 2:4] = (0, 255, 0)
    rgb[:, 4:] = (30, 60, 200)
    yuv = rgb_to_yuv(rgb)
    np.testing.assert_array_equal(nv21_to_yuv(yuv_to_nv21(yuv), 6, 4), yuv)


# --- model input -------------------------------------------------------------------------


def test_model_input():
    yuv = np.array([[[0, 255, 51], [128, 1, 254]]], dtype=np.uint8)
    x = model_input(yuv)
    assert x.dtype == np.float32 and x.shape == (3, 1, 2)
    np.testing.assert_array_equal(x[:, 0, 0], np.array([0, 255, 51], np.float32) / np.float32(255))
    assert x[1, 0, 0] == 1.0 and x[2, 0, 0] == np.float32(0.2)
    np.testing.assert_array_equal(model_input(yuv.astype(np.float32)), x)
    with pytest.raises(FrameError) as e:
        model_input(np.zeros((3, 4, 4), np.float64))
    assert str(e.value) == (
        "model_input needs a uint8 or float32 (H, W, 3) YUV array, got dtype float64 shape (3, 4, 4)."
    )


def test_i420_row_stride_by_hand_and_padding_is_ignored():
    # 3x3 at row_stride 5: Y rows of 5 bytes, U and V rows of ceil(5/2) = 3 bytes; padding 255
    y = [v for r in range(3) for v in (*Y3[3 * r : 3 * r + 3], 255, 255)]
    u = [100, 101, 255, 102, 103, 255]
    v = [200, 201, 255, 202, 203, 255]
    np.testing.assert_array_equal(i420_to_yuv(bytes(y + u + v), 3, 3, row_stride=5), WANT3)
    with pytest.raises(FrameError, match="must be 27 bytes"):
        i420_to_yuv(bytes(26), 3, 3, row_stride=5)
    with pytest.raises(FrameError, match="too small for an I420 frame of width 3"):
        i420_to_yuv(bytes(18), 3, 3, row_stride=2)


@pytest.mark.parametrize(("h", "w", "stride"), [(3, 5, 5), (5, 3, 8), (143, 175, 192), (144, 176, 177)])
def test_i420_with_row_stride_round_trips(h, w, stride):
    yuv = _block_constant_yuv(h, w, seed=h * 7 + w)
    buf = yuv_to_i420(yuv, row_stride=stride)
    assert buf.size == stride * h + 2 * ((stride + 1) // 2) * ((h + 1) // 2)
    np.testing.assert_array_equal(i420_to_yuv(buf, w, h, row_stride=stride), yuv)
