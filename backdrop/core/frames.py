"""Camera buffers to the model's input: YUV444, BT.601 full range (JFIF), uint8.

Every conversion ends as a uint8 (H, W, 3) array of (Y, Cb, Cr) at full resolution, full
range (0..255), the JFIF variant of BT.601. Phones deliver 4:2:0 buffers: NV21 (Android),
NV12 (iOS ``420f`` / ``420v`` bi-planar), I420. Chroma planes are ceil(W/2) x ceil(H/2); each
chroma sample covers its 2x2 block of pixels (nearest upsampling). The rules, including every
rounding, are in docs/frames.md and are exact integer arithmetic, so a Kotlin or Swift port
reproduces them bit for bit.

Sizes follow camera APIs here: ``width`` and ``height`` are passed by name; arrays are
always (H, W, ...).
"""

from __future__ import annotations

import numpy as np

from backdrop.core.errors import FrameError

COLOR_RANGES = ("full", "video")
"""``full``: Y, Cb, Cr in 0..255 (JFIF, Android camera, iOS ``420f``). ``video``: Y 16..235,
C 16..240 (iOS ``420v``), expanded to full range on input."""

_SCALE = 1_000_000  # the JFIF coefficients are exact decimals with 6 places

# RGB -> YCbCr, times 1e6 (JFIF: Y = 0.299R + 0.587G + 0.114B, Cb = 128 - 0.168736R -
# 0.331264G + 0.5B, Cr = 128 + 0.5R - 0.418688G - 0.081312B).
_RGB2YUV = np.array(
    [[299_000, 587_000, 114_000], [-168_736, -331_264, 500_000], [500_000, -418_688, -81_312]],
    dtype=np.int64,
)
_RGB2YUV_OFFSET = np.array([0, 128 * _SCALE, 128 * _SCALE], dtype=np.int64)
# YCbCr -> RGB, times 1e6 (JFIF: R = Y + 1.402 Cr', G = Y - 0.344136 Cb' - 0.714136 Cr',
# B = Y + 1.772 Cb', with Cb' = Cb - 128, Cr' = Cr - 128).
_YUV2RGB = np.array(
    [[_SCALE, 0, 1_402_000], [_SCALE, -344_136, -714_136], [_SCALE, 1_772_000, 0]],
    dtype=np.int64,
)


def _round_half_up_div(num: np.ndarray, den: int) -> np.ndarray:
    """floor(num / den + 1/2) exactly, for int64 num (any sign) and den > 0."""
    return (2 * num + den) // (2 * den)


def _video_to_full_luts() -> tuple[np.ndarray, np.ndarray]:
    v = np.arange(256, dtype=np.int64)
    y = _round_half_up_div((v - 16) * 255, 219)  # Y' = (Y - 16) * 255 / 219
    c = _round_half_up_div((v - 128) * 255 + 128 * 224, 224)  # C' = (C - 128) * 255 / 224 + 128
    return np.clip(y, 0, 255).astype(np.uint8), np.clip(c, 0, 255).astype(np.uint8)


_VIDEO_Y_LUT, _VIDEO_C_LUT = _video_to_full_luts()


def _check_dims(width: object, height: object, layout: str) -> tuple[int, int]:
    for label, v in (("width", width), ("height", height)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)) or int(v) < 1:
            raise FrameError(f"{layout} frame {label} must be a positive integer, got {v!r}.")
    return int(width), int(height)


def _check_range(color_range: str) -> None:
    if color_range not in COLOR_RANGES:
        raise FrameError(
            f"Unknown color_range {color_range!r}; use 'full' (Android camera, iOS 420f) or "
            "'video' (iOS 420v, Y 16..235)."
        )


def _as_bytes(buf: object, layout: str) -> np.ndarray:
    """A flat uint8 view of ``buf`` (bytes, bytearray, memoryview or 1-D uint8 array)."""
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8 or buf.ndim != 1:
            raise FrameError(
                f"{layout} buffer must be a 1-D uint8 array, got dtype {buf.dtype} shape {buf.shape}. "
                "Pass the raw bytes (e.g. arr.reshape(-1) of a uint8 array)."
            )
        return buf
    if isinstance(buf, (bytes, bytearray, memoryview)):
        try:
            return np.frombuffer(buf, dtype=np.uint8)
        except (ValueError, TypeError) as e:
            raise FrameError(f"{layout} buffer is not a contiguous byte buffer ({e}).") from e
    raise FrameError(
        f"{layout} buffer must be bytes, bytearray, memoryview or a 1-D uint8 array, got {type(buf).__name__}."
    )


def _expand(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, color_range: str) -> np.ndarray:
    """Full-resolution YUV444 from a Y plane (H, W) and chroma planes (ceil(H/2), ceil(W/2))."""
    h, w = y.shape
    out = np.empty((h, w, 3), dtype=np.uint8)
    out[:, :, 0] = y
    # Nearest upsampling: pixel (r, c) takes chroma sample (r // 2, c // 2).
    out[:, :, 1] = np.repeat(np.repeat(cb, 2, axis=0), 2, axis=1)[:h, :w]
    out[:, :, 2] = np.repeat(np.repeat(cr, 2, axis=0), 2, axis=1)[:h, :w]
    if color_range == "video":
        out[:, :, 0] = _VIDEO_Y_LUT[out[:, :, 0]]
        out[:, :, 1:] = _VIDEO_C_LUT[out[:, :, 1:]]
    return out


def _semi_planar_to_yuv(
    buf: object, width: object, height: object, row_stride: int | None, color_range: str, layout: str
) -> np.ndarray:
    w, h = _check_dims(width, height, layout)
    _check_range(color_range)
    data = _as_bytes(buf, layout)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    if row_stride is None:
        y_stride, c_stride = w, 2 * cw
        stride_text = "no row padding"
    else:
        if not isinstance(row_stride, (int, np.integer)) or isinstance(row_stride, bool):
            raise FrameError(f"row_stride must be an integer number of bytes, got {row_stride!r}.")
        if row_stride < 2 * cw:
            raise FrameError(
                f"row_stride {row_stride} is too small for a {layout} frame of width {w}: each row "
                f"needs at least {2 * cw} bytes (Y rows {w}, chroma rows 2*ceil(width/2) = {2 * cw}). "
                "Pass the plane's bytes-per-row as reported by the camera API."
            )
        y_stride = c_stride = int(row_stride)
        stride_text = f"row_stride {y_stride}"
    expected = y_stride * h + c_stride * ch
    if data.size != expected:
        raise FrameError(
            f"{layout} buffer for a {w}x{h} (width x height) frame with {stride_text} must be "
            f"{expected} bytes ({h} Y rows of {y_stride} + {ch} chroma rows of {c_stride}); got {data.size}. "
            "Check width/height/row_stride, or copy the planes into one contiguous buffer."
        )
    y = data[: y_stride * h].reshape(h, y_stride)[:, :w]
    c = data[y_stride * h :].reshape(ch, c_stride)[:, : 2 * cw].reshape(ch, cw, 2)
    first, second = c[:, :, 0], c[:, :, 1]
    cb, cr = (second, first) if layout == "NV21" else (first, second)
    return _expand(y, cb, cr, color_range)


def nv21_to_yuv(
    buf: object, width: int, height: int, *, row_stride: int | None = None, color_range: str = "full"
) -> np.ndarray:
    """Android NV21 (Y plane, then interleaved V,U plane) to YUV444.

    Layout: ``height`` rows of Y, then ceil(height/2) rows of V0 U0 V1 U1 ... (ceil(width/2)
    pairs). Without ``row_stride`` rows are packed (Y rows ``width`` bytes, chroma rows
    2*ceil(width/2) bytes); with it, every row of both planes takes ``row_stride`` bytes,
    the chroma plane starting at byte ``row_stride * height``.

    Args:
        buf: bytes, bytearray, memoryview or 1-D uint8 array, exactly the layout's size.
        width: Frame width in pixels.
        height: Frame height in pixels.
        row_stride: Bytes per row of both planes, >= 2*ceil(width/2); None when packed.
        color_range: ``"full"`` or ``"video"`` (expanded to full range).

    Returns:
        uint8 (height, width, 3) Y, Cb, Cr, full range.

    Raises:
        FrameError: wrong buffer size or type, bad stride, bad dimensions or unknown range.
    """
    return _semi_planar_to_yuv(buf, width, height, row_stride, color_range, "NV21")


def nv12_to_yuv(
    buf: object, width: int, height: int, *, row_stride: int | None = None, color_range: str = "full"
) -> np.ndarray:
    """NV12 (iOS ``420f``/``420v`` bi-planar: Y plane, then interleaved U,V plane) to YUV444.

    Same layout and arguments as :func:`nv21_to_yuv`, with U (Cb) before V (Cr). Use
    ``color_range="video"`` for ``kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange`` (420v).

    Returns:
        uint8 (height, width, 3) Y, Cb, Cr, full range.

    Raises:
        FrameError: wrong buffer size or type, bad stride, bad dimensions or unknown range.
    """
    return _semi_planar_to_yuv(buf, width, height, row_stride, color_range, "NV12")


def _i420_strides(w: int, row_stride: object) -> tuple[int, int]:
    """Y and chroma bytes per row of an I420 buffer: packed, or ``row_stride`` and its half."""
    if row_stride is None:
        return w, (w + 1) // 2
    if not isinstance(row_stride, (int, np.integer)) or isinstance(row_stride, bool):
        raise FrameError(f"row_stride must be an integer number of bytes, got {row_stride!r}.")
    if row_stride < w:
        raise FrameError(
            f"row_stride {row_stride} is too small for an I420 frame of width {w}: each Y row needs at "
            f"least {w} bytes. Pass the Y plane's bytes-per-row as reported by the camera API."
        )
    return int(row_stride), (int(row_stride) + 1) // 2


def i420_to_yuv(
    buf: object, width: int, height: int, *, row_stride: int | None = None, color_range: str = "full"
) -> np.ndarray:
    """I420 (planar: Y plane, U plane, V plane) to YUV444.

    Android's ``YUV_420_888`` at chroma pixel stride 1 is this layout. Without ``row_stride``
    the planes are packed: width*height bytes of Y, then ceil(width/2)*ceil(height/2) bytes of
    U, then as many of V. With it, every Y row takes ``row_stride`` bytes and every U and V row
    ``ceil(row_stride/2)`` bytes, the U plane starting at byte ``row_stride * height``.

    Args:
        row_stride: Bytes per Y row, >= width; None when packed.

    Returns:
        uint8 (height, width, 3) Y, Cb, Cr, full range.

    Raises:
        FrameError: wrong buffer size or type, bad dimensions, a stride below the width, or
            an unknown range.
    """
    w, h = _check_dims(width, height, "I420")
    _check_range(color_range)
    data = _as_bytes(buf, "I420")
    cw, ch = (w + 1) // 2, (h + 1) // 2
    y_stride, c_stride = _i420_strides(w, row_stride)
    expected = y_stride * h + 2 * c_stride * ch
    if data.size != expected:
        rows = "no row padding" if row_stride is None else f"row_stride {y_stride}"
        raise FrameError(
            f"I420 buffer for a {w}x{h} (width x height) frame with {rows} must be {expected} bytes "
            f"(Y {h} rows of {y_stride} + U and V {ch} rows of {c_stride} each); got {data.size}. "
            "Check width/height/row_stride."
        )
    y = data[: y_stride * h].reshape(h, y_stride)[:, :w]
    cb = data[y_stride * h : y_stride * h + c_stride * ch].reshape(ch, c_stride)[:, :cw]
    cr = data[y_stride * h + c_stride * ch :].reshape(ch, c_stride)[:, :cw]
    return _expand(y, cb, cr, color_range)


def _check_444(img: object, what: str) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        desc = f"dtype {img.dtype} shape {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise FrameError(f"{what} must be a uint8 (H, W, 3) array, got {desc}.")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise FrameError(f"{what} is empty (shape {img.shape}).")
    return img


def _matmul_round(img: np.ndarray, m: np.ndarray, offset: np.ndarray | None) -> np.ndarray:
    """clip(round_half_up((m @ pixel + offset) / 1e6), 0, 255) per pixel, exactly.

    int32 suffices: |m @ pixel + offset| < 2.2e8 and 2 * that + 1e6 < 2^31.
    """
    src = img.astype(np.int32)
    out = np.empty(img.shape, dtype=np.uint8)
    for k in range(3):
        acc = src[:, :, 0] * np.int32(m[k, 0]) + src[:, :, 1] * np.int32(m[k, 1]) + src[:, :, 2] * np.int32(m[k, 2])
        if offset is not None:
            acc += np.int32(offset[k])
        out[:, :, k] = np.clip((2 * acc + _SCALE) // (2 * _SCALE), 0, 255)
    return out


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """RGB to YUV444, JFIF (BT.601 full range), rounded half up and clipped to 0..255.

    Args:
        rgb: uint8 (H, W, 3), channels R, G, B.

    Returns:
        uint8 (H, W, 3) Y, Cb, Cr.

    Raises:
        FrameError: not a uint8 (H, W, 3) array.
    """
    return _matmul_round(_check_444(rgb, "RGB image"), _RGB2YUV, _RGB2YUV_OFFSET)


def bgr_to_yuv(bgr: np.ndarray) -> np.ndarray:
    """BGR (OpenCV's order) to YUV444; see :func:`rgb_to_yuv`."""
    return rgb_to_yuv(_check_444(bgr, "BGR image")[:, :, ::-1])


def yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    """YUV444 (JFIF full range) to RGB, rounded half up and clipped, for previews/overlays.

    Not an exact inverse of :func:`rgb_to_yuv` (both round), off by at most a few levels.

    Args:
        yuv: uint8 (H, W, 3) Y, Cb, Cr.

    Returns:
        uint8 (H, W, 3) R, G, B.

    Raises:
        FrameError: not a uint8 (H, W, 3) array.
    """
    src = _check_444(yuv, "YUV image").astype(np.int32)
    src[:, :, 1:] -= 128
    return _matmul_round(src, _YUV2RGB, None)


def yuv_to_bgr(yuv: np.ndarray) -> np.ndarray:
    """YUV444 to BGR (OpenCV's order); see :func:`yuv_to_rgb`."""
    return np.ascontiguousarray(yuv_to_rgb(yuv)[:, :, ::-1])


def _subsample(plane: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> (ceil(H/2), ceil(W/2)): mean of each 2x2 block (partial at odd edges),
    rounded half up: (2 * sum + n) // (2 * n) for the n pixels present."""
    h, w = plane.shape
    ch, cw = (h + 1) // 2, (w + 1) // 2
    padded = np.zeros((2 * ch, 2 * cw), dtype=np.int64)
    padded[:h, :w] = plane
    sums = padded.reshape(ch, 2, cw, 2).sum(axis=(1, 3))
    ones = np.zeros((2 * ch, 2 * cw), dtype=np.int64)
    ones[:h, :w] = 1
    n = ones.reshape(ch, 2, cw, 2).sum(axis=(1, 3))
    return ((2 * sums + n) // (2 * n)).astype(np.uint8)


def _to_semi_planar(yuv: np.ndarray, row_stride: int | None, v_first: bool, layout: str) -> np.ndarray:
    _check_444(yuv, "YUV image")
    h, w = yuv.shape[:2]
    cb, cr = _subsample(yuv[:, :, 1]), _subsample(yuv[:, :, 2])
    ch, cw = cb.shape
    if row_stride is None:
        y_stride, c_stride = w, 2 * cw
    else:
        if not isinstance(row_stride, (int, np.integer)) or isinstance(row_stride, bool) or row_stride < 2 * cw:
            raise FrameError(
                f"row_stride {row_stride!r} is too small for a {layout} frame of width {w}: "
                f"it must be an integer >= 2*ceil(width/2) = {2 * cw}."
            )
        y_stride = c_stride = int(row_stride)
    out = np.zeros(y_stride * h + c_stride * ch, dtype=np.uint8)
    out[: y_stride * h].reshape(h, y_stride)[:, :w] = yuv[:, :, 0]
    c = out[y_stride * h :].reshape(ch, c_stride)[:, : 2 * cw].reshape(ch, cw, 2)
    c[:, :, 0], c[:, :, 1] = (cr, cb) if v_first else (cb, cr)
    return out


def yuv_to_nv21(yuv: np.ndarray, *, row_stride: int | None = None) -> np.ndarray:
    """YUV444 to an NV21 buffer (for golden camera buffers and tests).

    Chroma is the mean of each 2x2 block (of the 1 or 2 pixels present at an odd right/bottom
    edge), rounded half up. Padding bytes (with ``row_stride``) are 0.

    Args:
        yuv: uint8 (H, W, 3) Y, Cb, Cr, full range.
        row_stride: Bytes per row of both planes (>= 2*ceil(W/2)); None for packed rows.

    Returns:
        1-D uint8 array in the :func:`nv21_to_yuv` layout (``.tobytes()`` for bytes).

    Raises:
        FrameError: not a uint8 (H, W, 3) array, or the stride is too small.
    """
    return _to_semi_planar(yuv, row_stride, v_first=True, layout="NV21")


def yuv_to_nv12(yuv: np.ndarray, *, row_stride: int | None = None) -> np.ndarray:
    """YUV444 to an NV12 buffer; as :func:`yuv_to_nv21` with U before V."""
    return _to_semi_planar(yuv, row_stride, v_first=False, layout="NV12")


def yuv_to_i420(yuv: np.ndarray, *, row_stride: int | None = None) -> np.ndarray:
    """YUV444 to an I420 buffer (Y, U, V planes); chroma as in :func:`yuv_to_nv21`.

    Args:
        row_stride: Bytes per Y row (>= W; chroma rows take half, rounded up); None for packed
            rows. Padding bytes are 0.

    Returns:
        1-D uint8 array in the :func:`i420_to_yuv` layout.

    Raises:
        FrameError: not a uint8 (H, W, 3) array, or the stride is too small.
    """
    _check_444(yuv, "YUV image")
    h, w = yuv.shape[:2]
    y_stride, c_stride = _i420_strides(w, row_stride)
    cb, cr = _subsample(yuv[:, :, 1]), _subsample(yuv[:, :, 2])
    ch, cw = cb.shape
    out = np.zeros(y_stride * h + 2 * c_stride * ch, dtype=np.uint8)
    out[: y_stride * h].reshape(h, y_stride)[:, :w] = yuv[:, :, 0]
    out[y_stride * h : y_stride * h + c_stride * ch].reshape(ch, c_stride)[:, :cw] = cb
    out[y_stride * h + c_stride * ch :].reshape(ch, c_stride)[:, :cw] = cr
    return out


def model_input(yuv: np.ndarray) -> np.ndarray:
    """The network's image channels: (H, W, 3) YUV -> float32 (3, H, W), value / 255.

    Args:
        yuv: (H, W, 3) Y, Cb, Cr, full range: uint8, or float32 with values in 0..255 as
            :func:`backdrop.core.buckets.to_bucket` returns them.

    Returns:
        float32 (3, H, W) in [0, 1] (channels Y, Cb, Cr), each value a float32 division by 255.

    Raises:
        FrameError: not an (H, W, 3) uint8 or float32 array.
    """
    if (
        not isinstance(yuv, np.ndarray)
        or yuv.ndim != 3
        or yuv.shape[2] != 3
        or yuv.dtype not in (np.uint8, np.float32)
    ):
        desc = f"dtype {yuv.dtype} shape {yuv.shape}" if isinstance(yuv, np.ndarray) else type(yuv).__name__
        raise FrameError(f"model_input needs a uint8 or float32 (H, W, 3) YUV array, got {desc}.")
    chw = np.transpose(yuv, (2, 0, 1)).astype(np.float32)
    return np.ascontiguousarray(chw / np.float32(255))
