"""Building blocks of the segmentation network, written so mobile delegates take them.

Padding is done outside the convolution, as ``torch.cat`` of edge slices: that form lowers
to slice + concatenate, which ExecuTorch's XNNPACK delegate takes whole, whereas
``padding_mode="replicate"`` / ``F.pad(mode="replicate")`` lower to index/clamp ops that split
the graph (field notes, "Delegation and padding"). Hard-sigmoid is written as
``relu6(x + 3) / 6`` for the same reason.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

PaddingMode = Literal["replicate", "reflect", "zeros"]
PADDING_MODES: tuple[str, ...] = ("replicate", "reflect", "zeros")
ACTIVATIONS: tuple[str, ...] = ("hswish", "relu")
"""The network activations a :class:`~backdrop.models.segmenter.SegmenterConfig` may choose:
hard-swish (FBNetV3's) or ReLU (int8-friendly: XNNPACK folds it into the int8 convolution,
while it lowers hard-swish in fp32 only)."""


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never dropping below 90%.

    The channel rounding rule of MobileNet/FBNet width multipliers.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _edge_pad(x: torch.Tensor, before: int, after: int, dim: int, mode: PaddingMode) -> torch.Tensor:
    """Pad ``x`` along ``dim`` by concatenating edge slices (replicate) or mirrored slices (reflect)."""
    if before == 0 and after == 0:
        return x
    n = x.shape[dim]
    parts: list[torch.Tensor] = []
    # torch.narrow, not Tensor.narrow: the same op for torch.export and ONNX, but PyTorch's FX
    # quantization (the PyTorch Lite int8 path) knows only the function form as an op that
    # keeps its input's quantization; the method form would re-quantize every edge slice.
    if mode == "replicate":
        first = torch.narrow(x, dim, 0, 1)
        last = torch.narrow(x, dim, n - 1, 1)
        parts = [first] * before + [x] + [last] * after
    else:
        # reflect: mirror about the edge pixel (which is not repeated). Where the dimension is
        # too small to mirror (n <= pad, e.g. deep features of a tiny input), the mirrored
        # index is clamped into range, so any input size works; for n > pad this is exactly
        # F.pad(mode="reflect").
        parts = [torch.narrow(x, dim, min(i, n - 1), 1) for i in range(before, 0, -1)]
        parts.append(x)
        parts += [torch.narrow(x, dim, max(n - 1 - i, 0), 1) for i in range(1, after + 1)]
    return torch.cat(parts, dim=dim)


class Pad2d(nn.Module):
    """Symmetric spatial padding of an NCHW tensor by concatenation of edge slices.

    Args:
        pad: pixels added on each side of H and W.
        mode: ``"replicate"`` or ``"reflect"`` (``"zeros"`` is done by the convolution itself).
    """

    def __init__(self, pad: int, mode: PaddingMode) -> None:
        super().__init__()
        if mode not in ("replicate", "reflect"):
            raise ValueError(f"Pad2d mode must be replicate or reflect, got {mode!r}")
        self.pad = pad
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _edge_pad(x, self.pad, self.pad, 2, self.mode)
        return _edge_pad(x, self.pad, self.pad, 3, self.mode)

    def extra_repr(self) -> str:
        return f"pad={self.pad}, mode={self.mode}"


class HardSigmoid(nn.Module):
    """``relu6(x + 3) / 6``: the delegate-friendly hard sigmoid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (one of :data:`ACTIVATIONS`, or ``"none"``)."""
    if name == "hswish":
        return nn.Hardswish()
    if name == "relu":
        return nn.ReLU()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; use hswish, relu or none")


class ConvBNAct(nn.Sequential):
    """(pad) -> Conv2d (no bias) -> BatchNorm2d -> activation.

    Kept as a flat ``nn.Sequential`` of ``[pad?, conv, bn, act]`` so fusion can find
    conv/bn pairs by position.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str = "hswish",
        padding: PaddingMode = "replicate",
    ) -> None:
        pad = kernel // 2
        layers: list[nn.Module] = []
        conv_pad = 0
        if pad > 0:
            if padding == "zeros":
                conv_pad = pad
            else:
                layers.append(Pad2d(pad, padding))
        layers.append(nn.Conv2d(in_ch, out_ch, kernel, stride, conv_pad, groups=groups, bias=False))
        layers.append(nn.BatchNorm2d(out_ch))
        layers.append(activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with a hard-sigmoid gate (FBNetV3's ``sehsig``)."""

    def __init__(self, channels: int, ratio: float = 0.25) -> None:
        super().__init__()
        mid = make_divisible(channels * ratio)
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(mid, channels, 1)
        self.gate = HardSigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.gate(self.expand(self.act(self.reduce(s))))
        return x * s


class InvertedResidual(nn.Module):
    """FBNet's IRF block: 1x1 expand -> kxk depthwise (stride) -> [SE] -> 1x1 project.

    The expand conv is skipped when the expansion is 1; the residual is added when the
    block keeps resolution and channel count.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        expansion: float,
        se: bool,
        padding: PaddingMode,
        act: str = "hswish",
    ) -> None:
        super().__init__()
        mid = make_divisible(in_ch * expansion)
        self.expand = ConvBNAct(in_ch, mid, 1, act=act) if mid != in_ch else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act, padding=padding)
        self.se = SqueezeExcite(mid) if se else nn.Identity()
        self.project = ConvBNAct(mid, out_ch, 1, act="none")
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.use_residual else y
