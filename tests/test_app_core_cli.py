"""The app-side cores against the Python reference: android_demo/core on the JVM (marker
``kotlin``; `make android-core-test` builds it, then runs these) and ios_demo/BackdropKit in the
Swift root (marker ``swift``; `make ios-kit-test`). For each:

- ``backdrop conformance --impl kotlin|swift``'s cases: at least 20 frame sizes with odd ones,
  every default bucket, YUV_420_888 at chroma pixel stride 1 (I420) and 2 (NV21 / NV12) with
  packed and padded rows, full and video range: all bit-exact;
- the command line (``preprocess``, ``postprocess``) on real golden frames of the export
  (BACKDROP_GOLDEN_DIST, default dist/android-arm64 for Kotlin and dist/ios-arm64 for Swift) and
  on generated buffers: model input, frame mask, binary mask and feathered alpha bit for bit
  with backdrop/core (frames.py, buckets.py, alpha.py); the bucket picked from the manifest;
- bad input exits 2 with one line that names the problem.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

from backdrop.core.alpha import binary_mask, feather_alpha, feather_band
from backdrop.core.buckets import DEFAULT_BUCKETS, Bucket, BucketSet, from_bucket, plan
from backdrop.core.frames import i420_to_yuv, nv12_to_yuv, nv21_to_yuv
from backdrop.device_tests import conformance_kotlin, conformance_swift
from backdrop.device_tests.conformance import check, coverage, generate_cases, get_implementation
from backdrop.export.goldens import load_golden
from backdrop.models.reference import bucket_input

ROOT = Path(__file__).resolve().parents[1]
DECODE = {"nv21": nv21_to_yuv, "nv12": nv12_to_yuv, "i420": i420_to_yuv}
IMPLS = [pytest.param("kotlin", marks=pytest.mark.kotlin), pytest.param("swift", marks=pytest.mark.swift)]
_DEFAULT_DIST = {"kotlin": "android-arm64", "swift": "ios-arm64"}


def _command(impl: str) -> list[str]:
    if impl == "kotlin":
        path = conformance_kotlin.default_build() / "classpath"
        assert path.is_file(), f"{path} is missing: build android_demo/core with `make android-core-test`"
        return ["java", "-cp", path.read_text().strip(), "ai.backdrop.core.CliKt"]
    path = conformance_swift.default_build() / "command"
    assert path.is_file(), f"{path} is missing: build ios_demo/BackdropKit with `make ios-kit-test`"
    return shlex.split(path.read_text().strip())


@pytest.fixture(scope="module", params=IMPLS)
def impl(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def tool(impl) -> list[str]:
    return _command(impl)


@pytest.fixture(scope="module")
def dist(impl) -> Path:
    return Path(os.environ.get("BACKDROP_GOLDEN_DIST") or ROOT / "dist" / _DEFAULT_DIST[impl]).resolve()


@pytest.fixture(scope="module")
def manifest(dist) -> dict:
    path = dist / "manifest.json"
    assert path.is_file(), f"{path} is missing: run `make export TARGET={dist.name}` first"
    return json.loads(path.read_text())


def core(tool: list[str], *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*tool, *map(str, args)], capture_output=True, text=True, timeout=300)


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a.view(np.uint32), b.view(np.uint32)))


def test_conformance_cases_cover_the_issue_and_are_bit_exact(impl):
    cases = generate_cases(120)
    cov = coverage(cases)
    assert cov["frame_sizes"]["distinct"] >= 20
    assert cov["size"]["odd"] > 0
    assert set(cov["bucket"]) == set(DEFAULT_BUCKETS.names())
    assert set(cov["yuv_420_888"]) == {f"pixel stride {k}, {r} rows" for k in (1, 2) for r in ("packed", "padded")}
    assert set(cov["color_range"]) == {"full", "video"}
    implementation = get_implementation(impl)
    assert not implementation.ready(), implementation.ready()
    result = check(implementation, cases)
    assert result.passed, result.first_difference.message()


def test_preprocess_and_postprocess_reproduce_the_golden_frames(tool, dist, manifest, tmp_path):
    threshold = manifest["threshold"]
    low, high = feather_band(threshold)
    checked = 0
    for bucket_name, rel in manifest["goldens"].items():
        g = load_golden(dist / rel)
        h, w = g.camera_height, g.camera_width
        for n in (0, len(g.frame_names) - 1):
            buf, mask = tmp_path / "buf.npy", tmp_path / "mask.npy"
            np.save(buf, g.camera_buffers[n])
            np.save(mask, g.expected_masks[n])
            out = tmp_path / "input.npy"
            r = core(tool, "preprocess", "--buffer", buf, "--layout", g.camera_format, "--width", w, "--height", h,
                     "--manifest", dist / "manifest.json", "--out", out)
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["bucket"] == bucket_name  # the manifest's bucket rule picked it
            assert bits_equal(np.load(out), g.frames[n][None])
            cam, binary, alpha = tmp_path / "cam.npy", tmp_path / "bin.npy", tmp_path / "alpha.npy"
            r = core(tool, "postprocess", "--mask", mask, "--width", w, "--height", h, "--manifest", dist / "manifest.json",
                     "--out", cam, "--binary-out", binary, "--alpha-out", alpha)
            assert r.returncode == 0, r.stderr
            want = g.expected_camera_masks[n]
            assert bits_equal(np.load(cam), want)
            np.testing.assert_array_equal(np.load(binary), binary_mask(want, threshold))
            np.testing.assert_array_equal(np.load(alpha), feather_alpha(want, low, high))
            checked += 1
    assert checked >= 2
    print(f"{checked} golden frames through the command line, bit for bit")


@pytest.mark.parametrize(("layout", "height", "width", "stride", "color_range"), [
    ("i420", 97, 63, 80, "video"),     # YUV_420_888 pixel stride 1, padded rows, odd size
    ("i420", 120, 160, 0, "full"),
    ("nv21", 101, 179, 192, "full"),   # pixel stride 2, padded rows
    ("nv12", 33, 17, 0, "video"),
])
def test_command_line_matches_the_reference_on_generated_frames(tool, tmp_path, layout, height, width, stride, color_range):
    from backdrop.device_tests.conformance import make_case

    bucket = BucketSet((Bucket("b", 96, 128), Bucket("p", 128, 96))).select(height, width)
    rng = np.random.default_rng(height * 1000 + width)
    case = make_case("cli", height, width, layout, color_range, stride, bucket, rng)
    np.save(tmp_path / "buf.npy", case.buffer)
    r = core(tool, "preprocess", "--buffer", tmp_path / "buf.npy", "--layout", layout, "--width", width, "--height", height,
             "--row-stride", stride, "--range", color_range, "--bucket", f"{bucket.height}x{bucket.width}", "--out",
             tmp_path / "in.npy")
    assert r.returncode == 0, r.stderr
    yuv = DECODE[layout](case.buffer, width, height, row_stride=stride or None, color_range=color_range)
    p = plan(height, width, bucket)
    want = bucket_input(yuv, p, np.zeros((bucket.height, bucket.width), np.float32))[:, :3]
    assert bits_equal(np.load(tmp_path / "in.npy"), np.ascontiguousarray(want))
    # a soft mask with values right at the feather band's and the threshold's edges
    m = rng.random((bucket.height, bucket.width), dtype=np.float32)
    m[0, :4] = [0.3, 0.5, 0.7, np.nextafter(np.float32(0.5), np.float32(0))]
    np.save(tmp_path / "m.npy", m.reshape(1, 1, bucket.height, bucket.width))
    r = core(tool, "postprocess", "--mask", tmp_path / "m.npy", "--width", width, "--height", height, "--bucket",
             f"{bucket.height}x{bucket.width}", "--out", tmp_path / "cam.npy", "--binary-out", tmp_path / "bin.npy",
             "--threshold", 0.45, "--alpha-out", tmp_path / "a.npy", "--feather", "0.25,0.65")
    assert r.returncode == 0, r.stderr
    cam = from_bucket(m, p)
    assert bits_equal(np.load(tmp_path / "cam.npy"), cam)
    np.testing.assert_array_equal(np.load(tmp_path / "bin.npy"), binary_mask(cam, 0.45))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), feather_alpha(cam, 0.25, 0.65))


def test_bad_input_exits_2_with_one_line(tool, tmp_path):
    np.save(tmp_path / "short.npy", np.zeros(10, np.uint8))
    r = core(tool, "preprocess", "--buffer", tmp_path / "short.npy", "--layout", "nv21", "--width", 4, "--height", 4,
             "--bucket", "8x8", "--out", tmp_path / "o.npy")
    assert r.returncode == 2
    assert "NV21 buffer for a 4x4 (width x height) frame with no row padding must be 24 bytes; got 10" in r.stderr
    assert not (tmp_path / "o.npy").exists()
    r = core(tool, "preprocess", "--buffer", tmp_path / "short.npy", "--layout", "yuy2", "--width", 4, "--height", 4,
             "--bucket", "8x8", "--out", tmp_path / "o.npy")
    assert r.returncode == 2 and "--layout yuy2 is not nv21, nv12 or i420" in r.stderr
    (tmp_path / "m.json").write_text(json.dumps({"schema_version": "2.0"}))
    r = core(tool, "postprocess", "--mask", tmp_path / "short.npy", "--width", 4, "--height", 4, "--manifest",
             tmp_path / "m.json", "--out", tmp_path / "o.npy")
    assert r.returncode == 2 and "MAJOR 2" in r.stderr and "MAJOR 1" in r.stderr
    r = core(tool, "frobnicate")
    assert r.returncode == 2 and 'unknown command "frobnicate"' in r.stderr
