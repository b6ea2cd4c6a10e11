"""`backdrop conformance`: the runner's own preprocessing (device_tests/native/preprocess.cpp)
is bit-exact with the Python reference over generated cases of every size class, bucket,
layout, range and stride, and over golden frames; a planted difference is reported with its
case, output and index; missing binaries and corrupt files are named."""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess

import numpy as np
import pytest
import torch

from backdrop.core.buckets import DEFAULT_BUCKETS, Bucket
from backdrop.core.errors import RegistryError
from backdrop.device_tests.conformance import (
    IMPLEMENTATIONS,
    ConformanceError,
    NativeImplementation,
    Output,
    PythonImplementation,
    check,
    coverage,
    generate_cases,
    get_implementation,
    golden_cases,
    read_results,
    reference_output,
    write_cases,
)
from backdrop.export.goldens import make_golden
from backdrop.models import build_model

N_CASES = 60


@pytest.fixture(scope="module")
def native():
    impl = get_implementation("native")
    assert not impl.ready(), f"{impl.ready()} (make test builds it)"
    return impl


@pytest.fixture(scope="module")
def cases():
    return generate_cases(N_CASES)


@pytest.fixture(scope="module")
def lite():
    torch.manual_seed(0)
    return build_model("lite").eval()


@pytest.fixture(scope="module")
def golden(lite):
    return make_golden(lite, Bucket("t", 64, 96), "nv12", num_frames=30, reset_at=15)


def test_generated_cases_cover_every_class_bucket_layout_range_and_stride(cases):
    assert len(cases) == N_CASES and len({c.name for c in cases}) == N_CASES
    assert {c.size_class for c in cases} == {"tiny", "small", "medium", "large", "reject"}
    assert {c.bucket.name for c in cases} == set(DEFAULT_BUCKETS.names())
    assert {c.layout for c in cases} == {"nv21", "nv12", "i420"}
    assert {c.color_range for c in cases} == {"full", "video"}
    assert any(c.row_stride > 2 * ((c.width + 1) // 2) for c in cases)  # padded rows
    assert any(c.row_stride == 2 * ((c.width + 1) // 2) and c.width % 2 for c in cases)  # odd width, tight stride
    assert any(c.width % 2 and c.height % 2 for c in cases)
    # YUV_420_888 at chroma pixel stride 1 (I420) and 2 (NV21 / NV12), each packed and padded
    forms = {f"pixel stride {k}, {rows} rows" for k in (1, 2) for rows in ("packed", "padded")}
    assert set(coverage(cases)["yuv_420_888"]) == forms
    assert any(c.layout == "i420" and c.row_stride > c.width and c.width % 2 for c in cases)
    again = generate_cases(N_CASES)
    assert [c.name for c in again] == [c.name for c in cases]
    assert all(np.array_equal(a.buffer, b.buffer) and np.array_equal(a.bucket_mask, b.bucket_mask)
               for a, b in zip(cases, again, strict=True))


def test_native_is_bit_exact_with_the_reference(native, cases):
    result = check(native, cases)
    assert result.passed, result.first_difference.message
    rows = result.by_size_class()
    assert rows["reject"]["rejected"] == 2 and sum(r["ok"] for r in rows.values()) == N_CASES - 2
    report = result.to_dict()
    assert report["cases"] == N_CASES and report["first_difference"] is None


def test_python_impl_is_the_reference(cases):
    assert check(PythonImplementation(), cases[:20]).passed


def test_golden_frames_reproduce_the_golden_bit_for_bit(native, golden):
    gcases = golden_cases(golden)
    assert len(gcases) == golden.num_frames
    assert check(native, gcases).passed
    assert check(PythonImplementation(), gcases).passed
    # A golden whose stored input is one ulp off is caught on that frame.
    frames = golden.frames.copy()
    frames[7, 2, 10, 20] = np.nextafter(frames[7, 2, 10, 20], np.float32(2))
    bad = golden_cases(dataclasses.replace(golden, frames=frames))
    d = check(native, bad).first_difference
    assert d.case == bad[7].name and d.output == "model_input" and d.index == {"channel": 2, "row": 10, "col": 20}
    assert d.differing == 1


class _Planted(NativeImplementation):
    """The native outputs with one model-input value one ulp up in one case."""

    name = "planted"

    def __init__(self, victim: str, index: tuple[int, int, int]) -> None:
        super().__init__()
        self.victim, self.index = victim, index

    def run(self, cases):
        outs = super().run(cases)
        for c, o in zip(cases, outs, strict=True):
            if c.name == self.victim:
                o.model_input = o.model_input.copy()
                o.model_input[self.index] = np.nextafter(o.model_input[self.index], np.float32(2))
        return outs


class _PlantedInCase20(_Planted):
    def __init__(self) -> None:
        super().__init__(generate_cases(21)[20].name, (0, 0, 0))


def test_a_planted_difference_is_reported_with_case_output_and_index(cases, tmp_path):
    from backdrop.device_tests.conformance import write_report

    victim = next(c for c in cases if c.size_class == "medium")
    result = check(_Planted(victim.name, (1, 5, 7)), cases)
    assert not result.passed and [r.name for r in result.differing] == [victim.name]
    d = result.first_difference
    assert (d.case, d.output, d.index) == (victim.name, "model_input", {"channel": 1, "row": 5, "col": 7})
    assert d.differing == 1 and d.total == 3 * victim.bucket.height * victim.bucket.width
    assert int(d.got_bits, 16) == int(d.expected_bits, 16) + 1
    msg = d.message
    assert msg.startswith(f"case {victim.name} (medium): model_input[channel 1, row 5, col 7]: expected ")
    assert d.expected_bits in msg and d.got_bits in msg and "1 of" in msg
    print(msg)
    assert result.by_size_class()["medium"]["differ"] == 1
    json_path, md_path = write_report(result, tmp_path / "r")
    report = json.loads(json_path.read_text())
    assert report["passed"] is False and report["first_difference"]["index"] == {"channel": 1, "row": 5, "col": 7}
    assert "FAIL" in md_path.read_text() and victim.name in md_path.read_text()


class _RoundsDown(PythonImplementation):
    """A port that scales by 1/255 (a multiplication) instead of dividing by 255."""

    name = "rounds-down"

    def run(self, cases):
        from backdrop.core.buckets import plan, to_bucket

        outs = super().run(cases)
        for c, o in zip(cases, outs, strict=True):
            if not o.rejected:
                x = to_bucket(o.yuv444.astype(np.float32) * np.float32(1 / 255), plan(c.height, c.width, c.bucket))
                o.model_input = np.ascontiguousarray(x.transpose(2, 0, 1))
        return outs


def test_a_wrong_rounding_is_caught_in_the_first_case_it_changes(cases):
    result = check(_RoundsDown(), cases[:20])
    d = result.first_difference
    assert d is not None and d.output == "model_input" and d.case == result.differing[0].name
    assert d.expected_bits != d.got_bits and set(d.index) == {"channel", "row", "col"}


def test_a_yuv_difference_names_row_col_channel_and_a_rejection_mismatch_is_named(cases):
    class Flip(PythonImplementation):
        name = "flip"

        def run(self, batch):
            outs = super().run(batch)
            outs[3].yuv444 = outs[3].yuv444.copy()
            outs[3].yuv444[0, 0, 2] ^= 1
            outs[4] = Output(error="refused")
            return outs

    result = check(Flip(), cases[:6], batch_bytes=1 << 40)  # one batch
    first, second = result.differing[0].difference, result.differing[1].difference
    assert (first.case, first.output, first.index) == (cases[3].name, "yuv444", {"row": 0, "col": 0, "channel": 2})
    assert second.case == cases[4].name and "the implementation rejected it (refused)" in second.message


def test_rejected_cases_must_be_rejected_by_both(native, cases):
    reject = [c for c in cases if c.size_class == "reject"]
    assert len(reject) == 2 and all(reference_output(c).rejected for c in reject)
    outs = native.run(reject)
    assert "must be" in outs[0].error and "too small" in outs[1].error


def test_missing_binary_says_how_to_build_it(tmp_path, cases, monkeypatch):
    from typer.testing import CliRunner

    from backdrop.orchestration.cli import app

    missing = NativeImplementation(tmp_path / "nope" / "backdrop-conformance")
    with pytest.raises(ConformanceError, match="build it with `make native-runner`"):
        check(missing, cases[:2])
    monkeypatch.setenv("BACKDROP_CONFORMANCE", str(tmp_path / "nope"))
    r = CliRunner().invoke(app, ["conformance", "--impl", "native", "--out", str(tmp_path / "out")])
    assert isinstance(r.exception, ConformanceError) and "make native-runner" in str(r.exception)
    assert not (tmp_path / "out").exists()
    with pytest.raises(RegistryError, match="Did you mean 'native'"):
        get_implementation("natve")


def test_a_corrupt_case_file_is_named_by_the_binary(native, cases, tmp_path):
    path = write_cases(cases[:3], tmp_path / "cases.bdcc")
    data = path.read_bytes()

    def run(blob: bytes) -> subprocess.CompletedProcess:
        path.write_bytes(blob)
        return subprocess.run([str(native.binary), "--cases", str(path), "--out", str(tmp_path / "r.bdcr")],
                              capture_output=True, text=True)

    p = run(data[:-5])
    assert p.returncode == 2 and f"truncated in case 2 ({cases[2].name}) bucket mask" in p.stderr
    assert not (tmp_path / "r.bdcr").exists() and not (tmp_path / "r.bdcr.tmp").exists()
    p = run(b"XXXX" + data[4:])
    assert p.returncode == 2 and 'magic is not "BDCC"' in p.stderr
    p = run(data[:16] + struct.pack("<I", 9) + data[20:])  # case 0: layout 9
    assert p.returncode == 2 and "case 0" in p.stderr and "field layout is 9" in p.stderr
    p = run(data + b"\0")
    assert p.returncode == 2 and "1 bytes after the last of its 3 cases" in p.stderr
    p = run(data)
    assert p.returncode == 0 and len(read_results(tmp_path / "r.bdcr", cases[:3])) == 3


def test_a_corrupt_results_file_is_named(native, cases, tmp_path):
    path = write_cases(cases[:2], tmp_path / "c.bdcc")
    subprocess.run([str(native.binary), "--cases", str(path), "--out", str(tmp_path / "r.bdcr")], check=True)
    data = (tmp_path / "r.bdcr").read_bytes()
    (tmp_path / "r.bdcr").write_bytes(data[:-3])
    with pytest.raises(ConformanceError, match=rf"truncated in case 1 \({cases[1].name}\) camera_mask"):
        read_results(tmp_path / "r.bdcr", cases[:2])
    with pytest.raises(ConformanceError, match="field cases is 2, but 3 cases were sent"):
        read_results(tmp_path / "r.bdcr", cases[:3])
    with pytest.raises(ConformanceError, match="no readable results file"):
        read_results(tmp_path / "none.bdcr", cases[:2])


def test_command_writes_the_report_and_exits_1_on_a_difference(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from backdrop.orchestration.cli import app

    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["conformance", "--impl", "native", "--cases", "25", "--out", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["passed"] is True and summary["cases"] == 25 and summary["impl"] == "native"
    assert json.loads((out / "conformance.json").read_text())["size_classes"]["reject"]["rejected"] == 2
    assert "PASS" in (out / "conformance.md").read_text()

    IMPLEMENTATIONS.add("test-planted", _PlantedInCase20)
    try:
        r = CliRunner().invoke(app, ["conformance", "--impl", "test-planted", "--cases", "25", "--out", str(out)])
    finally:
        IMPLEMENTATIONS.remove("test-planted")
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.output and "first difference: case c0" in r.output and "[channel 0, row 0, col 0]" in r.output
    assert json.loads((out / "conformance.json").read_text())["passed"] is False


def test_impl_help_lists_the_registry():
    from typer.testing import CliRunner

    from backdrop.orchestration.cli import app

    r = CliRunner().invoke(app, ["conformance", "--help"], terminal_width=200)
    assert r.exit_code == 0
    for name in IMPLEMENTATIONS.names():
        assert name in r.output


def test_runner_e2e_preprocesses_the_camera_buffers_itself(lite, golden, tmp_path):
    """A version-2 sequence whose model inputs are zeros: with --e2e the runner makes them from
    the camera buffers (so its masks are those of the golden's inputs, bit for bit) and maps
    each mask back to the camera frame exactly as from_bucket does."""
    from backdrop.core.buckets import from_bucket, plan
    from backdrop.device_tests.host_native import HostNativeDevice
    from backdrop.device_tests.sequence import CameraFrames, read_camera_masks, read_masks, read_sequence_header, write_sequence
    from backdrop.export.formats import FORMATS, ExportRequest

    art = FORMATS.get("onnx").export(ExportRequest(lite, golden.bucket, "explicit", "fp32", tmp_path, "onnx"))[0]
    dev = HostNativeDevice()
    n, (h, w) = golden.num_frames, (golden.camera_height, golden.camera_width)

    def run(seq, *extra):
        out = tmp_path / seq.stem
        cmd = [*dev.runner_command(), *dev.runner_args(art, str(art.path), str(seq), str(out), 0), *extra]
        return subprocess.run(cmd, capture_output=True, text=True), out

    v1 = write_sequence(golden.frames, golden.resets, "explicit", tmp_path / "v1.bdsq")
    v2 = write_sequence(np.zeros_like(golden.frames), golden.resets, "explicit", tmp_path / "v2.bdsq",
                        CameraFrames.from_golden(golden))
    assert read_sequence_header(v2)["camera"] == {"layout": "nv12", "color_range": "full", "width": w, "height": h,
                                                  "row_stride": 0, "buffer_bytes": golden.camera_buffers.shape[1]}
    p1, out1 = run(v1)
    p2, out2 = run(v2, "--e2e")
    assert p1.returncode == 0 and p2.returncode == 0, p1.stderr + p2.stderr
    m1, m2 = read_masks(out1 / "masks.f32", n, 64, 96), read_masks(out2 / "masks.f32", n, 64, 96)
    assert np.array_equal(m1, m2)
    cam = read_camera_masks(out2 / "camera_masks.f32", n, h, w)
    placement = plan(h, w, golden.bucket)
    assert all(np.array_equal(cam[i], from_bucket(m2[i, 0], placement)) for i in range(n))
    report = json.loads((out2 / "report.json").read_text())
    assert report["e2e"] is True and len(report["preprocess_ms"]) == len(report["postprocess_ms"]) == n
    assert report["camera"]["layout"] == "NV12" and json.loads((out1 / "report.json").read_text())["e2e"] is False
    p3, _ = run(v1, "--e2e")
    assert p3.returncode == 2 and "--e2e needs a version-2 sequence file" in p3.stderr


@pytest.mark.slow
def test_native_arm64_under_qemu_is_bit_exact(cases, golden):
    impl = get_implementation("native-arm64")
    if impl.ready():
        pytest.fail(f"{impl.ready()} (make test-slow builds it)")
    result = check(impl, cases + golden_cases(golden))
    assert result.passed, result.first_difference.message
    assert "qemu" in " ".join(impl.command(impl.bundle / "c", impl.bundle / "r"))


@pytest.mark.slow
def test_command_checks_every_golden_of_an_export(tmp_path):
    from typer.testing import CliRunner

    from backdrop.core.buckets import BucketSet
    from backdrop.export.targets import TARGETS, Target, TargetEntry
    from backdrop.orchestration.cli import app
    from backdrop.orchestration.pipeline import ExportSpec, export_target

    TARGETS.add("test-conformance", Target("test-conformance", "android", "nv21", "test",
                                           (TargetEntry("onnx", "fp32", ("explicit",)),)))
    try:
        dist = export_target(ExportSpec(target="test-conformance", buckets=BucketSet.parse("a=64x96"), out_root=tmp_path,
                                        golden_frames=30, jobs=1), log=lambda m: None).out_dir
    finally:
        TARGETS.remove("test-conformance")
    r = CliRunner().invoke(app, ["conformance", "--impl", "native", "--dist", str(dist), "--cases", "10"])
    assert r.exit_code == 0, r.output
    assert "+ 30 golden frames" in r.output
    report = json.loads((dist / "reports" / "conformance-native" / "conformance.json").read_text())
    assert report["size_classes"]["golden"] == {"cases": 30, "ok": 30, "rejected": 0, "differ": 0, "first_difference": None}
