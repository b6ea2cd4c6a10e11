"""The seed's segmentation network (``backdrop.models``): FBNetV3 encoders, a light decoder,
named variants, and single-file checkpoints."""

from backdrop.models.checkpoint import Checkpoint, file_sha256, load_checkpoint, save_checkpoint
from backdrop.models.segmenter import (
    IN_CHANNELS,
    INPUT_CHANNEL_NAMES,
    VARIANTS,
    Segmenter,
    SegmenterConfig,
    build_model,
)

__all__ = [
    "IN_CHANNELS",
    "INPUT_CHANNEL_NAMES",
    "VARIANTS",
    "Checkpoint",
    "Segmenter",
    "SegmenterConfig",
    "build_model",
    "file_sha256",
    "load_checkpoint",
    "save_checkpoint",
]
