"""Test models whose masks are structured and depend on the state.

A random-weight network outputs a near-constant probability, so every mask is empty and
parity/IoU checks pass trivially even when the state is dropped. These helpers rescale a
network's head on a real frame so its masks have structure.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from backdrop.core.buckets import Bucket, crop_box, plan
from backdrop.core.sources import iter_frames
from backdrop.models import build_model
from backdrop.models.reference import bucket_input


class TwoConv(nn.Module):
    """Small enough to lower to XNNPACK in seconds; same 4-in, 1-out contract as Segmenter."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(4, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def lively_lite(seed: int = 3) -> nn.Module:
    """The lite variant with non-trivial BatchNorm stats and a head scaled by 30, so the output
    depends visibly on the frame and on the state."""
    torch.manual_seed(seed)
    model = build_model("lite")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        model.head.weight.mul_(30.0)
    return model


def structure_head(model: nn.Module, carphone_path, bucket: Bucket, logit_std: float = 2.0) -> nn.Module:
    """Rescale ``model.head`` so its logits on the first carphone frame (framed for ``bucket``,
    empty state) have mean 0 and std ``logit_std``; freezes the parameters."""
    frame = next(iter_frames(carphone_path, 1)).yuv
    top, left, ch, cw = crop_box(frame.shape[0], frame.shape[1], bucket)
    yuv = np.ascontiguousarray(frame[top : top + ch, left : left + cw])
    x = torch.from_numpy(bucket_input(yuv, plan(ch, cw, bucket), np.zeros((bucket.height, bucket.width), np.float32)))
    model.eval()
    with torch.no_grad():
        logits = model(x)
        k = logit_std / logits.std().item()
        model.head.weight.mul_(k)
        model.head.bias.copy_(k * (model.head.bias - logits.mean().item()))
    for p in model.parameters():
        p.requires_grad_(False)
    return model



def structured_lite(carphone_path, bucket: Bucket, logit_std: float = 2.0, state_gain: float = 0.1) -> nn.Module:
    """lite (seed 5) with its head rescaled so logits on a real frame have mean 0, std
    ``logit_std`` (:func:`structure_head`), and the state channel of its first conv scaled by
    ``state_gain``: at full gain the random network's feedback runs away to an all-person mask
    within 3 frames (measured), at 0.1 the masks stay structured (about 60 % person) over the
    whole golden. The int8 tests' model (BatchNorm-fused by them); unlike :func:`lively_lite`,
    whose randomised BatchNorm statistics make any 8-bit version drift far from float."""
    torch.manual_seed(5)
    model = build_model("lite").eval()
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        first.weight[:, 3:4].mul_(state_gain)
    return structure_head(model, carphone_path, bucket, logit_std)
