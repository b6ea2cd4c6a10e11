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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from backdrop.core.buckets import DEFAULT_BUCKETS, Bucket, BucketSet, Placement, from_bucket, plan, to_bucket
from backdrop.core.sources import Frame
from backdrop.models.segmenter import Segmenter

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


__all__ = ["THRESHOLD", "FrameResult", "ReferencePredictor", "bucket_input"]
