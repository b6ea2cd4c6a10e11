"""Targets: a device family and the artifacts it needs. The only place formats combine."""

from __future__ import annotations

from dataclasses import dataclass

from backdrop.errors import ConfigError
from backdrop.quantization.budget import AccuracyBudget
from backdrop.registry import Registry


@dataclass(frozen=True)
class TargetEntry:
    """Artifacts of one format: every bucket x every listed state form, at one precision."""

    format: str
    precision: str
    state_forms: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """A deployment target.

    Attributes:
        name: e.g. "android-arm64".
        platform: "android" or "ios".
        camera_format: the buffer layout the platform's camera delivers ("nv21" / "nv12").
        description: one line for people.
        entries: the artifacts to build.
        budget: what its int8 artifacts must keep of the float model's masks (docs/quantization.md).
    """

    name: str
    platform: str
    camera_format: str
    description: str
    entries: tuple[TargetEntry, ...]
    budget: AccuracyBudget = AccuracyBudget()

    def __post_init__(self) -> None:
        if self.camera_format not in ("nv21", "nv12"):
            raise ConfigError(f"target {self.name}: camera_format must be nv21 or nv12")


TARGETS: Registry[Target] = Registry("target")

TARGETS.add(
    "android-arm64",
    Target(
        "android-arm64",
        "android",
        "nv21",
        "Android phones: ExecuTorch (XNNPACK) and ONNX Runtime Mobile (.onnx and .ort)",
        (
            TargetEntry("executorch", "fp32", ("native", "explicit")),
            TargetEntry("executorch", "int8", ("native", "explicit")),
            TargetEntry("onnx", "fp32", ("explicit",)),
            TargetEntry("onnx", "int8", ("explicit",)),
        ),
    ),
)
TARGETS.add(
    "ios-arm64",
    Target(
        "ios-arm64",
        "ios",
        "nv12",
        "iPhones: Core ML (stateful for iOS 18, explicit-state for iOS 16) and ExecuTorch (XNNPACK)",
        (
            TargetEntry("coreml", "fp16", ("native", "explicit")),
            TargetEntry("coreml", "int8", ("native", "explicit")),
            TargetEntry("coreml", "palette6", ("native", "explicit")),
            TargetEntry("executorch", "fp32", ("native", "explicit")),
        ),
    ),
)
TARGETS.add(
    "android-arm64-legacy",
    Target(
        "android-arm64-legacy",
        "android",
        "nv21",
        "Apps still on PyTorch Mobile: PyTorch Lite (.ptl), deprecated upstream in favour of ExecuTorch",
        (
            TargetEntry("torchscript-lite", "fp32", ("native", "explicit")),
            TargetEntry("torchscript-lite", "int8", ("native", "explicit")),
        ),
    ),
)
