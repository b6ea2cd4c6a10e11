"""Per-frame mask sequences on disk: the ``masks.npz`` format ``backdrop predict`` writes.

This is the reference every exported artifact is compared against, and what ``backdrop eval``
reads, so the format is a documented contract (docs/masks-format.md):

``np.savez_compressed`` archive, loadable with ``np.load(path)`` (no pickle):

- ``format``: 0-d str ``"backdrop-masks"``; ``format_version``: 0-d int64, currently 1.
- ``num_frames``: 0-d int64, N.
- ``mask_00000`` ... ``mask_{N-1:05d}``: float32 (H_i, W_i), the soft mask (person
  probability in [0, 1]) at frame i's own resolution. Binary mask: ``p >= threshold``.
- ``frame_names``: str (N,), file name of each frame, or ``frame_00012`` for video frames.
- ``frame_sizes``: int32 (N, 2), (height, width) of each frame.
- ``buckets``: str (N,), the bucket each frame was run in ("" when not applicable).
- ``resets``: bool (N,), True where the mask-feedback state was reset before the frame
  (first frame, or the bucket changed).
- ``threshold``: 0-d float32, the binarisation threshold (0.5).
- ``meta_json``: 0-d str, JSON object: producer, backdrop version, checkpoint path and sha256,
  model config, bucket set, input source.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backdrop.core.errors import InputError
from backdrop.core.fsutil import atomic_write

FORMAT = "backdrop-masks"
FORMAT_VERSION = 1


@dataclass
class MaskSequence:
    """Soft masks for an ordered sequence of frames, each at its frame's own size."""

    masks: list[np.ndarray]
    frame_names: list[str]
    buckets: list[str]
    resets: list[bool]
    threshold: float = 0.5
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.masks)
        for name, seq in (("frame_names", self.frame_names), ("buckets", self.buckets), ("resets", self.resets)):
            if len(seq) != n:
                raise ValueError(f"MaskSequence: {name} has {len(seq)} entries for {n} masks")
        for i, m in enumerate(self.masks):
            if m.ndim != 2:
                raise ValueError(f"MaskSequence: mask {i} has shape {m.shape}, expected (H, W)")

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def frame_sizes(self) -> list[tuple[int, int]]:
        return [(int(m.shape[0]), int(m.shape[1])) for m in self.masks]

    def binary(self, i: int) -> np.ndarray:
        """Frame i's mask thresholded to bool."""
        return self.masks[i] >= self.threshold


def save_masks(seq: MaskSequence, path: str | os.PathLike) -> Path:
    """Write ``seq`` to ``path`` atomically (a failed write leaves no file behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "num_frames": np.array(len(seq), dtype=np.int64),
        "frame_names": np.array(seq.frame_names, dtype=str),
        "frame_sizes": np.array(seq.frame_sizes, dtype=np.int32).reshape(len(seq), 2),
        "buckets": np.array(seq.buckets, dtype=str),
        "resets": np.array(seq.resets, dtype=bool),
        "threshold": np.array(seq.threshold, dtype=np.float32),
        "meta_json": np.array(json.dumps(seq.meta, sort_keys=True)),
    }
    for i, m in enumerate(seq.masks):
        arrays[f"mask_{i:05d}"] = np.asarray(m, dtype=np.float32)
    with atomic_write(path) as f:
        np.savez_compressed(f, **arrays)
    return path


def load_masks(path: str | os.PathLike) -> MaskSequence:
    """Read a ``masks.npz`` written by :func:`save_masks`.

    Raises:
        InputError: the file is missing, not an npz, or not in this format.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Mask file not found: {path}. Run `backdrop predict ... --out {path.name}` to make one.")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises several types for a non-npz file
        raise InputError(f"{path} is not a masks.npz archive ({e}).") from e
    with z:
        if "format" not in z.files or str(z["format"]) != FORMAT:
            raise InputError(f"{path} is an npz file but not a backdrop masks file (no format={FORMAT!r}).")
        version = int(z["format_version"])
        if version != FORMAT_VERSION:
            raise InputError(f"{path} has masks format version {version}; this backdrop reads version {FORMAT_VERSION}.")
        n = int(z["num_frames"])
        missing = [f"mask_{i:05d}" for i in range(n) if f"mask_{i:05d}" not in z.files]
        if missing:
            raise InputError(f"{path} is truncated: it declares {n} frames but lacks {', '.join(missing[:5])}.")
        return MaskSequence(
            masks=[z[f"mask_{i:05d}"] for i in range(n)],
            frame_names=[str(s) for s in z["frame_names"]],
            buckets=[str(s) for s in z["buckets"]],
            resets=[bool(b) for b in z["resets"]],
            threshold=float(z["threshold"]),
            meta=json.loads(str(z["meta_json"])),
        )
