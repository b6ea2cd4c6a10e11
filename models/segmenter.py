"""The seed's person-segmentation network: heavy FBNetV3 encoder, light decoder.

Input contract (``forward``):
    x: float32 (N, 4, H, W). Channels: Y, U (Cb), V (Cr) of the frame, BT.601 full range,
       each uint8 value divided by 255 (range [0, 1]); channel 3 is the previous frame's
       mask, the person probability in [0, 1] at this same (bucket) resolution, all zeros
       on a first frame or after a reset ("detect-with-mask"). Any H, W >= 1.
Output:
    logits: float32 (N, 1, H, W). Person probability = sigmoid(logits); the binary mask is
    probability >= 0.5. The probability is what feeds back as the next frame's channel 3.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backdrop.core.errors import ConfigError
from backdrop.core.registry import Registry
from backdrop.models.fbnet import ENCODER_TABLES, Encoder
from backdrop.models.layers import ACTIVATIONS, PADDING_MODES, ConvBNAct, PaddingMode

IN_CHANNELS = 4
INPUT_CHANNEL_NAMES = ("Y", "U", "V", "prev_mask")


@dataclass(frozen=True)
class SegmenterConfig:
    """Everything needed to build a :class:`Segmenter`; stored inside every checkpoint.

    Attributes:
        encoder: encoder table name (``fbnetv3_a`` ... ``fbnetv3_g``, ``lite``).
        width_mult: encoder channel multiplier.
        num_stages: encoder stages kept, 4 (output stride 16) or 5 (output stride 32).
        decoder_channels: decoder width at each kept stage, shallowest (stride 2) first.
        padding: padding mode of every spatial conv: replicate (the seed's), reflect, zeros.
        activation: activation of every encoder and decoder conv block: ``hswish`` (FBNetV3's,
            the seed's) or ``relu``. Block projections stay linear; the squeeze-excite's inner
            ReLU and hard-sigmoid gate are unchanged.
        se: keep the squeeze-excite blocks the encoder table asks for (True, the seed's);
            False drops every one.

    Checkpoints saved before ``activation`` and ``se`` existed lack the keys and load with
    these defaults, which is the network they were saved from.
    """

    encoder: str = "fbnetv3_a"
    width_mult: float = 1.0
    num_stages: int = 5
    decoder_channels: tuple[int, ...] = (16, 24, 32, 48, 64)
    padding: PaddingMode = "replicate"
    activation: str = "hswish"
    se: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder_channels", tuple(int(c) for c in self.decoder_channels))
        if self.encoder not in ENCODER_TABLES:
            raise ConfigError(
                f"Unknown encoder architecture {self.encoder!r}. Valid: {', '.join(sorted(ENCODER_TABLES))}."
            )
        if self.padding not in PADDING_MODES:
            raise ConfigError(f"Unknown padding {self.padding!r}. Valid: {', '.join(PADDING_MODES)}.")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"Unknown activation {self.activation!r}. Valid: {', '.join(ACTIVATIONS)}.")
        if not isinstance(self.se, bool):
            raise ConfigError(f"se must be true or false, got {self.se!r}.")
        if self.num_stages not in (4, 5):
            raise ConfigError(f"num_stages must be 4 or 5, got {self.num_stages}.")
        if len(self.decoder_channels) != self.num_stages:
            raise ConfigError(
                f"decoder_channels needs one width per encoder stage ({self.num_stages}), "
                f"got {len(self.decoder_channels)}."
            )
        if not 0.1 <= self.width_mult <= 4.0:
            raise ConfigError(f"width_mult must be in [0.1, 4], got {self.width_mult}.")
        if any(c < 1 for c in self.decoder_channels):
            raise ConfigError(f"decoder_channels must be positive, got {self.decoder_channels}.")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SegmenterConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"Unknown model config keys {unknown}. Valid: {sorted(known)}.")
        return cls(**d)


class Segmenter(nn.Module):
    """Encoder-decoder person segmenter with the previous mask as a 4th input channel.

    The decoder walks from the deepest feature to stride 2; at each resolution it upsamples
    (bilinear, to the skip's exact size, so any input size works), concatenates the
    encoder feature of the same resolution, fuses with a 1x1 conv and refines with a
    depthwise 3x3. A 1x1 head gives logits at stride 2, upsampled to the input size.
    """

    def __init__(self, config: SegmenterConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(
            ENCODER_TABLES[config.encoder],
            IN_CHANNELS,
            config.width_mult,
            config.num_stages,
            config.padding,
            config.activation,
            config.se,
        )
        enc = self.encoder.out_channels
        dec = config.decoder_channels
        act = config.activation
        self.lateral = ConvBNAct(enc[-1], dec[-1], 1, act=act)
        self.fuse = nn.ModuleList()
        self.refine = nn.ModuleList()
        for i in range(len(enc) - 2, -1, -1):
            self.fuse.append(ConvBNAct(dec[i + 1] + enc[i], dec[i], 1, act=act))
            self.refine.append(ConvBNAct(dec[i], dec[i], 3, groups=dec[i], act=act, padding=config.padding))
        self.head = nn.Conv2d(dec[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = self.lateral(feats[-1])
        for fuse, refine, skip in zip(self.fuse, self.refine, reversed(feats[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = refine(fuse(torch.cat([y, skip], dim=1)))
        y = self.head(y)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


VARIANTS: Registry[SegmenterConfig] = Registry("model variant")
"""Named presets. A checkpoint stores the full config, so presets may change without
breaking saved checkpoints."""

VARIANTS.add("fbnetv3_a", SegmenterConfig("fbnetv3_a"))
VARIANTS.add("fbnetv3_b", SegmenterConfig("fbnetv3_b"))
VARIANTS.add("fbnetv3_c", SegmenterConfig("fbnetv3_c"))
VARIANTS.add("fbnetv3_d", SegmenterConfig("fbnetv3_d"))
VARIANTS.add("fbnetv3_e", SegmenterConfig("fbnetv3_e"))
VARIANTS.add("fbnetv3_f", SegmenterConfig("fbnetv3_f"))
VARIANTS.add("fbnetv3_g", SegmenterConfig("fbnetv3_g", decoder_channels=(24, 32, 48, 64, 96)))
# Phone-sized default family member: FBNetV3-A to stride 16 (the seed's heavy encoder,
# light decoder), about half the parameters of the full-depth network.
VARIANTS.add("fbnetv3_a_s16", SegmenterConfig("fbnetv3_a", num_stages=4, decoder_channels=(16, 24, 32, 48)))
VARIANTS.add("lite", SegmenterConfig("lite", decoder_channels=(8, 16, 16, 24, 32)))
# Deployment-speed variants (docs/models.md, "Variants for int8 and speed"): the default with zero
# padding (replicate padding's slices and concats cost 14-30 % of fp32 ExecuTorch latency), and
# int8-friendly ones with ReLU, no squeeze-excite and zero padding, whose every conv block runs
# in int8 in XNNPACK. Untrained so far: they need their own checkpoints.
VARIANTS.add("fbnetv3_a_s16_zp", dataclasses.replace(VARIANTS.get("fbnetv3_a_s16"), padding="zeros"))
VARIANTS.add("fbnetv3_a_s16_q", dataclasses.replace(VARIANTS.get("fbnetv3_a_s16"), activation="relu", se=False, padding="zeros"))
VARIANTS.add("lite_q", dataclasses.replace(VARIANTS.get("lite"), activation="relu", se=False, padding="zeros"))

DEFAULT_VARIANT = "fbnetv3_a_s16"
"""The variant of the bundled default model (and of `backdrop new-checkpoint` examples)."""


def build_model(variant_or_config: str | SegmenterConfig) -> Segmenter:
    """Build a randomly initialised, eval-mode segmenter from a variant name or a config."""
    config = VARIANTS.get(variant_or_config) if isinstance(variant_or_config, str) else variant_or_config
    return Segmenter(config).eval()
