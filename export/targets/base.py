"""The target interface and registry: a device family and the artifacts it needs. Targets are
the only place formats combine. A new target is one module registering itself in
:data:`TARGETS` and one import line in export/targets/__init__.py."""

from __future__ import annotations

from dataclasses import dataclass

from backdrop.core.errors import ConfigError
from backdrop.core.registry import Registry
from backdrop.quantization.budget import AccuracyBudget


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
