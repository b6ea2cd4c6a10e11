"""Conv-BatchNorm fusion, verified numerically.

Every ``ConvBNAct`` block (``[pad?, conv, bn, act]``) has its BatchNorm folded into the
convolution: ``w' = w * g / sqrt(v + eps)``, ``b' = beta + (b - mean) * g / sqrt(v + eps)``,
and the BatchNorm replaced by Identity. The activation stays a separate op: XNNPACK fuses
conv + hardswish/relu clamps itself, and Core ML / ONNX Runtime do the same.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from backdrop.core.errors import BackdropError
from backdrop.models import Segmenter


class FusionError(BackdropError):
    """Fusion changed the model's output beyond float rounding."""


@dataclass(frozen=True)
class FusionReport:
    fused: int
    max_abs_logit_diff: float
    tolerance: float


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    fused = copy.deepcopy(conv)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    fused.weight = nn.Parameter(conv.weight.detach() * scale.reshape(-1, 1, 1, 1), requires_grad=False)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias = nn.Parameter(bn.bias.detach() + (bias - bn.running_mean) * scale, requires_grad=False)
    return fused


def fuse_model(
    model: Segmenter, check_input: torch.Tensor | None = None, tolerance: float = 1e-3
) -> tuple[Segmenter, FusionReport]:
    """A fused copy of ``model`` (the original is untouched) and how close it stays.

    Args:
        model: eval-mode segmenter.
        check_input: (N, 4, H, W) input to compare outputs on; use real frames (e.g. a
            golden sequence's first inputs). Default: a smooth synthetic ramp.
        tolerance: max allowed |logit difference|; fusion only reorders float arithmetic.

    Raises:
        FusionError: the fused model differs by more than ``tolerance``.
    """
    fused = copy.deepcopy(model).eval()
    count = 0
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module._modules.items())
        for (name, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[name] = _fold(conv, bn)
                module._modules[bn_name] = nn.Identity()
                count += 1
    if check_input is None:
        h, w = 96, 128
        ramp = torch.linspace(0, 1, h * w).reshape(1, 1, h, w)
        check_input = torch.cat([ramp, ramp.flip(-1), ramp.flip(-2), (ramp > 0.5).float()], dim=1)
    with torch.no_grad():
        diff = float((fused(check_input) - model(check_input)).abs().max())
    if not diff <= tolerance:
        raise FusionError(
            f"Conv-BN fusion changed logits by {diff:.2e} (> {tolerance:.0e}); refusing to export a different model."
        )
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused, FusionReport(count, diff, tolerance)
