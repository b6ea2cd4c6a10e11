"""``qemu-arm64``: the aarch64 build of backdrop-runner under user-mode qemu on this host.

It runs the runtimes' own aarch64 kernels (NEON, dotprod: the int8 paths phones take), so its
masks are an arm64 parity check; its timings are recorded but are emulated, never latency
(docs/devices.md). The runner is a self-contained bundle (``make native-runner-arm64``: the
runner, the aarch64 wheels' libraries, and glibc's loader and libraries from Debian's cross
toolchain), started through that loader, so qemu needs no root filesystem, chroot or binfmt.
A bench round (``bench_round``, inherited) runs the runner's bench mode under qemu: every figure
it returns is the emulator's (timings, cores, memory), and the gate readings are this host's.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from backdrop.device_tests.base import DEVICES, DeviceDescription
from backdrop.device_tests.host_native import HostNativeDevice

QEMU_CPU = "cortex-a76"
"""The emulated CPU: an Armv8.2 core with dotprod, as in mid-range phones since 2019."""

BUNDLE_ENV = "BACKDROP_ARM64_BUNDLE"
QEMU_ENV = "BACKDROP_QEMU_AARCH64"


def _build_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "build" / "native" / "aarch64"


def default_bundle() -> Path:
    """``$BACKDROP_ARM64_BUNDLE``, else build/native/aarch64/bundle/ in this checkout."""
    return Path(os.environ[BUNDLE_ENV]) if os.environ.get(BUNDLE_ENV) else _build_dir() / "bundle"


def default_qemu() -> Path:
    """``$BACKDROP_QEMU_AARCH64``, else the qemu-aarch64 that ``make native-runner-arm64`` unpacks."""
    return Path(os.environ[QEMU_ENV]) if os.environ.get(QEMU_ENV) else _build_dir() / "qemu-aarch64"


@DEVICES.register("qemu-arm64")
class QemuArm64Device(HostNativeDevice):
    """backdrop-runner for aarch64 under user-mode qemu (Cortex-A76): arm64 kernels, emulated timings.

    Args:
        threads: intra-op threads for ONNX Runtime (0 = its default).
        bundle: the self-contained aarch64 bundle folder; None for :func:`default_bundle`.
        qemu: the qemu-aarch64 binary; None for :func:`default_qemu`.
    """

    name = "qemu-arm64"
    emulated = True
    memory_kind = "qemu-aarch64 process peak RSS, the emulator's own memory included"

    def __init__(self, threads: int = 0, bundle: Path | None = None, qemu: Path | None = None) -> None:
        self.bundle = Path(bundle) if bundle is not None else default_bundle()
        self.qemu = Path(qemu) if qemu is not None else default_qemu()
        super().__init__(threads, runner=self.bundle / "backdrop-runner")
        self.tier = "emulated-arm64"

    def ready(self) -> str:
        for what, path in (("qemu-aarch64", self.qemu), ("the aarch64 runner", self.runner),
                           ("the aarch64 loader", self.bundle / "ld-linux-aarch64.so.1")):
            if not path.is_file():
                return (
                    f"no {what} at {path}: build the bundle with `make native-runner-arm64` "
                    f"(or set {BUNDLE_ENV} / {QEMU_ENV})."
                )
        return ""

    def runner_command(self) -> list[str]:
        loader = self.bundle / "ld-linux-aarch64.so.1"
        return [str(self.qemu), "-cpu", QEMU_CPU, str(loader), "--library-path", str(self.bundle), str(self.runner)]

    def runtime_versions(self, artifact) -> dict[str, str]:
        return {**super().runtime_versions(artifact), "machine": "aarch64 (emulated)", "qemu": self._qemu_version()}

    def describe(self) -> DeviceDescription:
        d = super().describe()
        return DeviceDescription(
            name=self.name,
            tier=self.tier,
            emulated=True,
            machine="aarch64",
            cpu=f"{QEMU_CPU} (emulated by {self._qemu_version()} on {d.cpu})",
            os=f"{platform.system()} {platform.release()} (user-mode emulation on {platform.machine()})",
            runtime_versions={**d.runtime_versions, "runner": str(self.runner), "qemu": self._qemu_version()},
        )

    def _qemu_version(self) -> str:
        try:
            out = subprocess.run([str(self.qemu), "--version"], capture_output=True, text=True, timeout=30).stdout
        except OSError:
            return "qemu-aarch64 (not found)"
        first = out.strip().splitlines()[0] if out.strip() else "qemu-aarch64"
        return first.replace("qemu-aarch64 version ", "qemu-aarch64 ")


__all__ = ["QEMU_CPU", "QemuArm64Device", "default_bundle", "default_qemu"]
