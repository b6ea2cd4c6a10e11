"""``host-native``: the C++ runner (device_tests/native/) against the Python host over real
golden frames with the state carried: fp32 within 1e-5, int8 masks identical; its errors name
the file and the field; the sequence file layout round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backdrop.core.buckets import Bucket
from backdrop.device_tests import get_device
from backdrop.device_tests.base import DeviceError, TimingProtocol
from backdrop.device_tests.host import HostDevice
from backdrop.device_tests.host_native import HostNativeDevice, default_runner
from backdrop.device_tests.parity import check_parity
from backdrop.device_tests.sequence import MAGIC, read_masks, read_sequence_header, write_sequence
from backdrop.export.formats import FORMATS, ExportRequest
from backdrop.export.goldens import make_golden
from backdrop.models import build_model

BUCKET = Bucket("t", 64, 96)
N, RESET_AT = 30, 15


@pytest.fixture(scope="module")
def native():
    device = get_device("host-native")
    assert device.runner.is_file(), f"no runner at {device.runner}: `make native-runner` builds it (make test does)"
    return device


@pytest.fixture(scope="module")
def lite(lite_64x96):
    return lite_64x96


@pytest.fixture(scope="module")
def golden(lite_64x96_golden):
    return lite_64x96_golden


@pytest.fixture(scope="module")
def exported(lite_64x96_fp32):
    """fp32 ExecuTorch (both state forms) and ONNX + ORT, as the export writes them (conftest)."""
    return lite_64x96_fp32


def test_sequence_file_round_trips(golden, tmp_path):
    path = write_sequence(golden.frames, golden.resets, "native", tmp_path / "s.bdsq")
    assert path.read_bytes()[:4] == MAGIC
    assert read_sequence_header(path) == {"state_form": "native", "frames": N, "channels": 3, "height": 64, "width": 96}
    assert path.stat().st_size == 28 + N + N * 3 * 64 * 96 * 4
    with pytest.raises(DeviceError, match="unknown state form 'stateful'"):
        write_sequence(golden.frames, golden.resets, "stateful", tmp_path / "x.bdsq")
    with pytest.raises(DeviceError, match="needs N >= 1 frames"):
        write_sequence(golden.frames, golden.resets[:3], "native", tmp_path / "x.bdsq")
    (tmp_path / "m.f32").write_bytes(b"\0" * 12)
    with pytest.raises(DeviceError, match="12 bytes, expected 2 x 64 x 96 float32"):
        read_masks(tmp_path / "m.f32", 2, 64, 96)


def test_runner_matches_the_python_runtimes(native, exported, golden):
    host = HostDevice()
    assert sorted(a.format for a in exported) == ["executorch", "executorch", "onnx", "ort"]
    for art in exported:
        assert native.can_run(art), native.why_not(art)
        got = native.run_sequence(art, golden)
        want = host.run_sequence(art, golden)
        assert np.max(np.abs(got - want)) <= 1e-5, art.key
        rec = check_parity(art, golden, native)
        assert rec.passed, rec.message
        assert rec.device == "host-native" and rec.runtime_versions["runner"] == "backdrop-runner"


def test_native_state_is_carried_and_reset_by_the_runtime(native, exported, golden):
    art = next(a for a in exported if a.state_form == "native")
    masks = native.run_sequence(art, golden)
    np.testing.assert_allclose(masks, golden.expected_masks, atol=1e-3)
    # Frame RESET_AT starts again from an empty state: it equals the same frame run first.
    from dataclasses import replace

    tail = replace(golden, frame_names=golden.frame_names[RESET_AT:], camera_buffers=golden.camera_buffers[RESET_AT:],
                   frames=golden.frames[RESET_AT:], resets=golden.resets[RESET_AT:],
                   expected_masks=golden.expected_masks[RESET_AT:], expected_camera_masks=golden.expected_camera_masks[RESET_AT:])
    np.testing.assert_array_equal(native.run_sequence(art, tail)[0], masks[RESET_AT])


def test_timing_and_description(native, exported, golden):
    arts = [a for a in exported if a.state_form == "explicit"]
    result = native.time(arts, golden, TimingProtocol(warmup=1, runs=4))
    assert set(result.samples_ms) == {a.key for a in arts}
    assert all(len(v) == 4 and min(v) > 0 for v in result.samples_ms.values())
    d = result.device
    assert d.name == "host-native" and not d.emulated and d.cpu and d.machine
    assert d.runtime_versions["onnxruntime"] == __import__("onnxruntime").__version__


def test_a_corrupt_artifact_is_named(native, exported, golden, tmp_path):
    art = next(a for a in exported if a.format == "executorch")
    bad = tmp_path / art.path.name
    bad.write_bytes(art.path.read_bytes()[: 4096])
    from dataclasses import replace

    with pytest.raises(DeviceError, match=f"the runner failed: .*{bad.name}"):
        native.run_sequence(replace(art, path=bad), golden)


def test_a_sequence_of_the_wrong_size_is_named(native, exported, golden):
    art = next(a for a in exported if a.format == "onnx")
    small = Bucket("t", 32, 48)
    other = make_golden(build_model("lite").eval(), small, num_frames=30, reset_at=15)
    from dataclasses import replace

    # The device's own check refuses a golden of another bucket; the runner refuses a sequence
    # whose size differs from the model's inputs, naming both.
    with pytest.raises(DeviceError, match="artifact bucket"):
        native.run_sequence(art, other)
    with pytest.raises(DeviceError, match="32x48|1x3x32x48") as e:
        native._run(replace(art), other.frames, other.resets, warmup=0)
    assert "64" in str(e.value)


def test_missing_runner_says_how_to_build_it_before_any_work(exported, golden, tmp_path, monkeypatch):
    device = HostNativeDevice(runner=tmp_path / "nope")
    assert device.can_run(exported[0])  # what it could run, once built
    why = device.ready()
    assert "make native-runner" in why and str(tmp_path / "nope") in why
    with pytest.raises(DeviceError, match="no runner at"):
        device.run_sequence(exported[0], golden)
    monkeypatch.setenv("BACKDROP_RUNNER", str(tmp_path / "nope"))
    assert default_runner() == tmp_path / "nope"
    from backdrop.orchestration.pipeline import ExportSpec, export_target

    with pytest.raises(DeviceError, match="Device 'host-native' is not ready: no runner at"):
        export_target(ExportSpec(target="android-arm64", out_root=tmp_path / "dist", device="host-native"))
    assert not (tmp_path / "dist").exists()


def test_report_names_the_runtime_and_device(native, exported, golden):
    art = exported[0]
    _, report = native._run(art, golden.frames[:2], golden.resets[:2], warmup=0)
    assert report["runner"] == "backdrop-runner" and report["frames"] == 2
    assert report["runtime"]["name"] in ("executorch", "onnxruntime") and report["runtime"]["version"]
    assert report["device"]["machine"] and report["device"]["cpu"]
    json.dumps(report)


@pytest.mark.slow
def test_runner_int8_masks_equal_the_python_runtimes(native, lite, golden, tmp_path):
    host = HostDevice()
    arts = []
    for name in ("executorch", "onnx"):
        arts += FORMATS.get(name).export(ExportRequest(lite, BUCKET, "explicit", "int8", tmp_path, name))
    for art in arts:
        got, want = native.run_sequence(art, golden), host.run_sequence(art, golden)
        np.testing.assert_array_equal(got >= 0.5, want >= 0.5, err_msg=art.key)
        assert np.max(np.abs(got - want)) <= 1e-5, art.key
