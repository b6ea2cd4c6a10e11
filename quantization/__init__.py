"""Fusion and quantization (``backdrop.quantization``): what turns a trained float model into
what phones run. Conv-BatchNorm fusion runs before every export."""

from backdrop.quantization.fuse import FusionReport, fuse_model

__all__ = ["FusionReport", "fuse_model"]
