"""Pictures a person would rather look at than numbers: mask overlays and contact sheets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from backdrop.core.errors import OutputPathError
from backdrop.core.frames import yuv_to_bgr
from backdrop.core.fsutil import check_writable


def check_sheet_path(path: str | os.PathLike, what: str = "--overlay") -> Path:
    """Check before any work that :func:`contact_sheet` can write ``path``: a writable place and an
    image format OpenCV can encode (by extension, e.g. .png).

    Raises:
        OutputPathError: the path cannot be written or its extension is not an image format.
    """
    path = check_writable(path, what, example="overlay.png")
    if not cv2.haveImageWriter(str(path)):
        raise OutputPathError(
            f"Cannot write {what} {path}: {path.suffix or 'no extension'} is not an image format OpenCV can write. "
            f"Use a .png path, e.g. {what} {path.with_suffix('.png')}."
        )
    return path


def overlay(yuv: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """BGR uint8 picture of a frame with the background dimmed and the mask outline drawn.

    Args:
        yuv: uint8 (H, W, 3) YUV444 frame.
        mask: float (H, W) person probability.
        threshold: binarisation threshold of the outline.
    """
    bgr = yuv_to_bgr(yuv).astype(np.float32)
    p = np.clip(mask, 0.0, 1.0)[..., None]
    out = bgr * (0.25 + 0.75 * p) + np.array([60.0, 0.0, 0.0]) * (1.0 - p)  # dim + blue-tint background
    binary = (mask >= threshold).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.clip(out, 0, 255).astype(np.uint8)
    cv2.drawContours(out, contours, -1, (0, 255, 0), 1)
    return out


def contact_sheet(
    tiles: Sequence[np.ndarray], labels: Sequence[str], path: str | os.PathLike, columns: int = 6, tile_width: int = 240
) -> Path:
    """Write BGR tiles in a grid with a label under each, as one PNG."""
    if not tiles:
        raise ValueError("contact_sheet needs at least one tile")
    resized = []
    for t in tiles:
        h = max(1, round(t.shape[0] * tile_width / t.shape[1]))
        resized.append(cv2.resize(t, (tile_width, h), interpolation=cv2.INTER_AREA))
    cell_h = max(r.shape[0] for r in resized) + 18
    rows = (len(resized) + columns - 1) // columns
    sheet = np.full((rows * cell_h, columns * tile_width, 3), 255, np.uint8)
    for i, (r, label) in enumerate(zip(resized, labels, strict=True)):
        y, x = (i // columns) * cell_h, (i % columns) * tile_width
        sheet[y : y + r.shape[0], x : x + tile_width] = r
        cv2.putText(sheet, label, (x + 3, y + cell_h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"could not write {path}")
    return path
