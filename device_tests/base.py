"""The device interface: somewhere an artifact can be run over a golden sequence.

A device (this host's runtimes, arm64 under emulation, an Android phone over adb, an iPhone)
takes an exported :class:`~backdrop.export.artifact.Artifact` and a
:class:`~backdrop.export.goldens.Golden` and returns the artifact's mask after every frame,
with the state carried as the artifact's state form says (:mod:`backdrop.core.contract`;
:func:`feedback_loop` is that loop, reset wherever ``golden.resets`` is True). It also times
artifacts under a stated protocol and describes itself.

The parity check (device_tests/parity.py) does not care where the artifact ran. A new device
is one module with a class registered in :data:`DEVICES` and one import line in
device_tests/__init__.py (docs/architecture.md).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from backdrop.core.contract import TensorSpec, state_rule
from backdrop.core.errors import BackdropError, ConfigError
from backdrop.core.registry import Registry
from backdrop.export.artifact import Artifact
from backdrop.export.formats import FrameRunner
from backdrop.export.goldens import Golden


class DeviceError(BackdropError):
    """A device cannot run an artifact: unsupported format, the runtime rejected the file, or
    the artifact's real inputs/outputs differ from what it declares. The message names the
    artifact, the device and what differs."""


class DeviceLostError(DeviceError):
    """The device went away during a run (unplugged, rebooted, adbd killed): nothing more can
    run there, so a command stops instead of recording every remaining artifact as failed."""


@dataclass(frozen=True)
class DeviceDescription:
    """What a device is, recorded with every parity and timing result.

    Attributes:
        name: registry name, e.g. "host".
        tier: the kind of machine results are grouped by, e.g. "host-x86_64".
        emulated: True when the CPU is emulated (timings are functional, never latency claims).
        machine: CPU architecture, e.g. "x86_64", "aarch64".
        cpu: CPU model as the OS reports it.
        os: operating system and kernel.
        runtime_versions: runtime package -> version, for every runtime the device runs.
        label: how reports name what kind of device this is when the name does not say it
            (e.g. "emulated arm64 over adb"); "" for none.
        details: what else the device reports about itself (Android properties, CPU
            frequencies and governors, thermal zones, battery temperature), as strings.
    """

    name: str
    tier: str
    emulated: bool
    machine: str
    cpu: str
    os: str
    runtime_versions: dict[str, str]
    label: str = ""
    details: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TimingProtocol:
    """How artifacts are timed: ``warmup`` calls each, then ``runs`` timed rounds in which every
    artifact runs once, the order alternating between rounds so that load and clock changes hit
    all alike (compare them as ratios of medians within one run, not as absolutes)."""

    warmup: int = 3
    runs: int = 15

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.runs < 1:
            raise DeviceError(f"timing protocol needs warmup >= 0 and runs >= 1, got {self.warmup} and {self.runs}.")


QUICK_TIMING = TimingProtocol()
"""The default protocol: 3 warm-up calls, 15 interleaved rounds."""


@dataclass(frozen=True)
class TimingResult:
    """Milliseconds per call of each artifact (key -> samples), what ran them, how."""

    samples_ms: dict[str, list[float]]
    device: DeviceDescription
    protocol: TimingProtocol
    what: str = "model only: one call on the golden's first frame with the state reset"


@dataclass(frozen=True)
class BenchPlan:
    """One bench round of one artifact (``backdrop bench``, backdrop/bench/): load it, run
    ``warmup`` untimed frames, then frames of the golden in order, with the state carried and
    reset where ``golden.resets`` says (and again each time the sequence wraps round), until at
    least ``min_frames`` frames and ``min_seconds`` seconds of frames are timed.

    Attributes:
        warmup: untimed frames after loading (frame 0 with the state reset).
        min_frames: timed frames, at least.
        min_seconds: seconds of timed frames, at least.
        e2e: also time each frame end to end, as an app does it on this device: camera buffer
            -> YUV444 -> bucket input -> model -> mask back at the camera frame's size (the
            device's own implementation: the Python reference on the host, preprocess.cpp in the
            runner).
    """

    warmup: int = 5
    min_frames: int = 30
    min_seconds: float = 0.5
    e2e: bool = True

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_frames < 1 or not self.min_seconds >= 0:
            raise DeviceError(
                f"a bench round needs warmup >= 0, min_frames >= 1 and min_seconds >= 0, got {self.warmup}, "
                f"{self.min_frames} and {self.min_seconds}."
            )


@dataclass
class RoundTimings:
    """What one bench round measured on a device (milliseconds, per timed frame, in order).

    Attributes:
        load_ms: loading the artifact (file to a runtime ready to execute).
        model_ms: the model call alone, state carried.
        e2e_ms: the whole frame, camera buffer to camera-size mask (empty without ``plan.e2e``).
        threads: threads the runtime ran with (0 when the device cannot say).
        cores: CPU number -> timed frames after which the OS said the frame ran there ({} when
            the OS does not say).
        peak_rss_mb: the process's peak resident memory during the round (None when unknown).
        baseline_rss_mb: its resident memory before the artifact was loaded (None when unknown).
        memory_kind: what the two memory figures are, in words ("" when unknown).
    """

    load_ms: float
    model_ms: list[float]
    e2e_ms: list[float] = field(default_factory=list)
    threads: int = 0
    cores: dict[int, int] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    baseline_rss_mb: float | None = None
    memory_kind: str = ""


@runtime_checkable
class Device(Protocol):
    """Where artifacts run.

    Attributes:
        name: registry name, e.g. "host".
        tier: what kind of machine, e.g. "host-x86_64", "emulator-arm64", "phone-pixel8".
    """

    name: str
    tier: str

    def can_run(self, artifact: Artifact) -> bool:
        """Whether this device has a runtime for the artifact's format and state form."""
        ...

    def why_not(self, artifact: Artifact) -> str:
        """Why :meth:`can_run` is False (empty when it is True), for reports."""
        ...

    def ready(self) -> str:
        """Why this device can run nothing now ("" when it can): a runner not built, a phone
        not attached, the wrong operating system. Checked before any work."""
        ...

    def describe(self) -> DeviceDescription:
        """What this device is (tier, CPU, OS, runtime versions)."""
        ...

    def runtime_versions(self, artifact: Artifact) -> dict[str, str]:
        """Versions of the runtime(s) that run ``artifact`` here, for parity records."""
        ...

    def run_sequence(self, artifact: Artifact, golden: Golden) -> np.ndarray:
        """Run every frame of ``golden`` through ``artifact`` in order.

        Args:
            artifact: an artifact of ``golden.bucket``.
            golden: the sequence; ``golden.frames`` are the inputs, ``golden.resets`` where
                the state is reset.

        Returns:
            float32 (N, 1, H_b, W_b): the artifact's ``mask`` output after each frame.

        Raises:
            DeviceError: the device cannot run the artifact, or its structure (input/output
                names, count, shapes) differs from the artifact's declared specs.
        """
        ...

    def time(self, artifacts: list[Artifact], golden: Golden, protocol: TimingProtocol) -> TimingResult:
        """Time ``artifacts`` (all of one bucket) interleaved under ``protocol``.

        Raises:
            DeviceError: an artifact cannot run here.
        """
        ...

    def bench_round(self, artifact: Artifact, golden: Golden, plan: BenchPlan) -> RoundTimings:
        """One bench round of ``artifact`` over ``golden`` (see :class:`BenchPlan`); the bench
        (backdrop/bench/) interleaves rounds of several artifacts and gates them.

        Raises:
            DeviceError: the artifact cannot run here, or the run failed.
        """
        ...

    def gate_readings(self) -> dict[str, float]:
        """What the device says now about heat and clocks, for the bench's thermal gate:
        ``temp_c:<zone>`` (degrees Celsius), ``freq_mhz:cpu<N>`` (current clock) and
        ``cap_mhz:cpu<N>`` / ``max_mhz:cpu<N>`` (the clock cap now and the hardware's own
        maximum: a cap below the maximum means throttling). {} when it exposes none."""
        ...


DEVICES: Registry[type] = Registry("device")
"""Device classes by name; ``DEVICES.get(name)()`` builds one. Every built-in device module is
imported by device_tests/__init__.py (one discovery mechanism); use :func:`get_device`.

A class with ``takes_argument = True`` is also reachable as ``NAME:ARG`` (``adb:SERIAL``):
:func:`get_device` calls ``cls(ARG)``. A device that leaves files somewhere (a phone) has
``close()``, which :func:`close_device` calls when a command is done with it."""


def get_device(name: str) -> Device:
    """A device by registry name (e.g. "host"), or ``NAME:ARG`` for a device that takes one
    (e.g. "adb:R5CT1234", "adb:127.0.0.1:6555").

    Raises:
        RegistryError: unknown name; the message lists the valid ones.
        DeviceError: an argument for a device that takes none, or an empty one.
    """
    base, sep, arg = name.partition(":")
    if not sep:
        return DEVICES.get(name)()
    cls = DEVICES.get(base)
    if not getattr(cls, "takes_argument", False):
        raise DeviceError(f"{name!r}: device {base!r} takes no ':ARG' suffix; write just {base}.")
    if not arg:
        raise DeviceError(f"{name!r}: nothing after ':'; write {base}:ARG or just {base}.")
    return cls(arg)


def close_device(device: Device) -> None:
    """Let ``device`` remove what it left elsewhere (files pushed to a phone); a no-op for
    devices without a ``close()``."""
    close = getattr(device, "close", None)
    if callable(close):
        close()


def ready_device(name: str) -> Device:
    """:func:`get_device`, then :meth:`Device.ready`: what a command calls before its work.

    Raises:
        RegistryError: unknown name.
        DeviceError: the device cannot run anything now (the message says why and what to do).
    """
    device = get_device(name)
    reason = device.ready()
    if reason:
        raise DeviceError(f"Device {name!r} is not ready: {reason}")
    return device


def stand_in_artifact(kind, precision: str, state_form: str) -> Artifact:
    """An :class:`Artifact` of ``kind`` (an ``ArtifactKind``) on the first default bucket, made
    only to ask devices about (its file does not exist)."""
    from pathlib import Path

    from backdrop.core.buckets import DEFAULT_BUCKETS
    from backdrop.core.contract import io_specs

    bucket = DEFAULT_BUCKETS.buckets[0]
    inputs, outputs, states = io_specs(state_form, bucket.height, bucket.width)
    return Artifact(
        path=Path(f"stand-in-{kind.name}-{state_form}{kind.suffix}"), format=kind.name, runtime=kind.runtime,
        precision=precision, state_form=state_form, bucket=bucket, inputs=inputs, outputs=outputs, states=states,
    )


def capabilities(device: Device) -> list[tuple[object, str]]:
    """(artifact kind, "yes" or why not) for every registered artifact kind: what ``device``
    runs, from its ``why_not`` alone (nothing is loaded or connected)."""
    from backdrop.export.formats import FORMATS

    rows = []
    for fmt_name in FORMATS:
        fmt = FORMATS.get(fmt_name)
        for kind in fmt.kinds:
            reasons = {sf: device.why_not(stand_in_artifact(kind, fmt.precisions[0], sf)) for sf in kind.state_forms}
            if not any(reasons.values()):
                answer = "yes"
            elif len(set(reasons.values())) == 1:
                answer = next(iter(reasons.values()))
            else:
                answer = "; ".join(f"{sf}: {r or 'yes'}" for sf, r in reasons.items())
            rows.append((kind, answer))
    return rows


def device_summary(cls: type) -> str:
    """The first line of a device class's docstring, for tables and help."""
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def first_frame_feed(artifact: Artifact, golden: Golden) -> list[np.ndarray]:
    """Inputs for one call on the golden's first frame with the state reset (a reset flag of
    1.0, or an empty previous mask), in the artifact's declared dtypes."""
    frame = golden.frames[0][None].astype(np.dtype(artifact.inputs[0].dtype))
    second = artifact.inputs[1]
    fill = 1.0 if artifact.state_form == "native" else 0.0
    return [frame, np.full(second.shape, fill, np.dtype(second.dtype))]


def time_calls(
    calls: dict[str, FrameRunner], feeds: dict[str, list[np.ndarray]], protocol: TimingProtocol
) -> dict[str, list[float]]:
    """The interleaved timing loop of :class:`TimingProtocol` over loaded runners."""
    for _ in range(protocol.warmup):
        for key, call in calls.items():
            call(feeds[key])
    times: dict[str, list[float]] = {key: [] for key in calls}
    keys = list(calls)
    for i in range(protocol.runs):
        for key in keys if i % 2 == 0 else keys[::-1]:
            t0 = time.perf_counter()
            calls[key](feeds[key])
            times[key].append((time.perf_counter() - t0) * 1e3)
    return times


def check_sequence_inputs(artifact: Artifact, golden: Golden) -> None:
    """Raise :class:`DeviceError` unless ``artifact`` and ``golden`` are of the same bucket and
    the artifact declares the I/O of its state form (wrappers.py / artifact.io_specs)."""
    if artifact.bucket != golden.bucket:
        raise DeviceError(
            f"{artifact.key}: artifact bucket {artifact.bucket} but golden bucket {golden.bucket}; "
            "run each artifact on its own bucket's golden."
        )
    try:
        rule = state_rule(artifact.state_form)
    except ConfigError as e:
        raise DeviceError(f"{artifact.key}: {e}") from e
    ins, outs = list(rule.inputs), list(rule.outputs)
    got_in, got_out = [s.name for s in artifact.inputs], [s.name for s in artifact.outputs]
    if got_in != ins or got_out != outs:
        raise DeviceError(
            f"{artifact.key}: a {artifact.state_form}-state artifact must declare inputs {ins} and outputs "
            f"{outs} in that order; it declares inputs {got_in} and outputs {got_out}."
        )


def check_output(artifact: Artifact, spec: TensorSpec, value: np.ndarray, frame: int, device: str) -> np.ndarray:
    """``value`` as float32 after checking its shape against ``spec``; raises DeviceError."""
    arr = np.asarray(value)
    if tuple(arr.shape) != tuple(spec.shape):
        raise DeviceError(
            f"{artifact.key} on {device}: output {spec.name!r} at frame {frame} has shape "
            f"{tuple(arr.shape)}, the artifact declares {tuple(spec.shape)}."
        )
    return arr.astype(np.float32, copy=False)


def feedback_loop(artifact: Artifact, golden: Golden, call, device: str) -> np.ndarray:
    """Roll ``golden`` through ``call`` with the artifact's state contract.

    The runtime-independent part of every device: ``call(inputs) -> outputs`` runs one frame,
    ``inputs`` being numpy arrays in the artifact's input order and dtypes and ``outputs`` the
    outputs in its output order. Explicit: ``prev_mask`` is zeros where ``golden.resets`` is
    True, else the previous ``next_mask``. Native: ``reset`` is 1.0 where ``golden.resets`` is
    True, else 0.0.

    Returns:
        float32 (N, 1, H_b, W_b) masks.
    """
    check_sequence_inputs(artifact, golden)
    dtypes = [np.dtype(s.dtype) for s in artifact.inputs]
    frame_spec, second = artifact.inputs
    masks = np.empty(golden.expected_masks.shape, np.float32)
    state = None
    for i in range(golden.num_frames):
        frame = golden.frames[i][None].astype(dtypes[0])
        if artifact.state_form == "explicit":
            if golden.resets[i] or state is None:
                state = np.zeros(second.shape, dtypes[1])
            feed = [frame, state.astype(dtypes[1], copy=False)]
        else:
            feed = [frame, np.full(second.shape, 1.0 if golden.resets[i] else 0.0, dtypes[1])]
        outs = list(call(feed))
        if len(outs) != len(artifact.outputs):
            raise DeviceError(
                f"{artifact.key} on {device}: returned {len(outs)} outputs at frame {i}; it declares "
                f"{len(artifact.outputs)} ({', '.join(s.name for s in artifact.outputs)})."
            )
        checked = [check_output(artifact, s, o, i, device) for s, o in zip(artifact.outputs, outs)]
        masks[i] = checked[0][0]
        if artifact.state_form == "explicit":
            state = checked[1]
    return masks


def run_program(cmd: list[str], what: str, timeout: float) -> subprocess.CompletedProcess:
    """Run a helper program (the native runner, the MediaPipe peer) to completion, its output
    captured as text.

    Raises:
        DeviceError: "{what} ran past {timeout} s." or "{what} failed: <its last stderr line>"
            (the exit status when it printed nothing).
    """
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise DeviceError(f"{what} ran past {timeout} s.") from e
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise DeviceError(f"{what} failed: {last}")
    return proc


GATE_SHELL = (
    "for f in /sys/class/thermal/thermal_zone*/type /sys/class/thermal/thermal_zone*/temp "
    "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq /sys/devices/system/cpu/cpu*/cpufreq/scaling_max_freq "
    "/sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq; do "
    '[ -r "$f" ] && echo "$f $(cat "$f" 2>/dev/null)"; done; true'
)
"""A POSIX shell loop that prints ``PATH VALUE`` for every Linux thermal-zone and cpufreq file
it can read (Android's toybox sh runs it too); :func:`parse_gate_dump` reads its output."""

_GATE_GLOBS = (
    "/sys/class/thermal/thermal_zone*/type", "/sys/class/thermal/thermal_zone*/temp",
    "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq", "/sys/devices/system/cpu/cpu*/cpufreq/scaling_max_freq",
    "/sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq",
)
_FREQ_KEYS = {"scaling_cur_freq": "freq_mhz", "scaling_max_freq": "cap_mhz", "cpuinfo_max_freq": "max_mhz"}


def parse_gate_dump(text: str) -> dict[str, float]:
    """Gate readings (:meth:`Device.gate_readings`) from ``PATH VALUE`` lines (:data:`GATE_SHELL`):
    thermal zones in degrees Celsius named by their type (``temp_c:cpu-0-0``; the zone number
    when the type is missing or repeated), cpufreq files in MHz per CPU. Unreadable or
    non-numeric values are left out."""
    import re

    types: dict[str, str] = {}
    values: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        path, _, value = line.strip().partition(" ")
        m = re.fullmatch(r"/sys/class/thermal/(thermal_zone\d+)/(type|temp)", path)
        if m:
            if m.group(2) == "type":
                types[m.group(1)] = value.strip()
            else:
                values.append(("temp", m.group(1), value))
            continue
        m = re.fullmatch(r"/sys/devices/system/cpu/(cpu\d+)/cpufreq/(\w+)", path)
        if m and m.group(2) in _FREQ_KEYS:
            values.append((m.group(2), m.group(1), value))
    named = [types.get(z, "") for z in types]
    readings: dict[str, float] = {}
    for what, who, value in values:
        try:
            number = float(value.strip())
        except ValueError:
            continue
        if what == "temp":
            name = types.get(who, "")
            key = f"temp_c:{name if name and named.count(name) == 1 else who}"
            readings[key] = number / 1000.0 if abs(number) > 200 else number  # millidegrees on most kernels
        else:
            readings[f"{_FREQ_KEYS[what]}:{who}"] = number / 1000.0  # kHz -> MHz
    return readings


def local_gate_readings() -> dict[str, float]:
    """:func:`parse_gate_dump` of this machine's own thermal-zone and cpufreq files."""
    import glob

    lines = []
    for pattern in _GATE_GLOBS:
        for path in sorted(glob.glob(pattern)):
            try:
                with open(path) as f:
                    lines.append(f"{path} {f.read().strip()}")
            except OSError:
                continue
    return parse_gate_dump("\n".join(lines))


__all__ = [
    "DEVICES",
    "BenchPlan",
    "RoundTimings",
    "GATE_SHELL",
    "local_gate_readings",
    "parse_gate_dump",
    "run_program",
    "Device",
    "DeviceDescription",
    "DeviceError",
    "DeviceLostError",
    "TimingProtocol",
    "TimingResult",
    "capabilities",
    "device_summary",
    "stand_in_artifact",
    "first_frame_feed",
    "time_calls",
    "check_output",
    "check_sequence_inputs",
    "close_device",
    "feedback_loop",
    "get_device",
]
