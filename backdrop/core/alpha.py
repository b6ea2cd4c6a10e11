"""From the frame-sized person probability to what an app composites with.

The model gives a soft probability per pixel (mapped back to the camera frame by
:func:`backdrop.core.buckets.from_bucket`). An app either cuts with a binary mask or feathers
the edge with an alpha ramp. Both are float32 operations in a fixed order, so app code
(android_demo/core ``Alpha.kt``, ios_demo's BackdropKit) reproduces them bit for bit:

    binary   person = p >= float32(threshold)                      (manifest ``threshold``)
    feather  t = (p - lo) / (hi - lo)      float32, each operation rounded, hi - lo first
             t = min(max(t, 0), 1)
             alpha = floor(t * 255 + 0.5)  uint8, float32 multiply and add
             with lo = float32(low), hi = float32(high), low < high

A feather band centred on the threshold (``low = threshold - 0.2``, ``high = threshold + 0.2``,
:data:`DEFAULT_FEATHER`) keeps the binary cut inside the ramp's middle.
"""

from __future__ import annotations

import numpy as np

from backdrop.core.errors import InputError

DEFAULT_FEATHER = 0.2
"""Half-width of the default feather band around the threshold."""


def _check_mask(mask: object) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.dtype != np.float32 or mask.ndim != 2:
        desc = f"dtype {mask.dtype}, shape {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise InputError(f"A mask is a float32 (H, W) probability array; got {desc}.")
    return mask


def binary_mask(mask: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 (H, W): 1 where ``mask >= float32(threshold)``, else 0.

    Raises:
        InputError: ``mask`` is not float32 (H, W), or the threshold is outside [0, 1].
    """
    mask = _check_mask(mask)
    if not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"threshold {threshold} is not within [0, 1]; the manifest's `threshold` is.")
    return (mask >= np.float32(threshold)).astype(np.uint8)


def feather_band(threshold: float, half_width: float = DEFAULT_FEATHER) -> tuple[float, float]:
    """The band ``(threshold - half_width, threshold + half_width)``."""
    return threshold - half_width, threshold + half_width


def feather_alpha(mask: np.ndarray, low: float, high: float) -> np.ndarray:
    """uint8 (H, W) alpha, 0 at ``p <= low`` up to 255 at ``p >= high`` (module docstring's order).

    Raises:
        InputError: ``mask`` is not float32 (H, W), or ``low >= high`` in float32.
    """
    mask = _check_mask(mask)
    lo, hi = np.float32(low), np.float32(high)
    if not lo < hi:
        raise InputError(f"A feather band needs low < high; got low={low}, high={high}.")
    width = np.float32(hi - lo)
    t = ((mask - lo) / width).astype(np.float32)
    t = np.minimum(np.maximum(t, np.float32(0)), np.float32(1))
    return np.floor(t * np.float32(255) + np.float32(0.5)).astype(np.uint8)
