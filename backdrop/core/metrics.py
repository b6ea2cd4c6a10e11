"""Segmentation quality metrics: mask IoU, Boundary IoU, temporal consistency, border-band error.

Array contract for every function here:

- A *mask* is a 2-D ``(H, W)`` array. ``bool`` arrays are used as they are; any other dtype is
  binarised as ``mask >= threshold`` (default 0.5, the same rule as
  :meth:`backdrop.core.maskio.MaskSequence.binary`). So float soft masks in ``[0, 1]`` and integer
  labels in ``{0, 1}`` or ``{0, 255}`` all work; 8-bit *soft* masks (0..255) must be divided by
  255 first (``backdrop.orchestration.evaluate`` does this when it reads PNGs).
- A *frame* (for optical flow) is ``uint8`` ``(H, W)`` luma/grey or ``(H, W, 3)`` BGR as
  ``cv2.imread``/``cv2.VideoCapture`` return it; it is converted to luma (BT.601, the Y of YUV).
- Both masks of a comparison must have the same shape; any size is accepted.

Both-empty rule: when prediction and label are both empty (no person anywhere), IoU and Boundary
IoU are undefined (0/0). They score :data:`BOTH_EMPTY_SCORE` = 1.0 by default: "no person" was
predicted correctly. Every scoring function takes ``empty_score`` to override it (pass
``float("nan")`` to exclude such frames from ``np.nanmean``). One empty mask against a non-empty
one scores 0.0.

Definitions and tolerances: docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from backdrop.core.errors import ConfigError, FrameError

BOTH_EMPTY_SCORE = 1.0
"""Score of IoU / Boundary IoU when both masks are empty (the union is empty)."""

DEFAULT_THRESHOLD = 0.5
"""Soft masks are binarised as ``p >= threshold``."""

DEFAULT_DILATION_RATIO = 0.02
"""Boundary width as a fraction of the image diagonal (boundary-iou-api's default)."""

FLOW_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
"""OpenCV DIS optical-flow presets by name."""

DEFAULT_FLOW_PRESET = "medium"


# --------------------------------------------------------------------------------------------
# Mask IoU and Boundary IoU
# --------------------------------------------------------------------------------------------


def binarize(mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Return ``mask`` as a bool ``(H, W)`` array.

    Args:
        mask: ``(H, W)`` bool, or numeric (soft probabilities in [0, 1] or 0/1 / 0/255 labels).
        threshold: foreground is ``mask >= threshold``; ignored for bool masks.

    Returns:
        The binary mask, bool ``(H, W)``.

    Raises:
        FrameError: ``mask`` is not 2-D.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise FrameError(f"A mask must be a 2-D (H, W) array; got shape {mask.shape}.")
    if mask.dtype == bool:
        return mask
    return mask >= threshold


def _check_threshold(threshold: float) -> None:
    if not (0.0 < threshold <= 1.0) or math.isnan(threshold):
        raise ConfigError(f"Mask threshold must be in (0, 1]; got {threshold}. The usual value is 0.5.")


def _pair(prediction: np.ndarray, label: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    _check_threshold(threshold)
    p = binarize(prediction, threshold)
    g = binarize(label, threshold)
    if p.shape != g.shape:
        raise FrameError(
            f"Prediction and label sizes differ: {p.shape} vs {g.shape} (H, W). "
            "Resize the prediction to the label's size before scoring."
        )
    return p, g


def _ratio(num: int, den: int, empty_score: float) -> float:
    return float(empty_score) if den == 0 else num / den


def iou(
    prediction: np.ndarray,
    label: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    empty_score: float = BOTH_EMPTY_SCORE,
) -> float:
    """Mask intersection over union, ``|P & G| / |P | G|``.

    Args:
        prediction: ``(H, W)`` mask (see the module docstring for accepted dtypes).
        label: ``(H, W)`` mask of the same shape.
        threshold: binarisation threshold for non-bool masks.
        empty_score: score when both masks are empty (default 1.0).

    Returns:
        IoU in [0, 1] (or ``empty_score``).

    Raises:
        FrameError: shapes differ or a mask is not 2-D.
        ConfigError: ``threshold`` is not in (0, 1].
    """
    p, g = _pair(prediction, label, threshold)
    inter = int(np.count_nonzero(p & g))
    union = int(np.count_nonzero(p | g))
    return _ratio(inter, union, empty_score)


def boundary_dilation(height: int, width: int, dilation_ratio: float = DEFAULT_DILATION_RATIO) -> int:
    """Boundary width ``d`` in pixels: ``max(1, round(ratio * sqrt(H^2 + W^2)))``.

    Python's ``round`` (half to even), as boundary-iou-api does.

    Raises:
        ConfigError: ``dilation_ratio`` is not positive.
    """
    if not dilation_ratio > 0:
        raise ConfigError(f"Boundary IoU dilation ratio must be > 0; got {dilation_ratio}. The usual value is 0.02.")
    return max(1, int(round(float(dilation_ratio) * math.sqrt(height**2 + width**2))))


def mask_boundary(
    mask: np.ndarray,
    *,
    dilation_ratio: float = DEFAULT_DILATION_RATIO,
    threshold: float = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """The inner boundary band of a mask, as boundary-iou-api's ``mask_to_boundary``.

    Pads the mask with one pixel of zeros (so the image border counts as background), erodes it
    ``d`` times with a 3x3 ones kernel (``d`` from :func:`boundary_dilation`), crops the pad, and
    keeps the mask pixels the erosion removed: the mask pixels within chessboard distance ``d``
    of a background pixel or of the image border.

    Args:
        mask: ``(H, W)`` mask.
        dilation_ratio: boundary width as a fraction of the image diagonal.
        threshold: binarisation threshold for non-bool masks.

    Returns:
        bool ``(H, W)``: ``mask & ~eroded``.
    """
    m = binarize(mask, threshold)
    h, w = m.shape
    d = boundary_dilation(h, w, dilation_ratio)
    padded = cv2.copyMakeBorder(m.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1 : h + 1, 1 : w + 1]
    return m & (eroded == 0)


def boundary_counts(
    prediction: np.ndarray,
    label: np.ndarray,
    *,
    dilation_ratio: float = DEFAULT_DILATION_RATIO,
    threshold: float = DEFAULT_THRESHOLD,
) -> tuple[int, int]:
    """Pixel counts behind Boundary IoU: ``(|Bp & Bg|, |Bp | Bg|)``.

    Args and Raises: as :func:`boundary_iou`.
    """
    p, g = _pair(prediction, label, threshold)
    bp = mask_boundary(p, dilation_ratio=dilation_ratio)
    bg = mask_boundary(g, dilation_ratio=dilation_ratio)
    return int(np.count_nonzero(bp & bg)), int(np.count_nonzero(bp | bg))


def boundary_iou(
    prediction: np.ndarray,
    label: np.ndarray,
    *,
    dilation_ratio: float = DEFAULT_DILATION_RATIO,
    threshold: float = DEFAULT_THRESHOLD,
    empty_score: float = BOTH_EMPTY_SCORE,
) -> float:
    """Boundary IoU (Cheng et al. 2021): IoU of the two masks' inner boundary bands.

    ``BIoU = |Bp & Bg| / |Bp | Bg|`` with ``B = mask_boundary(mask)``. A non-empty mask always
    has a non-empty boundary, so the union is empty only when both masks are empty.

    Args:
        prediction: ``(H, W)`` mask.
        label: ``(H, W)`` mask of the same shape.
        dilation_ratio: boundary width as a fraction of the image diagonal (default 0.02).
        threshold: binarisation threshold for non-bool masks.
        empty_score: score when both masks are empty (default 1.0).

    Returns:
        Boundary IoU in [0, 1] (or ``empty_score``).

    Raises:
        FrameError: shapes differ or a mask is not 2-D.
        ConfigError: bad ``dilation_ratio`` or ``threshold``.
    """
    inter, union = boundary_counts(prediction, label, dilation_ratio=dilation_ratio, threshold=threshold)
    return _ratio(inter, union, empty_score)


# --------------------------------------------------------------------------------------------
# Temporal consistency
# --------------------------------------------------------------------------------------------


def to_luma(frame: np.ndarray) -> np.ndarray:
    """Luma of a frame, uint8 ``(H, W)``.

    Args:
        frame: uint8 ``(H, W)`` (already luma/grey), ``(H, W, 1)``, or ``(H, W, 3)`` BGR.

    Raises:
        FrameError: wrong dtype or layout.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise FrameError(f"Frames for optical flow must be uint8 (BGR or grey); got {frame.dtype}.")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    raise FrameError(f"Frames for optical flow must be (H, W) grey or (H, W, 3) BGR; got shape {frame.shape}.")


def make_flow_estimator(preset: str = DEFAULT_FLOW_PRESET) -> cv2.DISOpticalFlow:
    """An OpenCV DIS optical-flow estimator for a preset name.

    Raises:
        ConfigError: unknown preset; the message lists the valid names.
    """
    if preset not in FLOW_PRESETS:
        raise ConfigError(f"Unknown optical-flow preset {preset!r}. Valid: {', '.join(FLOW_PRESETS)}.")
    return cv2.DISOpticalFlow_create(FLOW_PRESETS[preset])


def backward_flow(
    frame_prev: np.ndarray,
    frame_next: np.ndarray,
    *,
    preset: str = DEFAULT_FLOW_PRESET,
    estimator: cv2.DISOpticalFlow | None = None,
) -> np.ndarray:
    """Backward optical flow from frame N+1 to frame N, DIS on luma.

    The flow ``f`` lives on frame N+1's pixel grid: ``next[y, x] ~ prev[y + f[y, x, 1],
    x + f[y, x, 0]]``. That is what :func:`warp_backward` needs to pull frame N's mask onto
    frame N+1.

    Args:
        frame_prev: frame N (uint8 grey or BGR).
        frame_next: frame N+1, same size.
        preset: DIS preset name (``ultrafast``, ``fast``, ``medium``); ignored if ``estimator``.
        estimator: a reusable estimator from :func:`make_flow_estimator`.

    Returns:
        float32 ``(H, W, 2)``, (dx, dy) in pixels.

    Raises:
        FrameError: frames differ in size or are not uint8 grey/BGR.
        ConfigError: unknown preset.
    """
    a, b = to_luma(frame_prev), to_luma(frame_next)
    if a.shape != b.shape:
        raise FrameError(f"Consecutive frames differ in size: {a.shape} vs {b.shape} (H, W).")
    dis = estimator if estimator is not None else make_flow_estimator(preset)
    return dis.calc(b, a, None)


def warp_backward(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Pull frame N's mask onto frame N+1's grid with a backward flow (``cv2.remap``).

    ``out[y, x] = mask[y + flow[y, x, 1], x + flow[y, x, 0]]``, bilinear, sampling outside the
    frame replicating the edge (a person cut by the bottom edge continues below it).

    Args:
        mask: ``(H, W)`` bool or soft mask of frame N.
        flow: float32 ``(H, W, 2)`` backward flow from :func:`backward_flow`.

    Returns:
        float32 ``(H, W)`` soft mask on frame N+1's grid (binary inputs become 0/1 floats with
        fractional values only where the flow is fractional).

    Raises:
        FrameError: the flow does not match the mask's size.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise FrameError(f"A mask must be a 2-D (H, W) array; got shape {m.shape}.")
    flow = np.asarray(flow, dtype=np.float32)
    if flow.shape != (*m.shape, 2):
        raise FrameError(f"Flow shape {flow.shape} does not match mask shape {m.shape}; expected (H, W, 2).")
    h, w = m.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        m.astype(np.float32),
        gx + flow[:, :, 0],
        gy + flow[:, :, 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def warped_iou(
    mask_prev: np.ndarray,
    mask_next: np.ndarray,
    flow: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    empty_score: float = BOTH_EMPTY_SCORE,
) -> float:
    """IoU of frame N's prediction warped to N+1 (backward flow) with frame N+1's raw prediction.

    The warped mask is binarised at ``threshold`` after bilinear warping.
    """
    return iou(warp_backward(mask_prev, flow), mask_next, threshold=threshold, empty_score=empty_score)


def mean_abs_change(mask_prev: np.ndarray, mask_next: np.ndarray) -> float:
    """Mean absolute per-pixel change between two soft masks (values in [0, 1]).

    Raises:
        FrameError: shapes differ.
    """
    a = np.asarray(mask_prev, dtype=np.float32)
    b = np.asarray(mask_next, dtype=np.float32)
    if a.shape != b.shape:
        raise FrameError(f"Consecutive masks differ in size: {a.shape} vs {b.shape} (H, W).")
    return float(np.mean(np.abs(b - a), dtype=np.float64))


@dataclass(frozen=True)
class TemporalScores:
    """Temporal consistency of a mask sequence, one value per consecutive pair (N, N+1).

    Attributes:
        static_iou: IoU of predictions N and N+1 (assumes the scene did not move).
        warped_iou: IoU of prediction N warped to N+1 by optical flow with prediction N+1;
            ``None`` when no frames were given.
        mean_abs_change: mean absolute change of the soft masks.
        flow_preset: DIS preset used, or ``None``.
    """

    static_iou: tuple[float, ...]
    warped_iou: tuple[float, ...] | None
    mean_abs_change: tuple[float, ...]
    flow_preset: str | None


def temporal_consistency(
    masks: Sequence[np.ndarray],
    frames: Sequence[np.ndarray] | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    preset: str = DEFAULT_FLOW_PRESET,
    empty_score: float = BOTH_EMPTY_SCORE,
) -> TemporalScores:
    """Temporal consistency scores of a sequence of (soft) masks.

    Args:
        masks: N masks, ``(H, W)`` each, in frame order.
        frames: the N frames the masks belong to (uint8 grey or BGR, same sizes as the masks),
            or ``None`` to skip the flow-warped IoU.
        threshold: binarisation threshold.
        preset: DIS preset for the flow-warped IoU.
        empty_score: score of a pair of empty masks.

    Returns:
        :class:`TemporalScores` with N-1 values per metric. A pair whose masks differ in size
        scores NaN (there is no pixel correspondence).

    Raises:
        FrameError: ``frames`` has a different length than ``masks`` or a frame's size differs
            from its mask's.
        ConfigError: unknown preset or bad threshold.
    """
    _check_threshold(threshold)
    n = len(masks)
    if frames is not None and len(frames) != n:
        raise FrameError(f"Got {len(frames)} frames for {n} masks; give one frame per mask.")
    estimator = make_flow_estimator(preset) if frames is not None else None
    static: list[float] = []
    warped: list[float] = []
    change: list[float] = []
    for i in range(n - 1):
        a, b = np.asarray(masks[i]), np.asarray(masks[i + 1])
        if a.shape != b.shape:
            static.append(math.nan)
            change.append(math.nan)
            warped.append(math.nan)
            continue
        static.append(iou(a, b, threshold=threshold, empty_score=empty_score))
        change.append(mean_abs_change(a, b))
        if frames is not None:
            fa, fb = frames[i], frames[i + 1]
            if fa.shape[:2] != a.shape or fb.shape[:2] != b.shape:
                raise FrameError(
                    f"Frame {i} or {i + 1} has size {fa.shape[:2]}/{fb.shape[:2]} but its mask is {a.shape} (H, W)."
                )
            flow = backward_flow(fa, fb, estimator=estimator)
            warped.append(warped_iou(a, b, flow, threshold=threshold, empty_score=empty_score))
    return TemporalScores(
        static_iou=tuple(static),
        warped_iou=tuple(warped) if frames is not None else None,
        mean_abs_change=tuple(change),
        flow_preset=preset if frames is not None else None,
    )


# --------------------------------------------------------------------------------------------
# Border-band error (replicate-padding artifacts near a bucket's padded edge)
# --------------------------------------------------------------------------------------------


def edge_band(
    height: int,
    width: int,
    k: int,
    *,
    top: bool = False,
    bottom: bool = False,
    left: bool = False,
    right: bool = False,
) -> np.ndarray:
    """Band of ``k`` pixels along the chosen edges of an ``(height, width)`` array.

    Use it on masks at frame resolution (after un-padding), where the padded edges of the bucket
    became the frame's edges on those sides.

    Returns:
        bool ``(height, width)``.

    Raises:
        ConfigError: ``k`` < 1 or a non-positive size.
    """
    if k < 1 or height < 1 or width < 1:
        raise ConfigError(f"Band width must be >= 1 pixel and the size positive; got k={k}, size {height}x{width}.")
    band = np.zeros((height, width), dtype=bool)
    if top:
        band[:k, :] = True
    if bottom:
        band[max(0, height - k) :, :] = True
    if left:
        band[:, :k] = True
    if right:
        band[:, max(0, width - k) :] = True
    return band


def padded_edge_band(
    height: int,
    width: int,
    k: int,
    *,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
) -> np.ndarray:
    """Content pixels within ``k`` pixels of a padded edge of a bucket-sized array.

    The content occupies rows ``[pad_top, height - pad_bottom)`` and columns
    ``[pad_left, width - pad_right)`` (a ``Placement``'s pad sizes). Only sides with a pad > 0
    get a band: on the others the content edge is the camera frame's true edge.

    Args:
        height: bucket height (network input/output rows).
        width: bucket width.
        k: band width in pixels (inside the content).
        pad_top: padded rows above the content.
        pad_bottom: padded rows below the content.
        pad_left: padded columns left of the content.
        pad_right: padded columns right of the content.

    Returns:
        bool ``(height, width)``; the padding itself is never in the band.

    Raises:
        ConfigError: negative pads, pads that leave no content, or ``k`` < 1.
    """
    pads = (pad_top, pad_bottom, pad_left, pad_right)
    if min(pads) < 0 or pad_top + pad_bottom >= height or pad_left + pad_right >= width:
        raise ConfigError(f"Pads (top, bottom, left, right) = {pads} leave no content in a {height}x{width} bucket.")
    ch, cw = height - pad_top - pad_bottom, width - pad_left - pad_right
    inner = edge_band(ch, cw, k, top=pad_top > 0, bottom=pad_bottom > 0, left=pad_left > 0, right=pad_right > 0)
    band = np.zeros((height, width), dtype=bool)
    band[pad_top : pad_top + ch, pad_left : pad_left + cw] = inner
    return band


@dataclass(frozen=True)
class BandError:
    """Errors of a prediction inside a band of pixels, and outside it for comparison.

    Attributes:
        band_pixels: pixels in the band.
        band_errors: band pixels where prediction and label disagree.
        band_error_rate: ``band_errors / band_pixels`` (NaN for an empty band).
        outside_error_rate: disagreement rate over the pixels outside the band (NaN if none).
        band_iou: IoU restricted to the band (``empty_score`` when both are empty there).
    """

    band_pixels: int
    band_errors: int
    band_error_rate: float
    outside_error_rate: float
    band_iou: float


def band_error(
    prediction: np.ndarray,
    label: np.ndarray,
    band: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    empty_score: float = BOTH_EMPTY_SCORE,
) -> BandError:
    """Prediction errors restricted to a band (e.g. from :func:`padded_edge_band`).

    Raises:
        FrameError: prediction, label and band shapes differ.
    """
    p, g = _pair(prediction, label, threshold)
    band = np.asarray(band, dtype=bool)
    if band.shape != p.shape:
        raise FrameError(f"Band shape {band.shape} does not match the masks' shape {p.shape}.")
    wrong = p != g
    nb = int(np.count_nonzero(band))
    nb_err = int(np.count_nonzero(wrong & band))
    n_out = p.size - nb
    out_err = int(np.count_nonzero(wrong & ~band))
    inter = int(np.count_nonzero(p & g & band))
    union = int(np.count_nonzero((p | g) & band))
    return BandError(
        band_pixels=nb,
        band_errors=nb_err,
        band_error_rate=nb_err / nb if nb else math.nan,
        outside_error_rate=out_err / n_out if n_out else math.nan,
        band_iou=_ratio(inter, union, empty_score),
    )


def border_band_error(
    prediction: np.ndarray,
    label: np.ndarray,
    k: int,
    *,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
    threshold: float = DEFAULT_THRESHOLD,
) -> BandError:
    """Errors within ``k`` pixels of a bucket's padded edges, masks at bucket resolution.

    Args:
        prediction: ``(H, W)`` bucket-sized mask (the network output before un-padding).
        label: ``(H, W)`` bucket-sized label placed the same way.
        k: band width in pixels.
        pad_top: padded rows above the content (``Placement.pad_top``).
        pad_bottom: padded rows below the content.
        pad_left: padded columns left of the content.
        pad_right: padded columns right of the content.
        threshold: binarisation threshold.

    Returns:
        :class:`BandError`; pixels in the padding are in neither the band nor "outside".
    """
    p, g = _pair(prediction, label, threshold)
    h, w = p.shape
    band = padded_edge_band(h, w, k, pad_top=pad_top, pad_bottom=pad_bottom, pad_left=pad_left, pad_right=pad_right)
    # Score content pixels only: crop to the content rectangle, where the band lives.
    rows = slice(pad_top, h - pad_bottom)
    cols = slice(pad_left, w - pad_right)
    return band_error(p[rows, cols], g[rows, cols], band[rows, cols], threshold=threshold)
