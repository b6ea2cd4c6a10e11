"""Core ML on macOS: the real parity check for ``.mlpackage`` artifacts.

``MLModel.predict`` exists only on macOS (coremltools raises "Model prediction is only
supported on macOS" elsewhere), so on Linux this device reports it cannot run, and the
export marks Core ML artifacts unverified after validating their spec. Run
``backdrop parity --dist dist/ios-arm64 --device coreml-mac`` on a Mac (macOS 15+ for the
stateful iOS 18 artifacts).

Note: written against coremltools 9's documented ``make_state`` / ``predict(state=...)`` API;
it has not been run from this repository's Linux CI.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np

from backdrop.device_tests.base import DEVICES, DeviceError, feedback_loop
from backdrop.export.artifact import Artifact
from backdrop.export.goldens import Golden


@DEVICES.register("coreml-mac")
class CoreMLMacDevice:
    """Runs Core ML artifacts with coremltools on this Mac (compute units: all)."""

    name = "coreml-mac"

    def __init__(self) -> None:
        self.tier = f"mac-{platform.machine()}"

    def why_not(self, artifact: Artifact) -> str:
        if artifact.format != "coreml":
            return f"{self.name} runs only Core ML artifacts, not {artifact.format}"
        if sys.platform != "darwin":
            return "Core ML prediction needs macOS"
        return ""

    def can_run(self, artifact: Artifact) -> bool:
        return not self.why_not(artifact)

    def runtime_versions(self, artifact: Artifact) -> dict[str, str]:
        import coremltools

        return {"coremltools": coremltools.__version__, "macos": platform.mac_ver()[0]}

    def run_sequence(self, artifact: Artifact, golden: Golden) -> np.ndarray:
        reason = self.why_not(artifact)
        if reason:
            raise DeviceError(f"{artifact.key} cannot run on {self.name}: {reason}")
        import coremltools as ct

        model = ct.models.MLModel(str(Path(artifact.path)), compute_units=ct.ComputeUnit.ALL)
        in_names = [s.name for s in artifact.inputs]
        out_names = [s.name for s in artifact.outputs]
        state = model.make_state() if artifact.state_form == "native" else None

        def call(inputs: list[np.ndarray]) -> list[np.ndarray]:
            feed = dict(zip(in_names, inputs))
            out = model.predict(feed, state=state) if state is not None else model.predict(feed)
            return [np.asarray(out[n]) for n in out_names]

        return feedback_loop(artifact, golden, call, f"{self.name} ({self.tier})")
