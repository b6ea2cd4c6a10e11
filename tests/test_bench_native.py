"""The runner's bench mode (``--min-frames``, ``--min-seconds``) and ``bench_round`` on
host-native and qemu-arm64: enough frames timed, end to end never shorter than the model call,
the cores and memory reported, the first pass's masks unchanged by the loop, bad values refused;
and :func:`parse_gate_dump` on a made-up dump."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from backdrop.device_tests.base import BenchPlan, local_gate_readings, parse_gate_dump
from backdrop.device_tests.host_native import HostNativeDevice, default_runner
from backdrop.device_tests.qemu_arm64 import QemuArm64Device
from backdrop.device_tests.sequence import CameraFrames, read_camera_masks, write_sequence

# Measures time: `make test` runs this file alone, after the tests spread over the cores.
pytestmark = pytest.mark.timed


@pytest.fixture(scope="module")
def native():
    device = HostNativeDevice()
    if not device.runner.is_file():
        pytest.skip(f"no runner at {default_runner()}: `make native-runner` builds it (make test does)")
    return device


@pytest.fixture(scope="module")
def golden(lite_64x96_golden):
    return lite_64x96_golden


@pytest.fixture(scope="module")
def by_kind(lite_64x96_fp32):
    """(format, state form) -> artifact: ExecuTorch explicit and native, ONNX and ORT (conftest)."""
    return {(a.format, a.state_form): a for a in lite_64x96_fp32}


def _check_round(r, plan: BenchPlan) -> None:
    n = len(r.model_ms)
    assert n >= plan.min_frames and min(r.model_ms) >= 0
    if plan.e2e:
        assert len(r.e2e_ms) == n and all(e >= m for e, m in zip(r.e2e_ms, r.model_ms))
    else:
        assert r.e2e_ms == []
    assert r.load_ms > 0
    assert r.cores and sum(r.cores.values()) == n and all(isinstance(c, int) and c >= 0 for c in r.cores)
    assert r.peak_rss_mb is not None and r.baseline_rss_mb is not None
    assert r.peak_rss_mb >= r.baseline_rss_mb > 0
    assert "peak RSS" in r.memory_kind


def test_bench_round_on_host_native(native, by_kind, golden):
    """Past the end of the 30-frame golden (it wraps round): every frame timed, model and e2e."""
    plan = BenchPlan(warmup=2, min_frames=45, min_seconds=0.0, e2e=True)
    for (fmt, _), art in by_kind.items():
        r = native.bench_round(art, golden, plan)
        _check_round(r, plan)
        if fmt == "executorch":
            assert r.threads >= 1, art.key  # the XNNPACK thread pool's own count
        else:
            assert r.threads == 0, art.key  # ONNX Runtime left to its default, which it does not report
        assert "VmHWM" in r.memory_kind
    r = HostNativeDevice(threads=2).bench_round(by_kind["onnx", "explicit"], golden, plan)
    assert r.threads == 2
    assert native.gate_readings() == local_gate_readings()


def test_min_seconds_is_honoured(native, by_kind, golden):
    art = by_kind["executorch", "native"]
    for e2e in (True, False):
        plan = BenchPlan(warmup=0, min_frames=1, min_seconds=0.15, e2e=e2e)
        r = native.bench_round(art, golden, plan)
        _check_round(r, plan)
        timed = r.e2e_ms if e2e else r.model_ms
        assert sum(timed) >= 150 - 1e-4 * len(timed)  # the report rounds each to 1e-4 ms
        assert sum(timed[:-1]) < 150 + 1e-4 * len(timed)  # and stops once it is there


def _runner(native, art, seq, out, *extra):
    cmd = [*native.runner_command(), *native.runner_args(art, str(art.path), str(seq), str(out), 0), *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_the_loop_leaves_the_first_pass_masks_unchanged(native, by_kind, golden, tmp_path):
    """A bench run over 2.3 passes writes the same masks.f32 and camera_masks.f32 as one plain
    pass, bit for bit; a bench run shorter than the sequence keeps the frames it ran."""
    n, (ch, cw) = golden.num_frames, (golden.camera_height, golden.camera_width)
    for (fmt, form) in (("executorch", "explicit"), ("executorch", "native"), ("onnx", "explicit")):
        art = by_kind[fmt, form]
        seq = write_sequence(golden.frames, golden.resets, form, tmp_path / f"{form}.bdsq", CameraFrames.from_golden(golden))
        plain, bench, short = (tmp_path / f"{fmt}-{form}-{k}" for k in ("plain", "bench", "short"))
        p = _runner(native, art, seq, plain, "--e2e")
        b = _runner(native, art, seq, bench, "--e2e", "--min-frames", "70", "--warmup", "3")
        s = _runner(native, art, seq, short, "--min-frames", "5")
        assert p.returncode == b.returncode == s.returncode == 0, p.stderr + b.stderr + s.stderr
        for name in ("masks.f32", "camera_masks.f32"):
            assert (plain / name).read_bytes() == (bench / name).read_bytes(), (art.key, name)
        assert read_camera_masks(bench / "camera_masks.f32", n, ch, cw).shape == (n, ch, cw)
        report = json.loads((bench / "report.json").read_text())
        assert report["frames"] == n and report["mask_frames"] == n and report["timed_frames"] == 70
        assert report["min_frames"] == 70 and report["warmup"] == 3
        for key in ("per_frame_ms", "preprocess_ms", "postprocess_ms", "frame_ms"):
            assert len(report[key]) == 70, key
        assert sum(report["cores"].values()) == 70 and report["peak_rss_source"] in ("VmHWM", "ru_maxrss")
        assert report["threads_note"] and isinstance(report["threads_used"], int)
        plain_report = json.loads((plain / "report.json").read_text())
        assert plain_report["timed_frames"] == n and plain_report["min_frames"] == 0 and len(plain_report["frame_ms"]) == n
        short_report = json.loads((short / "report.json").read_text())
        assert short_report["mask_frames"] == short_report["timed_frames"] == 5 and short_report["frame_ms"] == []
        assert (short / "masks.f32").read_bytes() == (plain / "masks.f32").read_bytes()[: 5 * 64 * 96 * 4]
        if fmt == "onnx":
            assert plain_report["threads_used"] == 0 and plain_report["threads_note"].startswith("runtime default")


def test_bad_bench_values_are_refused(native, by_kind, golden, tmp_path):
    art = by_kind["onnx", "explicit"]
    seq = write_sequence(golden.frames[:2], golden.resets[:2], "explicit", tmp_path / "s.bdsq")
    for flag, value in (("--min-frames", "-1"), ("--min-frames", "3.5"), ("--min-frames", "lots"),
                        ("--min-frames", "1000001"), ("--min-seconds", "-0.5"), ("--min-seconds", "nan"),
                        ("--min-seconds", "inf"), ("--min-seconds", "1e6"), ("--min-seconds", "2s"), ("--min-seconds", "")):
        p = _runner(native, art, seq, tmp_path / "out", flag, value)
        assert p.returncode == 2, (flag, value, p.stderr)
        assert f'backdrop-runner: error: {flag} needs a ' in p.stderr and f'got "{value}"' in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()  # refused before any work


def test_bench_round_on_qemu_arm64(by_kind, golden):
    """A short round under emulation: the same report, labelled as the emulator's."""
    qemu = QemuArm64Device()
    if qemu.ready():
        pytest.skip(f"{qemu.ready()} (make test builds the bundle)")
    plan = BenchPlan(warmup=1, min_frames=6, min_seconds=0.0, e2e=True)
    r = qemu.bench_round(by_kind["executorch", "native"], golden, plan)
    _check_round(r, plan)
    assert len(r.model_ms) == 6 and r.threads >= 1
    assert r.memory_kind.startswith("qemu-aarch64 process peak RSS")
    assert qemu.gate_readings() == local_gate_readings()  # the emulator's heat is this host's


def test_parse_gate_dump():
    dump = "\n".join([
        "/sys/class/thermal/thermal_zone0/type cpu-0-0",
        "/sys/class/thermal/thermal_zone1/type gpu",
        "/sys/class/thermal/thermal_zone2/type skin",
        "/sys/class/thermal/thermal_zone3/type skin",
        "/sys/class/thermal/thermal_zone4/type battery",
        "/sys/class/thermal/thermal_zone0/temp 45500",
        "/sys/class/thermal/thermal_zone1/temp 38",  # a kernel that reports whole degrees
        "/sys/class/thermal/thermal_zone2/temp 31000",
        "/sys/class/thermal/thermal_zone3/temp 33250",
        "/sys/class/thermal/thermal_zone4/temp ",  # present but unreadable
        "/sys/class/thermal/thermal_zone5/temp 29000",  # no type
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq 1804800",
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq 1804800",
        "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq 2016000",
        "/sys/devices/system/cpu/cpu4/cpufreq/scaling_cur_freq <unknown>",
        "/sys/devices/system/cpu/cpu4/cpufreq/cpuinfo_max_freq 2400000",
        "/sys/devices/system/cpu/cpu4/cpufreq/scaling_governor schedutil",
        "some other line",
    ])
    got = parse_gate_dump(dump)
    want = {
        "temp_c:cpu-0-0": 45.5, "temp_c:gpu": 38.0, "temp_c:thermal_zone2": 31.0, "temp_c:thermal_zone3": 33.25,
        "temp_c:thermal_zone5": 29.0, "freq_mhz:cpu0": 1804.8, "cap_mhz:cpu0": 1804.8, "max_mhz:cpu0": 2016.0,
        "max_mhz:cpu4": 2400.0,
    }
    assert got.keys() == want.keys()
    assert all(np.isclose(got[k], v) for k, v in want.items()), got
    assert parse_gate_dump("") == {}
