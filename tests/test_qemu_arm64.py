"""``qemu-arm64``: the aarch64 runner bundle under user-mode qemu, against the Python host over
real golden frames (fp32 within 2.5e-4 and the same binary masks: arm64 kernels round differently
from x86's); emulated and
labelled so; the parity command's --bucket-names / --frames and the device description."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backdrop.core.buckets import Bucket
from backdrop.device_tests import get_device
from backdrop.device_tests.base import DeviceError
from backdrop.device_tests.host import HostDevice
from backdrop.device_tests.parity import check_parity
from backdrop.device_tests.qemu_arm64 import QemuArm64Device
from backdrop.export.goldens import GoldenError

BUCKET = Bucket("t", 64, 96)
N, RESET_AT = 30, 15
PREFIX = 18  # frames run under emulation: both stretches, the reset included


@pytest.fixture(scope="module")
def qemu():
    device = get_device("qemu-arm64")
    assert not device.ready(), device.ready()  # `make test` builds the bundle (make native-runner-arm64)
    return device


@pytest.fixture(scope="module")
def golden(lite_64x96, lite_64x96_golden):
    return lite_64x96, lite_64x96_golden


def test_arm64_runner_matches_the_python_host(qemu, golden, lite_64x96_fp32):
    _, g = golden
    g = g.prefix(PREFIX)
    # ExecuTorch native, ONNX and its ORT twin (conftest exports them once for the device tests)
    arts = [a for a in lite_64x96_fp32 if not (a.format == "executorch" and a.state_form == "explicit")]
    host = HostDevice()
    for art in arts:
        assert qemu.can_run(art), qemu.why_not(art)
        got, want = qemu.run_sequence(art, g), host.run_sequence(art, g)
        # arm64 kernels (NEON, fused multiply-add) round differently from x86's, and the state
        # carries each frame's difference into the next. After 18 frames: 1.5e-5 on one x86
        # host, 1.0e-4 (ONNX) on an AVX2-only AMD EPYC host, whose x86 kernels differ again;
        # 2.5e-4 is the fp32 bound measured for this harsh test network (device_tests/parity.py).
        assert np.max(np.abs(got - want)) <= 2.5e-4, art.key
        np.testing.assert_array_equal(got >= 0.5, want >= 0.5, err_msg=art.key)
    rec = check_parity(arts[0], g, qemu)
    assert rec.passed, rec.message
    assert rec.tier == "emulated-arm64" and rec.runtime_versions["machine"] == "aarch64 (emulated)"
    assert rec.runtime_versions["qemu"].startswith("qemu-aarch64 10.")


def test_description_says_emulated_aarch64(qemu):
    d = qemu.describe()
    assert d.emulated and d.machine == "aarch64" and d.tier == "emulated-arm64"
    assert "cortex-a76" in d.cpu and "qemu-aarch64" in d.cpu and "user-mode emulation" in d.os
    assert d.runtime_versions["qemu"].startswith("qemu-aarch64 10.")


def test_missing_bundle_says_how_to_build_it(tmp_path):
    device = QemuArm64Device(bundle=tmp_path / "b", qemu=tmp_path / "q")
    assert "make native-runner-arm64" in device.ready() and str(tmp_path / "q") in device.ready()


def test_golden_prefix_must_keep_the_reset(golden):
    _, g = golden
    assert g.prefix(RESET_AT + 1).num_frames == RESET_AT + 1
    assert g.prefix(10 * N) is g
    with pytest.raises(GoldenError, match=f"leaves out the reset at frame {RESET_AT}; pass at least {RESET_AT + 1}"):
        g.prefix(RESET_AT)


def test_parity_command_on_qemu_with_a_prefix(qemu, tmp_path):
    """An exported target, its parity re-run on the emulated device for one bucket and a
    prefix: the report names the device and says it is emulated."""
    from typer.testing import CliRunner

    from backdrop.core.buckets import BucketSet
    from backdrop.export.targets import TARGETS, Target, TargetEntry
    from backdrop.orchestration.cli import app
    from backdrop.orchestration.pipeline import ExportSpec, export_target

    TARGETS.add("test-arm64", Target("test-arm64", "android", "nv21", "test", (TargetEntry("onnx", "fp32", ("explicit",)),)))
    try:
        out = export_target(ExportSpec(target="test-arm64", buckets=BucketSet.parse("a=64x96,b=96x64"), out_root=tmp_path,
                                       golden_frames=30, jobs=1), log=lambda m: None).out_dir
    finally:
        TARGETS.remove("test-arm64")
    r = CliRunner().invoke(app, ["parity", "--dist", str(out), "--device", "qemu-arm64", "--bucket-names", "a",
                                 "--frames", "16", "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output.strip().splitlines()[-1])
    assert [c["frames"] for c in doc["checked"]] == [16, 16]  # the .onnx and the .ort of bucket a
    report = json.loads((out / "reports" / "parity-qemu-arm64.json").read_text())
    assert report["device"]["emulated"] is True and report["device"]["machine"] == "aarch64"
    assert {rec["artifact"].split("/")[0] for rec in report["records"]} == {"a"}
    assert "Emulated CPU: functional check only" in (out / "reports" / "parity-qemu-arm64.md").read_text()
    bad = CliRunner().invoke(app, ["parity", "--dist", str(out), "--device", "qemu-arm64", "--bucket-names", "c"],
                             env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    assert bad.exit_code == 2 and "c: not a bucket of this export; its buckets: a, b" in bad.output
    short = CliRunner().invoke(app, ["parity", "--dist", str(out), "--device", "qemu-arm64", "--frames", "10"])
    assert isinstance(short.exception, GoldenError)


def test_an_unbuilt_device_refuses_before_work(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKDROP_ARM64_BUNDLE", str(tmp_path / "none"))
    from backdrop.device_tests.base import ready_device

    with pytest.raises(DeviceError, match="Device 'qemu-arm64' is not ready: no qemu-aarch64|no the aarch64"):
        ready_device("qemu-arm64")
