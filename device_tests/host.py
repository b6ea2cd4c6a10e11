"""This machine's Python runtimes as a device: every registered format whose runtime loads in
this process (ExecuTorch, ONNX Runtime, PyTorch Lite on Linux; Core ML too on macOS), on the
CPU. Loading and running a file is the format's own (``Format.load``); this module only carries
the state (device_tests/base.py), times, and describes the machine."""

from __future__ import annotations

import platform
import sys
import time

import numpy as np

from backdrop.core.buckets import from_bucket, plan
from backdrop.core.errors import RegistryError
from backdrop.core.frames import nv12_to_yuv, nv21_to_yuv
from backdrop.device_tests.base import (
    DEVICES,
    QUICK_TIMING,
    BenchPlan,
    DeviceDescription,
    DeviceError,
    RoundTimings,
    TimingProtocol,
    TimingResult,
    check_output,
    check_sequence_inputs,
    feedback_loop,
    first_frame_feed,
    local_gate_readings,
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

    def bench_round(self, artifact: Artifact, golden: Golden, plan: BenchPlan) -> RoundTimings:
        """One bench round in this process (:func:`python_bench_round`): the Python reference's
        preprocessing is this device's end-to-end path."""
        check_sequence_inputs(artifact, golden)
        return python_bench_round(lambda: self._open(artifact), artifact, golden, plan, self.threads)

    def gate_readings(self) -> dict[str, float]:
        return local_gate_readings()

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


_DECODERS = {"nv21": nv21_to_yuv, "nv12": nv12_to_yuv}
MEMORY_KIND = "process peak RSS (Linux VmHWM, reset before the load; includes Python and the runtimes' libraries)"


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux: ``5`` into clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _current_cpu() -> int | None:
    """The CPU this thread last ran on, as the OS says (field 39 of /proc/thread-self/stat)."""
    try:
        with open("/proc/thread-self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return None


def python_bench_round(load, artifact: Artifact, golden: Golden, bench: BenchPlan, threads: int = 0) -> RoundTimings:
    """One :class:`BenchPlan` round in this process: ``load()`` (timed) gives the
    :data:`FrameRunner`; the golden's frames run in order, wrapping round (a reset), the state
    carried per the artifact's state form. End to end, each frame starts from its camera buffer:
    decoded to YUV444 (backdrop.core.frames), placed in the bucket and scaled to the model input
    (the reference's ``bucket_input``), run, and its mask mapped back (``from_bucket``)."""
    from backdrop.models.reference import bucket_input

    device = f"{artifact.key} on this host"
    dtypes = [np.dtype(s.dtype) for s in artifact.inputs]
    second = artifact.inputs[1]
    explicit = artifact.state_form == "explicit"
    placement = plan(golden.camera_height, golden.camera_width, golden.bucket)
    decode = _DECODERS.get(golden.camera_format)
    if bench.e2e and decode is None:
        raise DeviceError(f"{device}: no decoder for camera format {golden.camera_format!r}.")
    empty = np.zeros((golden.bucket.height, golden.bucket.width), np.float32)
    baseline = _status_mb("VmRSS")
    peak_known = _reset_peak_rss()
    t0 = time.perf_counter()
    call = load()
    load_ms = (time.perf_counter() - t0) * 1e3

    def feed(frame: np.ndarray, reset: bool, state):
        if explicit:
            prev = np.zeros(second.shape, dtypes[1]) if reset or state is None else state.astype(dtypes[1], copy=False)
            return [frame.astype(dtypes[0], copy=False), prev]
        return [frame.astype(dtypes[0], copy=False), np.full(second.shape, 1.0 if reset else 0.0, dtypes[1])]

    for _ in range(bench.warmup):
        call(feed(golden.frames[0][None], True, None))
    model_ms: list[float] = []
    e2e_ms: list[float] = []
    cores: dict[int, int] = {}
    state = None
    i = 0
    timed = 0.0
    n = golden.num_frames
    while len(model_ms) < bench.min_frames or timed < bench.min_seconds * 1e3:
        k = i % n
        reset = k == 0 or bool(golden.resets[k])
        t_frame = time.perf_counter()
        if bench.e2e:
            yuv = decode(golden.camera_buffers[k], golden.camera_width, golden.camera_height)
            frame = bucket_input(yuv, placement, empty)[:, :3]
        else:
            frame = golden.frames[k][None]
        inputs = feed(frame, reset, state)
        t_model = time.perf_counter()
        outs = call(inputs)
        t_done = time.perf_counter()
        mask = check_output(artifact, artifact.outputs[0], outs[0], k, device)
        if explicit:
            state = check_output(artifact, artifact.outputs[1], outs[1], k, device)
        if bench.e2e:
            from_bucket(mask[0, 0], placement)
            t_done_e2e = time.perf_counter()
            e2e_ms.append((t_done_e2e - t_frame) * 1e3)
        model_ms.append((t_done - t_model) * 1e3)
        timed += e2e_ms[-1] if bench.e2e else model_ms[-1]
        cpu = _current_cpu()
        if cpu is not None:
            cores[cpu] = cores.get(cpu, 0) + 1
        i += 1
    peak = _status_mb("VmHWM") if peak_known else None
    return RoundTimings(
        load_ms=load_ms, model_ms=model_ms, e2e_ms=e2e_ms, threads=threads, cores=cores, peak_rss_mb=peak,
        baseline_rss_mb=baseline if peak is not None else None, memory_kind=MEMORY_KIND if peak is not None else "",
    )


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
