"""The ``adb`` device against a real adbd (Debian's, on loopback: `make adbd`), whose shell runs
the aarch64 bundle through the pushed qemu: push, run, pull, parse, the device description, a
corrupted artifact named, a device that vanishes mid-run reported as such, nothing left behind;
a bench round and the gate readings over adb.

The `adb` tests need that adbd (`make test-adb` starts it; BACKDROP_TEST_ADB_SERIAL names
another device). The argument parsing ones run everywhere."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from backdrop.core.buckets import Bucket
from backdrop.core.errors import RegistryError
from backdrop.device_tests import get_device
from backdrop.device_tests.adb_device import REMOTE_ROOT, AdbDevice
from backdrop.device_tests.base import BenchPlan, DeviceError, DeviceLostError, close_device, local_gate_readings
from backdrop.device_tests.parity import check_parity
from backdrop.device_tests.qemu_arm64 import QemuArm64Device

ROOT = Path(__file__).resolve().parents[1]
ADBD = ROOT / "scripts" / "adbd.sh"
BUCKET = Bucket("t", 64, 96)
N, RESET_AT, PREFIX = 30, 15, 18
SPARE_PORT = 6556  # the disposable adbd the vanishing test kills


def _serial() -> str:
    import os

    return os.environ.get("BACKDROP_TEST_ADB_SERIAL", "127.0.0.1:6555")


def _remote_listing(device: AdbDevice) -> str:
    _, out, _ = device._shell(f"ls -R {REMOTE_ROOT} 2>/dev/null || true", "listing")
    return out.strip()


@pytest.fixture(scope="module")
def serial():
    s = _serial()
    reason = AdbDevice(s).ready()
    assert not reason, f"{reason} (`make test-adb` starts the loopback adbd: scripts/adbd.sh start)"
    return s


@pytest.fixture(scope="module")
def golden(lite_64x96_golden):
    return lite_64x96_golden.prefix(PREFIX)


@pytest.fixture(scope="module")
def exported(lite_64x96_fp32):
    """ExecuTorch native, then the ONNX file (conftest exports them once for the device tests)."""
    by = {(a.format, a.state_form): a for a in lite_64x96_fp32}
    return [by["executorch", "native"], by["onnx", "explicit"]]


@pytest.mark.adb
def test_push_run_pull_matches_qemu_and_leaves_nothing(serial, golden, exported):
    """The same bundle on the same emulated CPU: the masks equal qemu-arm64's bit for bit; the
    device says what it is; after close() nothing of ours is left on it."""
    device = get_device(f"adb:{serial}")
    assert not device.ready()
    qemu = QemuArm64Device()
    try:
        for art in exported:
            assert device.can_run(art), device.why_not(art)
            got = device.run_sequence(art, golden)
            np.testing.assert_array_equal(got, qemu.run_sequence(art, golden), err_msg=art.key)
        rec = check_parity(exported[0], golden, device)
        assert rec.passed, rec.message
        assert rec.device == f"adb:{serial}" and rec.tier == "emulated-arm64-adb"
        assert rec.runtime_versions["machine"] == "aarch64 (emulated)"
        listing = _remote_listing(device)
        assert "bundle-" in listing and "backdrop-runner" in listing and "qemu-aarch64" in listing
        _, runs, _ = device._shell(f"ls {REMOTE_ROOT}/runs | wc -l", "listing runs")
        assert runs.strip() == "0"  # each run's folder goes when it is done
        d = device.describe()
        assert d.label == "emulated arm64 over adb" and d.emulated and d.machine == "aarch64"
        assert d.os.startswith("Linux (not Android)") and "cortex-a76" in d.cpu and int(d.details["cores"]) >= 1
    finally:
        close_device(device)
    assert _remote_listing(device) == ""


@pytest.mark.adb
def test_files_already_there_are_not_pushed_again(serial, golden, exported):
    keep = AdbDevice(serial, keep=True)
    try:
        keep.run_sequence(exported[1], golden)
        assert keep._remote.pushed  # the bundle, the artifact
        again = AdbDevice(serial)
        again.run_sequence(exported[1], golden)
        assert again._remote.pushed == []  # found by hash: nothing sent
        assert again._remote.bundle_dir == keep._remote.bundle_dir
    finally:
        keep.keep = False
        close_device(keep)
    assert _remote_listing(keep) == ""


@pytest.mark.adb
def test_a_corrupted_artifact_is_named(serial, golden, exported, tmp_path):
    art = exported[1]  # the .onnx
    broken = tmp_path / ("broken" + Path(art.path).suffix)
    data = bytearray(Path(art.path).read_bytes())
    data[len(data) // 3: len(data) // 3 + 4096] = b"\xff" * 4096
    broken.write_bytes(bytes(data))
    bad = dataclasses.replace(art, path=broken)
    device = AdbDevice(serial)
    try:
        rec = check_parity(bad, golden, device)
        assert not rec.passed and rec.error
        assert rec.error.startswith(f"{bad.key} on adb:{serial}: the runner failed:"), rec.error
        good = check_parity(exported[0], golden, device)  # the device is still fine
        assert good.passed, good.message
    finally:
        close_device(device)
    assert _remote_listing(device) == ""


@pytest.fixture
def spare_adbd():
    subprocess.run(["bash", str(ADBD), "start", str(SPARE_PORT)], check=True, capture_output=True)
    yield f"127.0.0.1:{SPARE_PORT}"
    subprocess.run(["bash", str(ADBD), "stop", str(SPARE_PORT)], capture_output=True)
    subprocess.run(["rm", "-rf", REMOTE_ROOT], capture_output=True)  # what the vanished device kept


@pytest.mark.adb
def test_a_device_that_disappears_mid_run_is_reported(spare_adbd, golden, exported, tmp_path):
    """adbd killed while the runner runs: DeviceLostError naming the device and the step,
    through check_parity too (a lost device is not one failed artifact)."""
    device = AdbDevice(spare_adbd)
    assert not device.ready()

    def kill_when_running():
        for _ in range(600):
            if subprocess.run(["pgrep", "-f", f"{REMOTE_ROOT}/runs/"], capture_output=True).returncode == 0:
                subprocess.run(["bash", str(ADBD), "stop", str(SPARE_PORT)], capture_output=True)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    with pytest.raises(DeviceLostError, match=rf"adb:{spare_adbd}: the device disappeared during the run of "
                                              rf"{exported[0].key} \(now (offline|gone)"):
        check_parity(exported[0], golden, device)
    killer.join()
    close_device(device)  # a lost device is left alone, without an error


@pytest.mark.adb
def test_parity_command_over_adb_and_a_vanished_device(serial, tmp_path):
    """`backdrop parity --device adb:SERIAL` on an export: the report names the device and its
    label; `backdrop devices adb:SERIAL` describes it; a serial adb does not know is refused."""
    from typer.testing import CliRunner

    from backdrop.core.buckets import BucketSet
    from backdrop.export.targets import TARGETS, Target, TargetEntry
    from backdrop.orchestration.cli import app
    from backdrop.orchestration.pipeline import ExportSpec, export_target

    TARGETS.add("test-adb", Target("test-adb", "android", "nv21", "test", (TargetEntry("onnx", "fp32", ("explicit",)),)))
    try:
        out = export_target(ExportSpec(target="test-adb", buckets=BucketSet.parse("a=64x96"), out_root=tmp_path,
                                       golden_frames=30, jobs=1), log=lambda m: None).out_dir
    finally:
        TARGETS.remove("test-adb")
    r = CliRunner().invoke(app, ["parity", "--dist", str(out), "--device", f"adb:{serial}", "--frames", "16",
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    stem = f"adb-{serial.replace(':', '-')}"
    report = json.loads((out / "reports" / f"parity-{stem}.json").read_text())
    assert report["device"]["label"] == "emulated arm64 over adb" and report["device"]["emulated"] is True
    assert "emulated arm64 over adb" in (out / "reports" / f"parity-{stem}.md").read_text()
    assert len(report["records"]) == 2 and all(rec["passed"] for rec in report["records"])
    r = CliRunner().invoke(app, ["devices", f"adb:{serial}", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["description"]["tier"] == "emulated-arm64-adb"
    r = CliRunner().invoke(app, ["devices", "adb:no-such-serial"])
    assert r.exit_code == 1 and "not attached" in r.output and serial in r.output
    assert _remote_listing(AdbDevice(serial)) == ""


@pytest.mark.adb
def test_bench_round_over_adb(serial, golden, exported):
    """The runner's bench mode on the device: every timed frame comes back, labelled as the
    pushed emulator's; nothing is left behind."""
    device = AdbDevice(serial)
    plan = BenchPlan(warmup=1, min_frames=6, min_seconds=0.0, e2e=True)
    try:
        r = device.bench_round(exported[1], golden, plan)
    finally:
        close_device(device)
    assert len(r.model_ms) == len(r.e2e_ms) == 6 and all(e >= m for e, m in zip(r.e2e_ms, r.model_ms))
    assert r.load_ms > 0 and r.threads == 0  # ONNX Runtime left to its default
    assert r.cores and sum(r.cores.values()) == 6
    assert r.peak_rss_mb >= r.baseline_rss_mb > 0 and "pushed qemu-aarch64" in r.memory_kind
    assert _remote_listing(device) == ""


@pytest.mark.adb
def test_gate_readings_over_adb(serial):
    """The loopback adbd's "device" is this machine: its readings are this host's own (maybe {}).
    Current clocks move between two reads; which readings there are, caps and maxima do not."""
    device = AdbDevice(serial)
    try:
        got, here = device.gate_readings(), local_gate_readings()
    finally:
        close_device(device)
    assert got.keys() == here.keys()
    for key, value in here.items():
        if key.startswith(("cap_mhz:", "max_mhz:")):
            assert got[key] == value, key
        elif key.startswith("temp_c:"):
            assert abs(got[key] - value) < 5.0, key


def test_gate_readings_failures(monkeypatch):
    """A device whose files cannot be read gives {}; a device that went away still stops the bench."""
    device = AdbDevice("R5CT1234")

    def fails(error):
        def shell(*args, **kwargs):
            raise error
        return shell

    monkeypatch.setattr(device, "_shell", lambda *a, **k: (1, "", "sh: not found"))
    assert device.gate_readings() == {}
    monkeypatch.setattr(device, "_shell", fails(DeviceError("adb: adb failed during reading")))
    assert device.gate_readings() == {}
    monkeypatch.setattr(device, "_shell", fails(DeviceLostError("adb:R5CT1234: the device disappeared")))
    with pytest.raises(DeviceLostError, match="disappeared"):
        device.gate_readings()
    monkeypatch.setattr(device, "_shell", lambda *a, **k: (0, "/sys/class/thermal/thermal_zone0/temp 41000\n", ""))
    assert device.gate_readings() == {"temp_c:thermal_zone0": 41.0}


def test_device_names_with_arguments():
    assert isinstance(get_device("adb:R5CT1234"), AdbDevice) and get_device("adb:R5CT1234").serial == "R5CT1234"
    assert get_device("adb:127.0.0.1:6555").serial == "127.0.0.1:6555"
    assert get_device("adb").serial is None
    with pytest.raises(DeviceError, match="device 'host' takes no ':ARG' suffix"):
        get_device("host:x")
    with pytest.raises(DeviceError, match="nothing after ':'"):
        get_device("adb:")
    with pytest.raises(RegistryError):
        get_device("abd:x")


def test_an_unbuilt_bundle_refuses_before_connecting(tmp_path):
    device = AdbDevice("R5CT1234", bundle=tmp_path / "none")
    assert "make native-runner-arm64" in device.ready() and device._remote is None
