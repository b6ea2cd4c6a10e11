"""The reference predictor: the float PyTorch model run over frames in order, mask fed back.

Every exported artifact is compared against what this produces. Per frame:

1. pick the bucket of nearest aspect ratio (``BucketSet.select``) and place the frame in it
   (``buckets.plan``); if the bucket differs from the previous frame's, reset the state;
2. YUV uint8 -> float32 / 255, resized and replicate-padded to the bucket (``to_bucket``);
3. stack with the state (previous probability at bucket resolution; zeros after a reset)
   into the 4-channel input; run the model; probability = sigmoid(logits);
4. the bucket-resolution probability becomes the state; the mask returned is it cropped and
   resized back to the frame's own size (``from_bucket``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backdrop import __version__
from backdrop.buckets import DEFAULT_BUCKETS, Bucket, BucketSet, Placement, from_bucket, plan, to_bucket
from backdrop.maskio import MaskSequence, save_masks
from backdrop.models import Checkpoint, Segmenter, load_checkpoint
from backdrop.sources import Frame, iter_frames

THRESHOLD = 0.5


@dataclass(frozen=True)
class FrameResult:
    """One frame's output.

    Attributes:
        mask: float32 (H, W) person probability at the frame's own size.
        bucket_mask: float32 (H_b, W_b) probability at bucket size (the next state).
        placement: where the frame sat in its bucket.
        reset: whether the state was reset before this frame.
    """

    mask: np.ndarray
    bucket_mask: np.ndarray
    placement: Placement
    reset: bool


def bucket_input(yuv: np.ndarray, placement: Placement, state: np.ndarray) -> np.ndarray:
    """The model input for one frame: float32 (1, 4, H_b, W_b) = [Y, U, V] / 255 + state."""
    planes = to_bucket(yuv.astype(np.float32) / 255.0, placement)  # (H_b, W_b, 3)
    x = np.concatenate([planes.transpose(2, 0, 1), state[None]], axis=0)
    return np.ascontiguousarray(x[None], dtype=np.float32)


class ReferencePredictor:
    """Stateful float predictor over a frame sequence.

    Args:
        model: an eval-mode :class:`Segmenter`.
        buckets: the bucket set frames are mapped into.
    """

    def __init__(self, model: Segmenter, buckets: BucketSet = DEFAULT_BUCKETS) -> None:
        self.model = model.eval()
        self.buckets = buckets
        self._bucket: Bucket | None = None
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous mask: the next frame starts from an empty 4th channel."""
        self._bucket = None
        self._state = None

    @torch.no_grad()
    def step(self, yuv: np.ndarray) -> FrameResult:
        """Run one uint8 YUV444 (H, W, 3) frame and carry its mask to the next call."""
        h, w = int(yuv.shape[0]), int(yuv.shape[1])
        bucket = self.buckets.select(h, w)
        placement = plan(h, w, bucket)
        reset = self._state is None or bucket != self._bucket
        if reset:
            self._state = np.zeros((bucket.height, bucket.width), np.float32)
            self._bucket = bucket
        x = torch.from_numpy(bucket_input(yuv, placement, self._state))
        prob = torch.sigmoid(self.model(x))[0, 0].numpy().astype(np.float32)
        self._state = prob
        return FrameResult(from_bucket(prob, placement), prob, placement, reset)

    def run(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, FrameResult]]:
        for frame in frames:
            yield frame, self.step(frame.yuv)


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
    """Run the reference predictor over ``spec.input`` and write ``spec.out`` atomically."""
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
    from backdrop.overlay import contact_sheet, overlay

    picks = set(np.linspace(0, len(masks) - 1, min(count, len(masks))).round().astype(int).tolist())
    tiles, labels = [], []
    for frame in iter_frames(spec.input, spec.max_frames):
        if frame.index in picks:
            tiles.append(overlay(frame.yuv, masks[frame.index]))
            labels.append(frame.name)
    return contact_sheet(tiles, labels, spec.overlay)


__all__ = [
    "FrameResult",
    "PredictResult",
    "PredictSpec",
    "ReferencePredictor",
    "bucket_input",
    "predict",
    "THRESHOLD",
]
