"""Target android-arm64-legacy."""

from backdrop.export.targets.base import TARGETS, Target, TargetEntry

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
