"""The export pipeline end to end on a small model: artifacts, goldens, parity, manifest,
atomicity. The full-size default-model exports run in CI via `make export` (see .ci/run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backdrop.core.buckets import DEFAULT_BUCKETS, BucketSet
from backdrop.core.errors import BucketError, RegistryError
from backdrop.device_tests.base import DeviceError
from backdrop.device_tests.host import HostDevice
from backdrop.device_tests.parity import thresholds_for
from backdrop.export.artifact import artifact_from_manifest
from backdrop.export.formats import FORMATS, ExportError
from backdrop.export.targets import TARGETS
from backdrop.orchestration.manifest import ManifestError, check_integrity, load_manifest, validate_manifest
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
        runtime_packages = ()

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


def _full_export(target: str) -> Path | None:
    """The CI's main job, ``make export TARGET=...`` at full buckets, when .ci/run points
    BACKDROP_EXPORTED_DIST at it: the slow suite checks that export instead of exporting the
    same target a second time on fewer buckets."""
    root = os.environ.get("BACKDROP_EXPORTED_DIST")
    if root and (Path(root) / target / "manifest.json").exists():
        return Path(root) / target
    return None


def _expected_kinds(target: str) -> set[tuple[str, str]]:
    out = set()
    for entry in TARGETS.get(target).entries:
        for kind in FORMATS.get(entry.format).kinds:
            out |= {(kind.name, form) for form in entry.state_forms if form in kind.state_forms}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS.names())
def test_export_target_end_to_end(tmp_path, lite_checkpoint, target):
    full = _full_export(target)
    if full is not None:
        # CI's main job may export a subset of the default buckets (.ci/run says why); in their order.
        out_dir = full
        bucket_names = [b["name"] for b in load_manifest(full / "manifest.json")["buckets"]]
        assert bucket_names and bucket_names == [n for n in DEFAULT_BUCKETS.names() if n in bucket_names], bucket_names
    else:
        out_dir, bucket_names = export_target(_spec(tmp_path, lite_checkpoint, target=target)).out_dir, ["small_4x3"]
    manifest = load_manifest(out_dir / "manifest.json")
    assert manifest["target"]["name"] == target
    assert [b["name"] for b in manifest["buckets"]] == bucket_names
    assert {(a["format"], a["state_form"]) for a in manifest["artifacts"]} == _expected_kinds(target)
    assert {a["precision"] for a in manifest["artifacts"]} == {e.precision for e in TARGETS.get(target).entries}
    host = HostDevice()
    for a in manifest["artifacts"]:
        assert (out_dir / a["path"]).exists()
        art = artifact_from_manifest(a, out_dir, DEFAULT_BUCKETS.get(a["bucket"]) if full else SMALL.get(a["bucket"]))
        if host.can_run(art):
            assert a["verified"] is True, a
            assert a["details"]["parity"]["min_iou"] >= thresholds_for(a["precision"]).min_iou
        else:
            assert a["verified"] is None and a["verification"].startswith("unverified"), a
        if "delegation" in a["details"]:
            assert a["details"]["delegation"]["compute_ops_outside"] == {}
    assert (out_dir / "reports" / "parity.md").exists()
    for name in bucket_names:
        assert (out_dir / manifest["goldens"][name]).exists()
    check_integrity(out_dir, manifest)
    if any("delegation" in a["details"] for a in manifest["artifacts"]):
        assert json.loads((out_dir / "reports" / "delegation.json").read_text())
    if full is None:
        run = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "run_from_manifest.py"), str(out_dir)], capture_output=True, text=True,
        )
        assert run.returncode in (0, 2), run.stdout + run.stderr
        if run.returncode == 2:  # nothing here can run this target's artifacts
            assert "nothing was checked" in run.stderr, run.stderr
        from typer.testing import CliRunner

        from backdrop.orchestration.cli import app

        r = CliRunner().invoke(app, ["parity", "--dist", str(out_dir)])
        assert r.exit_code == 0, r.output
        if any(host.can_run(artifact_from_manifest(a, out_dir, SMALL.get(a["bucket"]))) for a in manifest["artifacts"]):
            assert (out_dir / "reports" / "parity-host.json").exists()
        r = CliRunner().invoke(app, ["parity", "--dist", str(out_dir), "--device", "coreml-mac"])
        assert isinstance(r.exception, DeviceError) and "not ready: coreml-mac runs only on macOS" in str(r.exception)
        leftovers = [p.name for p in (tmp_path / "dist").iterdir() if p.name.startswith(".")]
        assert leftovers == []


def test_workers_take_the_int8_requests_that_may_search_first():
    from types import SimpleNamespace

    from backdrop.orchestration.pipeline import _submission_order

    def r(bucket, fmt, precision, form):
        return SimpleNamespace(bucket=SimpleNamespace(name=bucket), format=fmt, precision=precision, state_form=form)

    requests = [r(b, f, p, s) for b in ("wide", "tall") for f, p, s in (
        ("executorch", "fp32", "native"), ("executorch", "int8", "native"), ("executorch", "int8", "explicit"),
        ("onnx", "fp32", "explicit"), ("onnx", "int8", "explicit"))]
    # the explicit int8 of each bucket and format (a fallback search runs in the exporting process on it),
    # then the other int8, then the rest; each group in request order; only what is still to do
    assert _submission_order(requests, list(range(10))) == [2, 4, 7, 9, 1, 6, 0, 3, 5, 8]
    assert _submission_order(requests, [0, 6, 9]) == [9, 6, 0]
