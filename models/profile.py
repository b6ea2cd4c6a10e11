"""Parameters and MACs of the model variants, measured with ``torch.utils.flop_counter``."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from backdrop.core.errors import ConfigError
from backdrop.models.segmenter import IN_CHANNELS, VARIANTS, Segmenter, build_model


@dataclass(frozen=True)
class ModelProfile:
    """Size and cost of one variant at one input size."""

    variant: str
    encoder: str
    output_stride: int
    params: int
    macs: int
    height: int
    width: int

    def to_dict(self) -> dict:
        return asdict(self)


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` (height x width) into positive ints."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ConfigError(f"Size {text!r} is not HxW with positive integers (height x width), e.g. 144x256.")
    return int(m.group(1)), int(m.group(2))


def count_macs(model: Segmenter, height: int, width: int) -> int:
    """Multiply-accumulates of one forward pass at (1, 4, height, width): FLOPs / 2."""
    x = torch.zeros(1, IN_CHANNELS, height, width)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def profile(variant: str, size: tuple[int, int] = (144, 256)) -> ModelProfile:
    model = build_model(variant)
    cfg = model.config
    return ModelProfile(
        variant=variant,
        encoder=cfg.encoder,
        output_stride=2 ** (cfg.num_stages),
        params=sum(p.numel() for p in model.parameters()),
        macs=count_macs(model, *size),
        height=size[0],
        width=size[1],
    )


def profile_variants(size: tuple[int, int] = (144, 256)) -> list[ModelProfile]:
    return [profile(name, size) for name in VARIANTS]
