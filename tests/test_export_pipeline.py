"""The export pipeline end to end on a small model: artifacts, goldens, parity, manifest,
atomicity. The full-size default-model exports run in CI via `make export` (see .ci/run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backdrop.core.buckets import BucketSet
from backdrop.core.errors import BucketError, RegistryError
from backdrop.export.formats import FORMATS, ExportError
from backdrop.orchestration.manifest import load_manifest, validate_manifest, ManifestError
from backdrop.orchestration.pipeline import ExportSpec, export_target

ROOT = Path(__file__).resolve().parents[1]
SMALL = BucketSet.parse("small_4x3=64x96")


def _spec(tmp_path, ckpt, target="android-arm64", **kw):
    return ExportSpec(target=target, checkpoint=ckpt, buckets=SMALL, out_root=tmp_path / "dist", jobs=1, **kw)


def test_unknown_target_and_bucket_fail_before_any_work(tmp_path, lite_checkpoint):
    with pytest.raises(RegistryError, match="Unknown target 'android'.*Valid: android-arm64"):
        export_target(_spec(tmp_path, lite_checkpoint, target="android"))
    with pytest.raises(BucketError, match="nope"):
        export_target(_spec(tmp_path, lite_checkpoint, only_buckets=("nope",)))
    assert not (tmp_path / "dist").exists()


def test_failed_export_leaves_nothing_and_keeps_previous(tmp_path, lite_checkpoint, monkeypatch):
    previous = tmp_path / "dist" / "android-arm64"
    previous.mkdir(parents=True)
    (previous / "manifest.json").write_text("{}")

    class Broken:
        name, runtime, state_forms, precisions = "executorch", "x", ("native", "explicit"), ("fp32", "int8")

        def export(self, request):
            raise ExportError("XNNPACK cannot take aten.frobnicate in small_4x3/native")

    monkeypatch.setitem(FORMATS._items, "executorch", Broken())
    with pytest.raises(ExportError, match="frobnicate"):
        export_target(_spec(tmp_path, lite_checkpoint))
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["android-arm64"]
    assert (previous / "manifest.json").read_text() == "{}"


def test_manifest_schema_rejects_missing_and_unknown_fields():
    with pytest.raises(ManifestError, match="'artifacts' is a required property"):
        validate_manifest({"schema_version": "1.0"})


@pytest.mark.slow
@pytest.mark.parametrize("target", ["android-arm64", "android-arm64-legacy", "ios-arm64"])
def test_export_target_end_to_end(tmp_path, lite_checkpoint, target):
    result = export_target(_spec(tmp_path, lite_checkpoint, target=target))
    manifest = load_manifest(result.manifest_path)
    assert manifest["target"]["name"] == target
    kinds = {(a["format"], a["state_form"]) for a in manifest["artifacts"]}
    expected = {
        "android-arm64": {("executorch", "native"), ("executorch", "explicit"), ("onnx", "explicit"), ("ort", "explicit")},
        "android-arm64-legacy": {("torchscript-lite", "native"), ("torchscript-lite", "explicit")},
        "ios-arm64": {("coreml", "native"), ("coreml", "explicit"), ("executorch", "native"), ("executorch", "explicit")},
    }[target]
    assert kinds == expected
    precisions = {"android-arm64": {"fp32", "int8"}, "android-arm64-legacy": {"fp32", "int8"},
                  "ios-arm64": {"fp32", "fp16", "int8", "palette6"}}[target]
    assert {a["precision"] for a in manifest["artifacts"]} == precisions
    for a in manifest["artifacts"]:
        assert (result.out_dir / a["path"]).exists()
        if a["format"] == "coreml":
            assert a["verified"] is None and a["verification"].startswith("unverified")
        else:
            assert a["verified"] is True, a
            assert a["details"]["parity"]["min_iou"] >= 0.99
        if a["format"] == "executorch":
            assert a["details"]["delegation"]["compute_ops_outside"] == {}
    assert (result.out_dir / "reports" / "parity.md").exists()
    assert (result.out_dir / manifest["goldens"]["small_4x3"]).exists()
    if target == "android-arm64":
        assert json.loads((result.out_dir / "reports" / "delegation.json").read_text())
        run = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "run_from_manifest.py"), str(result.out_dir)],
            capture_output=True, text=True,
        )
        assert run.returncode == 0, run.stdout + run.stderr
    if target == "android-arm64-legacy":
        from typer.testing import CliRunner

        from backdrop.orchestration.cli import app

        r = CliRunner().invoke(app, ["parity", "--dist", str(result.out_dir)])
        assert r.exit_code == 0, r.output
        assert (result.out_dir / "reports" / "parity-host.json").exists()
        assert (result.out_dir / "reports" / "parity.json").exists()
        r = CliRunner().invoke(app, ["parity", "--dist", str(result.out_dir), "--device", "coreml-mac"])
        assert r.exit_code == 0 and "skip" in r.output
    leftovers = [p.name for p in (tmp_path / "dist").iterdir() if p.name.startswith(".")]
    assert leftovers == []
