"""``host-native``: backdrop-runner on this host, the runtimes' own C/C++ libraries (what an
app links) instead of their Python bindings.

The runner (device_tests/native/, built by ``make native-runner``) loads one artifact, reads a
sequence file (device_tests/sequence.py), carries the state per the artifact's state form and
writes the masks and per-frame timings. This module writes the sequence, runs the runner in a
temporary folder and reads the results back; the parity check is the same as for every device.
A bench round (:meth:`HostNativeDevice.bench_round`) is one runner run in its bench mode
(``--min-frames``, ``--min-seconds``, ``--e2e``: the runner's own preprocessing).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

from backdrop.core.errors import RegistryError
from backdrop.device_tests.base import (
    DEVICES,
    QUICK_TIMING,
    BenchPlan,
    DeviceDescription,
    DeviceError,
    RoundTimings,
    TimingProtocol,
    TimingResult,
    check_sequence_inputs,
    local_gate_readings,
    run_program,
)
from backdrop.device_tests.host import machine_description
from backdrop.device_tests.sequence import CameraFrames, read_masks, write_sequence
from backdrop.export.artifact import Artifact
from backdrop.export.formats import FORMATS, package_versions
from backdrop.export.goldens import Golden

RUNNER_ENV = "BACKDROP_RUNNER"
"""Path of a backdrop-runner binary to use instead of the one ``make native-runner`` builds."""

RUNTIMES = ("executorch-xnnpack", "onnxruntime", "onnxruntime-ortformat")
"""The runtimes the runner links (artifact kinds are matched by their runtime)."""

RUN_TIMEOUT_S = 1800

BENCH_REPORT_FIELDS = ("timed_frames", "mask_frames", "frame_ms", "threads_used", "cores", "peak_rss_kb", "baseline_rss_kb")
"""What a bench round reads from the runner's report.json beyond load_ms and per_frame_ms."""

PEAK_SOURCES = {
    "VmHWM": "VmHWM of /proc/self/status at the end; baseline VmRSS before the load",
    "ru_maxrss": "getrusage ru_maxrss at the end, which can hold the starting process's peak; baseline VmRSS before the load",
}
"""How the runner's ``peak_rss_source`` reads in :attr:`RoundTimings.memory_kind`."""


def default_runner() -> Path:
    """``$BACKDROP_RUNNER``, else build/native/<machine>/backdrop-runner in this checkout."""
    if os.environ.get(RUNNER_ENV):
        return Path(os.environ[RUNNER_ENV])
    return Path(__file__).resolve().parents[1] / "build" / "native" / platform.machine() / "backdrop-runner"


@DEVICES.register("host-native")
class HostNativeDevice:
    """backdrop-runner on this host: ExecuTorch and ONNX Runtime through their C/C++ libraries.

    Args:
        threads: intra-op threads for ONNX Runtime (0 = its default).
        runner: the runner binary; None for :func:`default_runner`.
    """

    name = "host-native"
    emulated = False
    memory_kind = "runner process peak RSS"
    """What the memory figures of :meth:`bench_round` are (a subclass running the runner under an
    emulator says so); the report's source of the peak (:data:`PEAK_SOURCES`) is appended."""

    def __init__(self, threads: int = 0, runner: Path | None = None) -> None:
        self.tier = f"host-{platform.machine()}"
        self.threads = threads
        self.runner = Path(runner) if runner is not None else default_runner()

    def why_not(self, artifact: Artifact) -> str:
        try:
            kind = FORMATS.kind_of(artifact.format)
        except RegistryError as e:
            return str(e)
        if kind.runtime not in RUNTIMES:
            return f"the native runner links {', '.join(RUNTIMES)}, not {kind.runtime}."
        if artifact.state_form not in kind.state_forms:
            return f"{kind.label} files come in the {', '.join(kind.state_forms)} state form(s), not {artifact.state_form!r}."
        return ""

    def ready(self) -> str:
        if not self.runner.is_file():
            return f"no runner at {self.runner}: build it with `make native-runner` (or set {RUNNER_ENV})."
        return ""

    def runner_command(self) -> list[str]:
        """How the runner is started (a subclass may put an emulator in front)."""
        return [str(self.runner)]

    def can_run(self, artifact: Artifact) -> bool:
        return not self.why_not(artifact)

    def runtime_versions(self, artifact: Artifact) -> dict[str, str]:
        versions = {"runner": "backdrop-runner", "machine": platform.machine()}
        versions.update(package_versions(FORMATS.for_kind(artifact.format).runtime_packages))
        return versions

    def describe(self) -> DeviceDescription:
        formats = [f for f in (FORMATS.get(n) for n in FORMATS) if any(k.runtime in RUNTIMES for k in f.kinds)]
        return machine_description(self, formats, {"runner": str(self.runner)})

    def run_sequence(self, artifact: Artifact, golden: Golden) -> np.ndarray:
        check_sequence_inputs(artifact, golden)
        masks, _ = self._run(artifact, golden.frames, golden.resets, warmup=0)
        return masks

    def time(self, artifacts: list[Artifact], golden: Golden, protocol: TimingProtocol = QUICK_TIMING) -> TimingResult:
        """Each artifact's runner call times ``protocol.runs`` calls on the golden's first frame
        (state reset before each); the artifacts run in turn, in three rounds of alternating
        order, so that machine load hits all alike. Load time is not in the samples."""
        for a in artifacts:
            check_sequence_inputs(a, golden)
        rounds = min(3, protocol.runs)
        sizes = [protocol.runs // rounds + (1 if i < protocol.runs % rounds else 0) for i in range(rounds)]
        samples: dict[str, list[float]] = {a.key: [] for a in artifacts}
        for i, n in enumerate(sizes):
            frames = np.repeat(golden.frames[:1], n, axis=0)
            resets = np.ones(n, bool)
            for a in artifacts if i % 2 == 0 else artifacts[::-1]:
                _, report = self._run(a, frames, resets, warmup=protocol.warmup if i == 0 else 0)
                samples[a.key] += [float(t) for t in report["per_frame_ms"]]
        return TimingResult(samples, self.describe(), protocol, "model only: one call on the golden's first frame, state reset")

    def bench_round(self, artifact: Artifact, golden: Golden, plan: BenchPlan) -> RoundTimings:
        """One runner run in its bench mode over ``golden`` (a version-2 sequence with its camera
        buffers when ``plan.e2e``: the runner preprocesses each buffer with preprocess.cpp and
        maps each mask back, timing the whole frame). Memory is the runner process's own
        (:attr:`memory_kind`); ``threads`` is what the runtime says it runs with (0: ONNX Runtime
        left to its default, which it does not report)."""
        check_sequence_inputs(artifact, golden)
        camera = CameraFrames.from_golden(golden) if plan.e2e else None
        extra = ["--min-frames", str(plan.min_frames), "--min-seconds", repr(float(plan.min_seconds))]
        _, report = self._run(artifact, golden.frames, golden.resets, plan.warmup, camera=camera,
                              extra=[*extra, *(["--e2e"] if plan.e2e else [])])
        missing = [f for f in BENCH_REPORT_FIELDS if f not in report]
        if missing:
            raise DeviceError(
                f"{artifact.key} on {self.name}: the runner's report.json has no {', '.join(missing)}: the runner at "
                f"{self.runner} predates its bench mode; rebuild it (`make native-runner` / `make native-runner-arm64`)."
            )
        model_ms = [float(t) for t in report["per_frame_ms"]]
        e2e_ms = [float(t) for t in report["frame_ms"]] if plan.e2e else []
        timed = int(report["timed_frames"])
        if len(model_ms) != timed or (plan.e2e and len(e2e_ms) != timed) or timed < plan.min_frames:
            raise DeviceError(
                f"{artifact.key} on {self.name}: the runner reports {timed} timed frames with {len(model_ms)} model and "
                f"{len(e2e_ms)} end-to-end timings; the plan asked for at least {plan.min_frames}."
            )
        peak, baseline = int(report["peak_rss_kb"]), int(report["baseline_rss_kb"])
        return RoundTimings(
            load_ms=float(report["load_ms"]), model_ms=model_ms, e2e_ms=e2e_ms, threads=int(report["threads_used"]),
            cores={int(cpu): int(count) for cpu, count in report["cores"].items()},
            peak_rss_mb=peak / 1024.0 if peak > 0 else None,
            baseline_rss_mb=baseline / 1024.0 if baseline > 0 and peak > 0 else None,
            memory_kind=f"{self.memory_kind} ({PEAK_SOURCES.get(report.get('peak_rss_source'), 'source unknown')})"
            if peak > 0 else "",
        )

    def gate_readings(self) -> dict[str, float]:
        """This host's thermal zones and CPU clocks (the runner runs here)."""
        return local_gate_readings()

    def _run(self, artifact: Artifact, frames: np.ndarray, resets: np.ndarray, warmup: int,
             camera: CameraFrames | None = None, extra: list[str] | tuple[str, ...] = ()) -> tuple[np.ndarray, dict]:
        """Run the runner over model inputs ``frames`` with ``resets`` (and ``camera`` buffers:
        a version-2 sequence), ``extra`` arguments appended; (masks, report). The masks are the
        first pass's: all N frames, or the report's ``mask_frames`` when a bench run stopped
        sooner."""
        reason = self.why_not(artifact) or self.ready()
        if reason:
            raise DeviceError(f"{artifact.key} cannot run on {self.name} ({self.tier}): {reason}")
        with tempfile.TemporaryDirectory(prefix="backdrop-native-") as tmp:
            seq = write_sequence(frames, resets, artifact.state_form, Path(tmp) / "sequence.bdsq", camera)
            out = Path(tmp) / "out"
            self._execute(artifact, seq, out, warmup, tuple(extra))
            try:
                report = json.loads((out / "report.json").read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise DeviceError(f"{artifact.key} on {self.name}: the runner wrote no readable report.json ({e}).") from e
            n, _, h, w = frames.shape
            if int(report.get("frames", -1)) != n:
                raise DeviceError(f"{artifact.key} on {self.name}: the runner reports {report.get('frames')} frames, sent {n}.")
            kept = int(report.get("mask_frames", n))
            if not 1 <= kept <= n:
                raise DeviceError(f"{artifact.key} on {self.name}: the runner reports {kept} mask frames of {n}.")
            return read_masks(out / "masks.f32", kept, h, w), report

    def runner_args(self, artifact: Artifact, artifact_path: str, sequence: str, out: str, warmup: int,
                    extra: list[str] | tuple[str, ...] = ()) -> list[str]:
        """The runner's arguments for one run (paths as the runner sees them), ``extra`` (bench
        mode, ``--e2e``) last."""
        args = ["--artifact", artifact_path, "--kind", artifact.format, "--state-form", artifact.state_form,
                "--sequence", sequence, "--out", out, "--warmup", str(warmup)]
        return args + (["--threads", str(self.threads)] if self.threads else []) + list(extra)

    def _execute(self, artifact: Artifact, sequence: Path, out: Path, warmup: int, extra: tuple[str, ...] = ()) -> None:
        """Run the runner once: ``sequence`` in, ``out``/masks.f32 and ``out``/report.json out
        (a device elsewhere moves the files there and back); ``extra``: more runner arguments
        (:meth:`runner_args`)."""
        cmd = [*self.runner_command(),
               *self.runner_args(artifact, str(artifact.path), str(sequence), str(out), warmup, extra)]
        run_program(cmd, f"{artifact.key} on {self.name}: the runner", RUN_TIMEOUT_S)


__all__ = ["HostNativeDevice", "default_runner"]
