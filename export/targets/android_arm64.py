"""Target android-arm64."""

from backdrop.export.targets.base import TARGETS, Target, TargetEntry

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
