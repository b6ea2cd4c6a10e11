"""The bundle stage (`backdrop bundle`, `make android-demo`): the manifest trimmed to the copied
artifacts and still valid, the artifacts byte-identical, a short golden through the last reset
that an app runs from the bundle alone, and nothing half-written when a run fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backdrop.export.goldens import load_golden
from backdrop.orchestration.bundle import BundleError, BundleRequest, make_bundle
from backdrop.orchestration.manifest import IntegrityError, check_integrity, load_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_a_bundle_holds_what_was_chosen_and_runs_from_its_manifest_alone(small_dist, tmp_path):
    out = tmp_path / "assets" / "backdrop"
    b = make_bundle(BundleRequest(dist=small_dist, out=out, formats=("onnx",), precisions=("fp32",)))
    m = load_manifest(out / "manifest.json")  # schema-valid
    check_integrity(out, m)
    source = load_manifest(small_dist / "manifest.json")
    assert {a["format"] for a in source["artifacts"]} == {"onnx", "ort"}
    onnx = [a["key"] for a in source["artifacts"] if a["format"] == "onnx"]
    assert [a["key"] for a in m["artifacts"]] == list(b.artifacts) == onnx
    for a in m["artifacts"]:
        assert (out / a["path"]).read_bytes() == (small_dist / a["path"]).read_bytes()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        ["manifest.json", m["goldens"]["a"], *(a["path"] for a in m["artifacts"])])
    full, short = load_golden(small_dist / source["goldens"]["a"]), load_golden(out / m["goldens"]["a"])
    last = int(full.reset_indices[-1])
    assert 0 < last < full.num_frames - 1
    assert short.num_frames == b.golden_frames == last + 1 and short.resets[last]  # the mid-sequence reset is in
    for name in ("camera_buffers", "frames", "expected_masks", "expected_camera_masks"):
        np.testing.assert_array_equal(getattr(short, name), getattr(full, name)[: last + 1])
    assert m["reports"] == {} and m["golden_sha256"].keys() == {"a"}
    # the app-side contract runs from the bundle alone
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_from_manifest.py"), str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.stat().st_mode & 0o777 == 0o755


def test_a_failed_bundle_leaves_the_previous_one_whole(small_dist, tmp_path):
    out = tmp_path / "backdrop"
    make_bundle(BundleRequest(dist=small_dist, out=out, formats=("ort",)))
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(BundleError, match=r"one of formats executorch. The target has: onnx-fp32-explicit, ort-fp32-explicit"):
        make_bundle(BundleRequest(dist=small_dist, out=out, formats=("executorch",)))
    with pytest.raises(BundleError, match="leaves out the reset at frame"):
        make_bundle(BundleRequest(dist=small_dist, out=out, golden_frames=3))
    with pytest.raises(BundleError, match="--golden-bucket zz has no artifact in the bundle; choose one of a"):
        make_bundle(BundleRequest(dist=small_dist, out=out, golden_bucket="zz"))
    assert sorted(p.name for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["backdrop"]  # no temporary folder left


def test_a_modified_artifact_is_refused_before_anything_is_written(small_dist, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(small_dist, dist)
    art = next(a for a in load_manifest(dist / "manifest.json")["artifacts"] if a["format"] == "onnx")
    with open(dist / art["path"], "ab") as f:
        f.write(b"\0")
    with pytest.raises(IntegrityError, match="was modified after export"):
        make_bundle(BundleRequest(dist=dist, out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_rebundling_replaces_the_folder_and_the_cli_reports_it(small_dist, tmp_path, monkeypatch, capsys):
    from backdrop.orchestration import cli

    out = tmp_path / "backdrop"
    make_bundle(BundleRequest(dist=small_dist, out=out))
    (out / "stale.txt").write_text("from an older bundle")
    monkeypatch.setattr(sys, "argv", ["backdrop", "bundle", "-d", str(small_dist), "-o", str(out), "--formats", "ort",
                                      "--format", "json"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code in (0, None)
    doc = json.loads(capsys.readouterr().out)
    assert doc["artifacts"] == ["a/ort-fp32-explicit"] and doc["golden_bucket"] == "a"
    assert not (out / "stale.txt").exists()
    monkeypatch.setattr(sys, "argv", ["backdrop", "bundle", "-d", str(small_dist), "-o", str(out), "--precisions", " , "])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    assert "--precisions is empty" in capsys.readouterr().err
