"""scripts/run_from_manifest.py, the model for app code: from a hand-written manifest, a golden
and real artifacts in tmp_path it reproduces the expected masks, and it fails clearly when the
golden or the folder is broken."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from backdrop.core.buckets import Bucket
from backdrop.export.artifact import io_specs
from backdrop.export.goldens import make_golden, save_golden
from backdrop.models.wrappers import STATE_NAME, example_inputs, wrap
from helpers import TwoConv, structure_head

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "run_from_manifest.py"
BUCKET = Bucket("t", 64, 96)
H, W = BUCKET.height, BUCKET.width
ALLOWED_IMPORTS = {"__future__", "argparse", "hashlib", "json", "sys", "zipfile", "zlib", "pathlib", "numpy", "onnxruntime",
                   "executorch.runtime", "torch"}


def _model(carphone_path) -> nn.Module:
    """Random weights rescaled on a real frame so masks are structured (not all empty)."""
    torch.manual_seed(3)
    return structure_head(TwoConv(), carphone_path, BUCKET)


def _entry(root: Path, rel: str, fmt: str, runtime: str, state_form: str) -> dict:
    inputs, outputs, states = io_specs(state_form, H, W)
    return {
        "key": f"t/{fmt}-fp32-{state_form}",
        "path": rel,
        "format": fmt,
        "runtime": runtime,
        "precision": "fp32",
        "state_form": state_form,
        "bucket": "t",
        "inputs": [s.to_dict() for s in inputs],
        "outputs": [s.to_dict() for s in outputs],
        "states": [s.to_dict() for s in states],
        "sha256": hashlib.sha256((root / rel).read_bytes()).hexdigest(),
    }


@pytest.fixture(scope="module")
def target(carphone_path, tmp_path_factory):
    """dist/<target>/ by hand: manifest.json, goldens/t.npz, an ONNX explicit-state artifact,
    an ExecuTorch native-state artifact, and a Core ML entry the script must skip."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes.init_mutable_pass import InitializedMutableBufferPass

    root = tmp_path_factory.mktemp("dist") / "test-target"
    (root / "t").mkdir(parents=True)
    model = _model(carphone_path)
    save_golden(make_golden(model, BUCKET, "nv21", num_frames=30, reset_at=15), root / "goldens" / "t.npz")
    torch.onnx.export(
        wrap(model, "explicit", H, W), example_inputs("explicit", H, W), str(root / "t" / "model-onnx-fp32-explicit.onnx"),
        input_names=["frame", "prev_mask"], output_names=["mask", "next_mask"], dynamo=False,
    )
    with torch.no_grad():
        ep = torch.export.export(wrap(model, "native", H, W), example_inputs("native", H, W))
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    program = edge.to_executorch(ExecutorchBackendConfig(passes=[InitializedMutableBufferPass([STATE_NAME])]))
    (root / "t" / "model-executorch-fp32-native.pte").write_bytes(program.buffer)
    coreml = _entry(root, "t/model-onnx-fp32-explicit.onnx", "coreml", "coreml", "native")
    coreml.update(path="t/model-coreml-fp16-native.mlpackage", key="t/coreml-fp16-native")
    manifest = {
        "schema_version": "1.0",
        "camera": {"format": "nv21", "color": "bt601-full"},
        "buckets": [{"name": "t", "height": H, "width": W}, {"name": "u", "height": W, "width": H}],
        "threshold": 0.5,
        "artifacts": [
            _entry(root, "t/model-onnx-fp32-explicit.onnx", "onnx", "onnxruntime", "explicit"),
            _entry(root, "t/model-executorch-fp32-native.pte", "executorch", "executorch-xnnpack", "native"),
            coreml,
        ],
        "goldens": {"t": "goldens/t.npz"},
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(root), *args], capture_output=True, text=True, timeout=300
    )


def _copy_with(target: Path, tmp_path: Path, manifest_change=None) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(target, root)
    if manifest_change is not None:
        m = json.loads((root / "manifest.json").read_text())
        manifest_change(m)
        (root / "manifest.json").write_text(json.dumps(m))
    return root


def _load_script():
    spec = importlib.util.spec_from_file_location("run_from_manifest", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNTIME_FUNCTIONS = {"why_not_runnable", "runtime_runner"}
"""The only code that may use backdrop: loading a file into its runtime through the format
registry (what an app gets from the runtime's own library)."""


def _imports(node) -> set[str]:
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            names |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            names.add(n.module)
    return names


def test_script_imports_only_what_an_app_has():
    tree = ast.parse(SCRIPT.read_text())
    runtime = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in RUNTIME_FUNCTIONS]
    assert {n.name for n in runtime} == RUNTIME_FUNCTIONS
    rest = ast.Module(body=[n for n in tree.body if n not in runtime], type_ignores=[])
    names = _imports(rest)
    assert names <= ALLOWED_IMPORTS, names - ALLOWED_IMPORTS
    assert not any(n.startswith("backdrop") for n in names)
    loaders = set().union(*(_imports(n) for n in runtime))
    assert loaders <= {
        "backdrop.core.buckets", "backdrop.core.errors", "backdrop.export.artifact", "backdrop.export.formats"
    }, loaders


def test_reproduces_the_golden_masks_with_both_runtimes(target):
    proc = _run(target)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   t/onnx-fp32-explicit: 30 frames" in proc.stdout
    assert "ok   t/executorch-fp32-native: 30 frames" in proc.stdout
    assert "all 2 artifacts reproduce the golden masks" in proc.stdout
    assert "skip t/coreml-fp16-native: Core ML runs only on macOS" in proc.stderr


def test_its_bucket_rule_reproduces_the_model_input_bit_for_bit(target):
    """The script's decode + placement + resize + padding, written from docs alone, equals the
    golden's stored model input exactly (the reference's own computation)."""
    script = _load_script()
    with np.load(target / "goldens" / "t.npz", allow_pickle=False) as z:
        buffers, (h, w), frames = z["camera_buffers"], z["camera_size"], z["frames"]
    buckets = json.loads((target / "manifest.json").read_text())["buckets"]
    assert script.select_bucket(int(h), int(w), buckets)["name"] == "t"
    placement = script.place(int(h), int(w), H, W)
    assert placement == (64, 95, 0, 0)
    for i in (0, 7, 29):
        yuv = script.decode_semi_planar(buffers[i], int(w), int(h), "nv21")
        planes = script.to_bucket(yuv.astype(np.float32) / np.float32(255.0), H, W, placement)
        np.testing.assert_array_equal(planes.transpose(2, 0, 1), frames[i])


def test_corrupted_expected_masks_fail_naming_artifact_frame_and_iou(target, tmp_path):
    root = _copy_with(target, tmp_path)
    path = root / "goldens" / "t.npz"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["expected_camera_masks"][7] = 1.0 - arrays["expected_camera_masks"][7]
    np.savez_compressed(path, **arrays)
    proc = _run(root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL t/onnx-fp32-explicit: frame 7 (frame_00007): IoU 0.0000 < 0.99" in proc.stderr
    assert "FAIL t/executorch-fp32-native: frame 7 (frame_00007): IoU" in proc.stderr
    assert "2 of 2 artifacts did not reproduce the goldens" in proc.stderr


@pytest.mark.parametrize(
    "damage, text",
    [
        ("truncate", "is not a readable .npz"),
        ("drop_buffers", "lacks ['camera_buffers']; re-run the export"),
        ("other_camera", "golden buffers are nv12, the manifest's camera says nv21"),
    ],
)
def test_broken_golden_is_a_usage_error(target, tmp_path, damage, text):
    root = _copy_with(target, tmp_path)
    path = root / "goldens" / "t.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if damage == "drop_buffers":
            del arrays["camera_buffers"]
        else:
            arrays["camera_format"] = np.array("nv12")
        np.savez_compressed(path, **arrays)
    proc = _run(root)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert text in proc.stderr


@pytest.mark.parametrize(
    "change, text",
    [
        (lambda m: m.update(schema_version="2.0"), "manifest schema_version 2.0 is not 1.x"),
        (lambda m: m.pop("goldens"), "manifest lacks 'goldens'"),
        (lambda m: m["artifacts"][0].update(sha256="0" * 64), "the manifest says 0000"),
        (lambda m: m["artifacts"][0].pop("state_form"), "the manifest lacks field 'state_form'"),
    ],
)
def test_bad_manifest_is_a_usage_error(target, tmp_path, change, text):
    proc = _run(_copy_with(target, tmp_path, change))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert text in proc.stderr


def test_missing_folder(tmp_path):
    proc = _run(tmp_path / "nowhere")
    assert proc.returncode == 2 and "manifest.json does not exist" in proc.stderr
