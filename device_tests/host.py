"""This machine's Python runtimes as a device: every registered format whose runtime loads in
this process (ExecuTorch, ONNX Runtime, PyTorch Lite on Linux; Core ML too on macOS), on the
CPU. Loading and running a file is the format's own (``Format.load``); this module only carries
the state (device_tests/base.py), times, and describes the machine."""

from __future__ import annotations

import platform
import sys

import numpy as np

from backdrop.core.errors import RegistryError
from backdrop.device_tests.base import (
    DEVICES,
    QUICK_TIMING,
    DeviceDescription,
    DeviceError,
    TimingProtocol,
    TimingResult,
    feedback_loop,
    first_frame_feed,
    time_calls,
)
from backdrop.export.artifact import Artifact
from backdrop.export.formats import FORMATS, ExportError, FrameRunner, package_versions
from backdrop.export.goldens import Golden


def cpu_model() -> str:
    """The CPU model as the OS reports it (``/proc/cpuinfo``), else the platform's word."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device, formats, extra_versions: dict[str, str]) -> DeviceDescription:
    """``device`` (name, tier, emulated) on this machine: its CPU and OS, and the versions of
    ``formats``' runtime packages after ``extra_versions``."""
    packages: list[str] = []
    for fmt in formats:
        packages += [p for p in fmt.runtime_packages if p not in packages]
    return DeviceDescription(
        name=device.name,
        tier=device.tier,
        emulated=device.emulated,
        machine=platform.machine(),
        cpu=cpu_model(),
        os=f"{platform.system()} {platform.release()}",
        runtime_versions={**extra_versions, **package_versions(packages)},
    )


@DEVICES.register("host")
class HostDevice:
    """This machine's Python runtimes on its CPU (the export's default verifier).

    Args:
        threads: intra-op threads for runtimes that take a count (0 = the runtime's default).
    """

    name = "host"
    emulated = False

    def __init__(self, threads: int = 0) -> None:
        self.tier = f"host-{platform.machine()}"
        self.threads = threads

    def why_not(self, artifact: Artifact) -> str:
        try:
            fmt = FORMATS.for_kind(artifact.format)
        except RegistryError as e:
            return str(e)
        kind = FORMATS.kind_of(artifact.format)
        if artifact.state_form not in kind.state_forms:
            return f"{kind.label} files come in the {', '.join(kind.state_forms)} state form(s), not {artifact.state_form!r}."
        return fmt.why_not_here(artifact)

    def can_run(self, artifact: Artifact) -> bool:
        return not self.why_not(artifact)

    def ready(self) -> str:
        return ""

    def runtime_versions(self, artifact: Artifact) -> dict[str, str]:
        versions = {"python": platform.python_version(), "machine": platform.machine()}
        versions.update(package_versions(FORMATS.for_kind(artifact.format).runtime_packages))
        return versions

    def describe(self) -> DeviceDescription:
        return machine_description(self, [FORMATS.get(n) for n in FORMATS], {"python": platform.python_version()})

    def run_sequence(self, artifact: Artifact, golden: Golden) -> np.ndarray:
        return feedback_loop(artifact, golden, self._open(artifact), f"{self.name} ({self.tier})")

    def time(self, artifacts: list[Artifact], golden: Golden, protocol: TimingProtocol = QUICK_TIMING) -> TimingResult:
        calls = {a.key: self._open(a) for a in artifacts}
        feeds = {a.key: first_frame_feed(a, golden) for a in artifacts}
        return TimingResult(time_calls(calls, feeds, protocol), self.describe(), protocol)

    def _open(self, artifact: Artifact) -> FrameRunner:
        """Load ``artifact`` with its format's runtime here.

        Raises:
            DeviceError: no runtime here for it, or its format could not load the file.
        """
        reason = self.why_not(artifact)
        if reason:
            raise DeviceError(f"{artifact.key} cannot run on {self.name} ({self.tier}): {reason}")
        try:
            return FORMATS.for_kind(artifact.format).load(artifact, self.threads)
        except ExportError as e:
            raise DeviceError(f"{e} (on {self.name}, {self.tier})") from e


@DEVICES.register("coreml-mac")
class MacDevice(HostDevice):
    """This Mac's Python runtimes, Core ML included: the real parity check for .mlpackage files.

    Core ML's ``MLModel.predict`` exists only on macOS (macOS 15+ for the stateful iOS 18
    artifacts). On other systems this device refuses every artifact and says why.
    """

    name = "coreml-mac"

    def __init__(self, threads: int = 0) -> None:
        super().__init__(threads)
        self.tier = f"mac-{platform.machine()}"

    def ready(self) -> str:
        if sys.platform != "darwin":
            return f"{self.name} runs only on macOS (this is {sys.platform}); run `backdrop parity` on a Mac."
        return ""

    def why_not(self, artifact: Artifact) -> str:
        return self.ready() or super().why_not(artifact)

    def describe(self) -> DeviceDescription:
        d = super().describe()
        return DeviceDescription(
            d.name, d.tier, d.emulated, d.machine, d.cpu, f"macOS {platform.mac_ver()[0]}", d.runtime_versions
        )


__all__ = ["HostDevice", "MacDevice", "cpu_model", "machine_description"]
