"""FBNetV3 encoders built from the FBNetV3 paper's architecture tables.

Tables follow the published FBNetV3 A-G definitions (Dai et al., "FBNetV3: Joint
Architecture-Recipe Search using Predictor Pretraining", 2021; the same blocks as Meta's
mobile-vision ``fbnet_modeldef_cls_fbnetv3``). Only the feature extractor is kept: the
classification head (``ir_pool`` 1984-channel conv and classifier) is dropped, since the
segmenter reads the features at strides 2, 4, 8, 16 and 32. Two reference-implementation
padding tweaks on single stride-2 blocks of A/B/F are not reproduced: every convolution here
pads ``kernel // 2`` on each side with the network's padding mode.

A and B share one block table; the paper's B differs only in its training resolution
(248 vs 224), which a fixed-bucket segmenter does not have. Both names are kept so configs
that say "fbnetv3_b" mean what the paper means.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from backdrop.models.layers import ConvBNAct, InvertedResidual, PaddingMode, make_divisible


@dataclass(frozen=True)
class BlockRow:
    """One row of an architecture table: ``repeats`` IRF blocks, the first with ``stride``."""

    kernel: int
    expansion: float
    channels: int
    repeats: int
    stride: int
    se: bool = False


@dataclass(frozen=True)
class EncoderTable:
    """An encoder: a stride-2 3x3 stem, then five stages ending at strides 2, 4, 8, 16, 32."""

    stem: int
    stages: tuple[tuple[BlockRow, ...], ...]

    def __post_init__(self) -> None:
        if len(self.stages) != 5:
            raise ValueError(f"an encoder table has 5 stages, got {len(self.stages)}")


def _t(stem: int, *stages: list[tuple]) -> EncoderTable:
    return EncoderTable(stem, tuple(tuple(BlockRow(*row) for row in stage) for stage in stages))


# (kernel, expansion, channels, repeats, stride, se)
_FBNETV3_AB = _t(
    16,
    [(3, 1, 16, 2, 1)],
    [(5, 4, 24, 1, 2), (5, 2, 24, 3, 1)],
    [(5, 5, 40, 1, 2, True), (5, 3, 40, 4, 1, True)],
    [(5, 5, 72, 1, 2), (3, 3, 72, 4, 1), (3, 5, 120, 1, 1, True), (5, 3, 120, 5, 1, True)],
    [(3, 6, 184, 1, 2, True), (5, 4, 184, 5, 1, True), (5, 6, 224, 1, 1, True)],
)

ENCODER_TABLES: dict[str, EncoderTable] = {
    "fbnetv3_a": _FBNETV3_AB,
    "fbnetv3_b": _FBNETV3_AB,
    "fbnetv3_c": _t(
        16,
        [(3, 1, 16, 2, 1)],
        [(5, 5, 24, 1, 2), (3, 3, 24, 4, 1)],
        [(5, 5, 48, 1, 2, True), (5, 2, 48, 4, 1, True)],
        [(5, 4, 88, 1, 2), (3, 3, 88, 4, 1), (3, 4, 120, 1, 1, True), (5, 3, 120, 5, 1, True)],
        [(5, 5, 216, 1, 2, True), (5, 5, 216, 5, 1, True), (5, 6, 216, 1, 1, True)],
    ),
    "fbnetv3_d": _t(
        24,
        [(3, 1, 16, 2, 1)],
        [(3, 5, 24, 1, 2), (3, 2, 24, 5, 1)],
        [(5, 4, 40, 1, 2, True), (3, 3, 40, 4, 1, True)],
        [(3, 5, 72, 1, 2), (3, 3, 72, 4, 1), (3, 5, 128, 1, 1, True), (5, 3, 128, 6, 1, True)],
        [(3, 6, 208, 1, 2, True), (5, 5, 208, 5, 1, True), (5, 6, 240, 1, 1, True)],
    ),
    "fbnetv3_e": _t(
        24,
        [(3, 1, 16, 3, 1)],
        [(5, 4, 24, 1, 2), (5, 2, 24, 4, 1)],
        [(5, 4, 48, 1, 2, True), (5, 3, 48, 4, 1, True)],
        [(5, 5, 80, 1, 2), (3, 3, 80, 4, 1), (3, 5, 128, 1, 1, True), (5, 3, 128, 7, 1, True)],
        [(3, 6, 216, 1, 2, True), (5, 5, 216, 5, 1, True), (5, 6, 240, 1, 1, True)],
    ),
    "fbnetv3_f": _t(
        24,
        [(3, 1, 24, 3, 1)],
        [(5, 4, 32, 1, 2), (5, 2, 32, 4, 1)],
        [(5, 4, 56, 1, 2, True), (5, 3, 56, 4, 1, True)],
        [(5, 5, 88, 1, 2), (3, 3, 88, 4, 1), (3, 5, 144, 1, 1, True), (5, 3, 144, 8, 1, True)],
        [(3, 6, 248, 1, 2, True), (5, 5, 248, 6, 1, True), (5, 6, 272, 1, 1, True)],
    ),
    "fbnetv3_g": _t(
        32,
        [(3, 1, 24, 3, 1)],
        [(5, 4, 40, 1, 2), (5, 2, 40, 4, 1)],
        [(5, 4, 56, 1, 2, True), (5, 3, 56, 4, 1, True)],
        [(5, 5, 104, 1, 2), (3, 3, 104, 4, 1), (3, 5, 160, 1, 1, True), (5, 3, 160, 8, 1, True)],
        [(3, 6, 264, 1, 2, True), (5, 5, 264, 6, 1, True), (5, 6, 288, 2, 1, True)],
    ),
    # Not from the paper: a MediaPipe-selfie-sized encoder (the whole segmenter stays under
    # 0.5 M parameters) in the same block vocabulary, for speed comparisons with what users
    # would otherwise pick.
    "lite": _t(
        16,
        [(3, 1, 16, 1, 1)],
        [(3, 4, 16, 1, 2), (3, 3, 16, 1, 1)],
        [(5, 4, 24, 1, 2, True), (5, 3, 24, 2, 1, True)],
        [(5, 4, 40, 1, 2, True), (5, 3, 40, 2, 1, True)],
        [(5, 5, 80, 1, 2, True), (5, 3, 80, 2, 1, True)],
    ),
}


class Encoder(nn.Module):
    """An FBNet encoder returning the features at the end of each stage.

    Args:
        table: the architecture table.
        in_channels: input channels (4: Y, U, V, previous mask).
        width_mult: channel multiplier, channels rounded to multiples of 8.
        num_stages: how many of the 5 stages to build (4 stops at stride 16).
        padding: padding mode of every spatial convolution.
        act: activation of the stem and of every block's expand and depthwise convs
            (``"hswish"``, FBNetV3's, or ``"relu"``).
        se: keep the squeeze-excite blocks the table asks for; False drops every one (the
            table's ``se`` flags are then ignored).

    Input: float32 (N, in_channels, H, W), any H, W >= 1.
    Output: list of ``num_stages`` tensors, stage i at resolution ceil(H / 2**(i+1)).
    """

    def __init__(
        self,
        table: EncoderTable,
        in_channels: int = 4,
        width_mult: float = 1.0,
        num_stages: int = 5,
        padding: PaddingMode = "replicate",
        act: str = "hswish",
        se: bool = True,
    ) -> None:
        super().__init__()
        ch = make_divisible(table.stem * width_mult)
        self.stem = ConvBNAct(in_channels, ch, 3, 2, act=act, padding=padding)
        self.stages = nn.ModuleList()
        self.out_channels: list[int] = []
        for stage in table.stages[:num_stages]:
            blocks: list[nn.Module] = []
            for row in stage:
                out = make_divisible(row.channels * width_mult)
                for r in range(row.repeats):
                    stride = row.stride if r == 0 else 1
                    blocks.append(
                        InvertedResidual(ch, out, row.kernel, stride, row.expansion, row.se and se, padding, act=act)
                    )
                    ch = out
            self.stages.append(nn.Sequential(*blocks))
            self.out_channels.append(ch)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
