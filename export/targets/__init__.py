"""Deployment targets. Each is one module registering itself in TARGETS; import them here,
explicitly (the one discovery mechanism). Adding a target: docs/architecture.md."""

from backdrop.export.targets.base import TARGETS, Target, TargetEntry

__all__ = ["TARGETS", "Target", "TargetEntry"]

# The registry lines: one import per target module.
from backdrop.export.targets import android_arm64 as _android_arm64  # noqa: E402,F401
from backdrop.export.targets import android_arm64_legacy as _android_arm64_legacy  # noqa: E402,F401
from backdrop.export.targets import ios_arm64 as _ios_arm64  # noqa: E402,F401
