"""Target ios-arm64."""

from backdrop.export.targets.base import TARGETS, Target, TargetEntry

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
