"""``backdrop predict``: the float reference (models/reference.py) over a clip, masks to a file."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backdrop import __version__
from backdrop.core.buckets import DEFAULT_BUCKETS, BucketSet
from backdrop.core.fsutil import check_writable
from backdrop.core.maskio import MaskSequence, save_masks
from backdrop.core.overlay import check_sheet_path, contact_sheet, overlay
from backdrop.core.sources import Frame, iter_frames
from backdrop.models import Checkpoint, load_checkpoint
from backdrop.models.reference import THRESHOLD, ReferencePredictor


@dataclass(frozen=True)
class PredictSpec:
    """Inputs of the predict stage.

    Attributes:
        input: a video file, a folder of images (sorted by name), or one image.
        out: the masks.npz to write (format in docs/masks-format.md).
        checkpoint: a checkpoint file.
        buckets: the bucket set.
        max_frames: stop after this many frames (all when None).
        overlay: if set, also write a contact sheet PNG of up to 12 evenly spaced frames
            with their masks overlaid.
    """

    input: Path
    out: Path
    checkpoint: Path
    buckets: BucketSet = DEFAULT_BUCKETS
    max_frames: int | None = None
    overlay: Path | None = None


@dataclass(frozen=True)
class PredictResult:
    out: Path
    overlay: Path | None
    num_frames: int
    buckets_used: dict[str, int]
    checkpoint_sha256: str


def predict(spec: PredictSpec, progress: bool = False) -> PredictResult:
    """Run the reference predictor over ``spec.input`` and write ``spec.out`` atomically.

    Raises:
        OutputPathError: ``spec.out`` or ``spec.overlay`` cannot be written (checked first,
            before the checkpoint is loaded or any frame is read).
    """
    check_writable(spec.out, "--out", example="masks.npz")
    if spec.overlay is not None:
        check_sheet_path(spec.overlay, "--overlay")
    ckpt: Checkpoint = load_checkpoint(spec.checkpoint)
    predictor = ReferencePredictor(ckpt.model, spec.buckets)
    frames: Iterable[Frame] = iter_frames(spec.input, spec.max_frames)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc="predict", unit="frame", total=spec.max_frames, file=sys.stderr)
    masks, names, bucket_names, resets = [], [], [], []
    for frame, result in predictor.run(frames):
        masks.append(result.mask)
        names.append(frame.name)
        bucket_names.append(result.placement.bucket.name)
        resets.append(result.reset)
    meta = {
        "producer": "backdrop predict (float PyTorch reference)",
        "backdrop_version": __version__,
        "torch_version": torch.__version__,
        "checkpoint": str(spec.checkpoint),
        "checkpoint_sha256": ckpt.sha256,
        "model_config": ckpt.config.to_dict(),
        "buckets": spec.buckets.to_dict(),
        "input": str(spec.input),
    }
    save_masks(MaskSequence(masks, names, bucket_names, resets, THRESHOLD, meta), spec.out)
    sheet = _write_overlay(spec, masks) if spec.overlay is not None else None
    used: dict[str, int] = {}
    for b in bucket_names:
        used[b] = used.get(b, 0) + 1
    return PredictResult(spec.out, sheet, len(masks), used, ckpt.sha256)


def _write_overlay(spec: PredictSpec, masks: list[np.ndarray], count: int = 12) -> Path:
    """Contact sheet of ``count`` evenly spaced frames, read again from the input."""
    picks = set(np.linspace(0, len(masks) - 1, min(count, len(masks))).round().astype(int).tolist())
    tiles, labels = [], []
    for frame in iter_frames(spec.input, spec.max_frames):
        if frame.index in picks:
            tiles.append(overlay(frame.yuv, masks[frame.index]))
            labels.append(frame.name)
    return contact_sheet(tiles, labels, spec.overlay)


__all__ = ["PredictResult", "PredictSpec", "predict"]
