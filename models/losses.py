"""Training losses: (soft-target) cross-entropy plus the seed's boundary cross-entropy.

``total = BCE(logits, target) + boundary_weight * BCE over the boundary region``.

The boundary region follows Boundary IoU (Cheng et al. 2021): for a binary mask, its inner
band of width ``d = max(1, round(dilation_ratio * sqrt(H^2 + W^2)))`` (the mask minus its
erosion by d 3x3 steps, the image border counting as background). The region is the union of
the *label's* band and the *prediction's* band, so both missed boundary pixels and false
boundaries the network invents are weighted (the seed: "boundary regions from both the label
and the prediction"). The prediction's band is computed from ``sigmoid(logits) >= 0.5`` with no
gradient (it only selects pixels).

Distillation (the seed's student-teacher setting): targets are the teacher's probabilities.
``label_mode="soft"`` uses them as they are (knowledge distillation with temperature 1: the
student matches the teacher's per-pixel distribution, including its uncertainty at edges);
``label_mode="hard"`` thresholds them at 0.5 first (classic pseudo-labels). ``soft`` is the
default recipe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LABEL_MODES = ("soft", "hard")


def boundary_width(height: int, width: int, dilation_ratio: float = 0.02) -> int:
    """``max(1, round(ratio * diagonal))`` (Python's round-half-to-even, as boundary-iou-api)."""
    return max(1, int(round(dilation_ratio * math.sqrt(height * height + width * width))))


def inner_boundary(mask: torch.Tensor, d: int) -> torch.Tensor:
    """Inner boundary band of a binary float mask (N, 1, H, W): ``mask AND NOT erode(mask, d)``.

    ``d`` erosions by a 3x3 square equal one erosion by a (2d+1)^2 square; padding with zeros
    makes the image border count as background.
    """
    padded = F.pad(mask, (d, d, d, d), value=0.0)
    eroded = -F.max_pool2d(-padded, kernel_size=2 * d + 1, stride=1)
    return mask * (1.0 - eroded)


@dataclass
class LossTerms:
    total: torch.Tensor
    bce: torch.Tensor
    boundary: torch.Tensor


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    boundary_weight: float = 1.0,
    dilation_ratio: float = 0.02,
    label_mode: str = "soft",
) -> LossTerms:
    """BCE + boundary BCE.

    Args:
        logits: float32 (N, 1, H, W) network output.
        target: float32 (N, 1, H, W) teacher probability in [0, 1].
        boundary_weight: weight of the boundary term (0 disables it).
        dilation_ratio: boundary band width as a fraction of the image diagonal.
        label_mode: ``soft`` (distill the teacher's probabilities) or ``hard`` (threshold at 0.5).

    Returns:
        :class:`LossTerms`; ``boundary`` is the mean BCE over the boundary region (0 if empty).
    """
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
    if label_mode == "hard":
        target = (target >= 0.5).float()
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = per_pixel.mean()
    if boundary_weight == 0:
        return LossTerms(bce, bce.detach(), torch.zeros((), dtype=bce.dtype))
    d = boundary_width(logits.shape[-2], logits.shape[-1], dilation_ratio)
    with torch.no_grad():
        region = torch.maximum(
            inner_boundary((target >= 0.5).float(), d),
            inner_boundary((logits >= 0).float(), d),  # sigmoid(logit) >= 0.5
        )
    count = region.sum()
    boundary = (per_pixel * region).sum() / count.clamp_min(1.0)
    total = bce + boundary_weight * boundary
    return LossTerms(total, bce.detach(), boundary.detach())


__all__ = ["LABEL_MODES", "LossTerms", "boundary_width", "inner_boundary", "segmentation_loss"]
