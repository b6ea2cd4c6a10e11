"""android_demo/core's results writer (Results.kt, what the app's benchmark mode writes) against
backdrop's own reader (marker ``kotlin``; `make android-core-test` builds the library, then runs
these):

- synthetic per-round timings and a device description go through the JVM entry
  ``ai.backdrop.core.BenchDocumentKt``; the document it writes passes
  ``backdrop.bench.document.validate_document`` and says what run.py would (samples rounded to
  4 decimals as run.py rounds them, round_frames, gate checks and flags, the device named and
  tiered as the adb device names a phone);
- the statistics Kotlin computes for the app's screen equal ``backdrop.bench.stats.summarize``
  of the same samples exactly (float for float, the bootstrap interval of the median included:
  Kotlin reproduces numpy's default_rng(0) draws and pairwise sums), over sample counts that
  take every branch of numpy's summation;
- ``backdrop results import`` stores the document, and the store's recomputed statistics are
  those same numbers;
- a malformed timings file exits 2 with one line that names the field.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backdrop.bench.document import validate_document
from backdrop.bench.stats import summarize
from backdrop.device_tests.conformance_kotlin import default_build
from backdrop.results import open_store

pytestmark = pytest.mark.kotlin

BACKDROP = Path(sys.executable).parent / "backdrop"
SHA = "ab" * 32
CHECKPOINT = "cd" * 32
CPUINFO = "processor\t: 0\nCPU part\t: 0xd05\n\nprocessor\t: 4\nCPU part\t: 0xd41\n"


@pytest.fixture(scope="module")
def classpath() -> str:
    path = default_build() / "classpath"
    if not path.is_file():
        pytest.fail(f"{path} is missing: build android_demo/core first (`bash android_demo/core/build.sh compile` "
                    "or `make android-core-test`)")
    return path.read_text().strip()


def device(emulated: bool = False) -> dict:
    return {
        "manufacturer": "Google", "model": "Pixel 8", "soc_manufacturer": "Google", "soc_model": "Tensor G3",
        "board": "shiba", "hardware": "ranchu" if emulated else "shiba", "abis": ["arm64-v8a"], "sdk_int": 34,
        "release": "14", "fingerprint": "google/shiba/shiba:14/AP2A/1:user/release-keys", "kernel": "5.15.110-android14",
        "cpuinfo": CPUINFO, "cores": 9, "emulated": emulated,
        "runtime_versions": {"executorch-android": "1.5.1", "onnxruntime-android": "1.32.0"}, "app_version": "0.1.0",
    }


def artifact(key: str, state_form: str = "explicit") -> dict:
    bucket, rest = key.split("/")
    fmt, precision, _ = rest.split("-")
    return {"key": key, "path": f"{bucket}/model-{rest}.pte", "format": fmt, "precision": precision,
            "state_form": state_form, "bucket": bucket, "sha256": SHA, "size_bytes": 5_123_456}


def samples(rng: np.random.Generator, n: int, scale: float) -> list[float]:
    # Latency-like: a floor plus a long right tail, 6 significant digits and more (so the 4-decimal rounding matters).
    return [float(v) for v in scale * (1.0 + rng.lognormal(0.0, 0.35, n))]


def round_(rng: np.random.Generator, n: int, scale: float, readings: dict | None = None, **extra) -> dict:
    model = samples(rng, n, scale)
    e2e = [v + 0.8 + 0.1 * float(rng.random()) for v in model]
    return {"load_ms": 7.0 + float(rng.random()), "model_ms": model, "e2e_ms": e2e, "threads": 4,
            "gate": {"waited_s": 0.0004, "timed_out": False, "readings": readings or {}}, **extra}


def timings(rng: np.random.Generator, emulated: bool = False) -> dict:
    return {
        "started_at_ms": 1_764_758_400_123, "finished_at_ms": 1_764_758_461_456,
        "host": "Google Pixel 8", "backdrop_version": "0.1.0", "target": "android-arm64",
        "checkpoint_sha256": CHECKPOINT, "manifest_sha256": "ef" * 32, "session": "s1", "notes": ["synthetic timings"],
        "protocol": {"name": "quick", "rounds": 3},
        "device": device(emulated),
        "results": [
            {"artifact": artifact("landscape_16x9/executorch-fp32-explicit"),
             "runtime_versions": {"executorch-android": "1.5.1"},
             "rounds": [round_(rng, 34, 9.0, {"temp_c:battery": 31.5}, cores={"4": 30, "5": 4}, peak_rss_mb=212.25,
                               baseline_rss_mb=180.5, memory_kind="process peak RSS"),
                        round_(rng, 34, 9.0, {"temp_c:battery": 32.0}, cores={"4": 34}, peak_rss_mb=215.0,
                               baseline_rss_mb=181.0, memory_kind="process peak RSS"),
                        round_(rng, 35, 9.0, {"temp_c:battery": 32.5})]},
            {"artifact": artifact("landscape_16x9/onnx-int8-explicit"),
             "runtime_versions": {"onnxruntime-android": "1.32.0"},
             "rounds": [round_(rng, 40, 14.0), round_(rng, 41, 14.0), round_(rng, 39, 14.0)]},
            {"artifact": artifact("landscape_16x9/executorch-int8-native", "native"),
             "runtime_versions": {"executorch-android": "1.5.1"},
             "failure": "ExecutorchRuntimeException: synthetic failure",
             "rounds": []},
        ],
    }


def run_entry(classpath: str, data: object, tmp_path: Path, name: str = "t") -> subprocess.CompletedProcess:
    src = tmp_path / f"{name}.json"
    src.write_text(data if isinstance(data, str) else json.dumps(data))
    return subprocess.run(["java", "-cp", classpath, "ai.backdrop.core.BenchDocumentKt", "--timings", str(src),
                           "--out", str(tmp_path / f"{name}-doc.json"), "--stats-out", str(tmp_path / f"{name}-stats.json")],
                          capture_output=True, text=True, timeout=300)


def written(classpath: str, data: dict, tmp_path: Path, name: str = "t") -> tuple[Path, dict, dict]:
    proc = run_entry(classpath, data, tmp_path, name)
    assert proc.returncode == 0, proc.stderr
    doc_path = tmp_path / f"{name}-doc.json"
    return doc_path, json.loads(doc_path.read_text()), json.loads((tmp_path / f"{name}-stats.json").read_text())


def test_document_is_valid_and_says_what_run_py_would(classpath, tmp_path):
    data = timings(np.random.default_rng(1))
    _, doc, _ = written(classpath, data, tmp_path)
    validate_document(doc, "the Kotlin results document")
    run = doc["run"]
    assert (doc["format"], doc["format_version"]) == ("backdrop-results", "1.0")
    assert run["source"] == "android_demo benchmark mode"
    assert (run["started_at"], run["finished_at"]) == ("2025-12-03T10:40:00.123000Z", "2025-12-03T10:41:01.456000Z")
    assert run["git_commit"] is None and run["manifest_sha256"] == "ef" * 32 and run["session"] == "s1"
    assert run["protocol"]["name"] == "custom" and run["protocol"]["rounds"] == 3 and run["protocol"]["min_frames"] == 100
    assert run["protocol"]["gate"] == {"max_temp_c": 45.0, "timeout_s": 60.0}
    d = run["device"]
    assert (d["name"], d["tier"], d["emulated"]) == ("android_demo:google-pixel-8", "android-tensor-g3", False)
    assert d["machine"] == "aarch64"
    assert d["cpu"] == "Arm CPU parts 0xd05, 0xd41"
    assert d["os"] == "Android 14 (SDK 34, ABI arm64-v8a)"
    assert d["details"]["ro.soc.model"] == "Tensor G3"
    # The failed artifact is not a result; the notes say why, after the run's own.
    assert [r["artifact"]["key"] for r in doc["results"]] == ["landscape_16x9/executorch-fp32-explicit",
                                                            "landscape_16x9/onnx-int8-explicit"]
    assert run["notes"] == ["synthetic timings",
                            "failed landscape_16x9/executorch-int8-native: ExecutorchRuntimeException: synthetic failure"]
    first, second = doc["results"]
    assert first["artifact"]["checkpoint_sha256"] == CHECKPOINT and first["artifact"]["peer"] is False
    assert first["artifact"]["file"] == "landscape_16x9/model-executorch-fp32-explicit.pte"
    assert first["round_frames"] == [34, 34, 35] and second["round_frames"] == [40, 41, 39]
    assert first["cores"] == {"4": 64, "5": 4} and second["cores"] == {}
    assert first["memory"] == {"peak_rss_mb": 215.0, "baseline_rss_mb": 181.0, "kind": "process peak RSS"}
    assert second["memory"] is None
    assert [g["round"] for g in first["gate"]] == [0, 1, 2] and first["gate"][0]["waited_s"] == 0.0
    assert first["gate"][0]["readings"] == {"temp_c:battery": 31.5}
    assert first["flags"] == [] and second["flags"] == ["gate-unavailable"]
    for res, src in zip(doc["results"], data["results"], strict=False):
        for metric in ("model", "e2e"):
            assert res[f"{metric}_ms"] == [round(v, 4) for r in src["rounds"] for v in r[f"{metric}_ms"]]
        assert res["load_ms"] == [round(r["load_ms"], 4) for r in src["rounds"]]


def test_emulated_device_is_named_so(classpath, tmp_path):
    _, doc, _ = written(classpath, timings(np.random.default_rng(2), emulated=True), tmp_path)
    validate_document(doc)
    d = doc["run"]["device"]
    assert (d["tier"], d["emulated"]) == ("emulator-arm64", True)
    assert all("emulated" in r["flags"] for r in doc["results"])


# Sample counts through every branch of numpy's pairwise sum (< 8, <= 128 with a remainder, the
# recursive split) and of the median (odd, even), up to mlperf-sized rounds.
SIZES = [1, 2, 3, 7, 8, 9, 16, 100, 127, 128, 129, 257, 1000, 1024, 3001]


def test_statistics_equal_stats_py_exactly(classpath, tmp_path):
    rng = np.random.default_rng(3)
    data = timings(rng)
    data["results"] = [
        {"artifact": artifact(f"square_1x1/executorch-fp32-explicit{i}"), "runtime_versions": {},
         "rounds": [round_(rng, n, 5.0 + i)]}
        for i, n in enumerate(SIZES)
    ]
    _, doc, stats = written(classpath, data, tmp_path)
    validate_document(doc)
    checked = 0
    for res in doc["results"]:
        key = res["artifact"]["key"]
        for metric in ("load", "model", "e2e"):
            expected = summarize(res[f"{metric}_ms"]).to_dict()
            assert stats[key][metric] == expected, f"{key} {metric} (n={len(res[f'{metric}_ms'])})"
            checked += 1
    assert checked == 3 * len(SIZES)


def test_import_stores_it_and_the_store_computes_the_same_statistics(classpath, tmp_path):
    doc_path, doc, stats = written(classpath, timings(np.random.default_rng(4)), tmp_path)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    proc = subprocess.run([str(BACKDROP), "results", "import", str(doc_path), "--store", store, "--format", "json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (outcome,) = json.loads(proc.stdout)
    assert outcome["added"] is True and outcome["results"] == 2
    again = subprocess.run([str(BACKDROP), "results", "import", str(doc_path), "--store", store, "--format", "json"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)[0]["added"] is False
    with open_store(store) as db:
        (summary,) = db.runs()
        assert (summary.source, summary.device_tier) == ("android_demo benchmark mode", "android-tensor-g3")
        assert summary.emulated is False
        assert db.document(outcome["run_id"]) == doc
        stored = db.results(outcome["run_id"])
    assert [r.key for r in stored] == [r["artifact"]["key"] for r in doc["results"]]
    for r in stored:
        for metric in ("load", "model", "e2e"):
            assert r.stats[metric].to_dict() == stats[r.key][metric]
    show = subprocess.run([str(BACKDROP), "results", "show", outcome["run_id"][:12], "--store", store],
                          capture_output=True, text=True, timeout=300)
    assert show.returncode == 0, show.stderr
    assert "landscape_16x9/onnx-int8-explicit" in show.stdout


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: "{not json", "is not valid JSON"),
        (lambda d: d["results"][0]["rounds"][1]["model_ms"].__setitem__(3, -1.0),
         "results[0].rounds[1].model_ms[3] is -1.0; samples are milliseconds >= 0"),
        (lambda d: d["device"].pop("sdk_int"), "device.sdk_int is missing; expected a number"),
        (lambda d: d["results"][1]["artifact"].__setitem__("state_form", "both"), "results[1].artifact.state_form is \"both\""),
        (lambda d: d["protocol"].__setitem__("name", "fast"), "unknown protocol \"fast\""),
        (lambda d: d["results"][0]["artifact"].__setitem__("sha256", "xyz"), "sha256 \"xyz\" is not 64 lower-case hex digits"),
        (lambda d: d.__setitem__("results", []), "results is empty"),
    ],
    ids=["not-json", "negative-sample", "missing-field", "bad-state-form", "unknown-protocol", "bad-sha256", "no-results"],
)
def test_malformed_timings_exit_2_with_one_line(classpath, tmp_path, change, words):
    data = timings(np.random.default_rng(5))
    replaced = change(data)
    proc = run_entry(classpath, replaced if isinstance(replaced, str) else data, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench-document: "), proc.stderr
    assert words in lines[0]
    assert not (tmp_path / "t-doc.json").exists()
