"""Ordered frame sources: a video file, a folder of images, or one image.

Every source yields :class:`Frame` objects holding the frame as uint8 YUV444 (BT.601 full
range, see docs/frames.md), the form every later stage takes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from backdrop.core.errors import InputError
from backdrop.core.frames import bgr_to_yuv

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True)
class Frame:
    """One input frame. ``yuv``: uint8 (H, W, 3), Y/U/V BT.601 full range."""

    index: int
    name: str
    yuv: np.ndarray

    @property
    def height(self) -> int:
        return int(self.yuv.shape[0])

    @property
    def width(self) -> int:
        return int(self.yuv.shape[1])


def _bgr(image: np.ndarray, path: Path) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if image.shape[2] == 3:
        return image
    raise InputError(f"{path}: unsupported image with {image.shape[2]} channels (expected 1, 3 or 4).")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 BGR (H, W, 3). 16-bit images are scaled to 8 bits."""
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"Could not read image {path}: missing, empty or not an image format OpenCV reads.")
    if image.dtype == np.uint16:
        image = (image.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if image.dtype != np.uint8:
        raise InputError(f"{path}: unsupported image dtype {image.dtype} (expected 8- or 16-bit).")
    return _bgr(image, path)


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (the frame order)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def iter_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[Frame]:
    """Yield frames in order from a video file, an image folder (sorted by file name) or an image.

    Raises:
        InputError: the path is missing, holds no frames, or a file cannot be decoded.
    """
    path = Path(path)
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be at least 1, got {max_frames}.")
    if not path.exists():
        raise InputError(f"Input not found: {path}. Pass a video file, a folder of images, or an image.")
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise InputError(f"No images in {path} (looked for {', '.join(IMAGE_SUFFIXES)}).")
        for i, f in enumerate(files[:max_frames]):
            yield Frame(i, f.name, bgr_to_yuv(read_image(f)))
        return
    if path.suffix.lower() in IMAGE_SUFFIXES:
        yield Frame(0, path.name, bgr_to_yuv(read_image(path)))
        return
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"Could not open {path} as a video (suffix {path.suffix!r}); is it a video OpenCV can decode?")
        i = 0
        while max_frames is None or i < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            yield Frame(i, f"frame_{i:05d}", bgr_to_yuv(bgr))
            i += 1
        if i == 0:
            raise InputError(f"{path} opened as a video but holds no decodable frames.")
    finally:
        cap.release()
