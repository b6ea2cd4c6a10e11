"""The architecture, held by tests: imports run one way through the layers, no module outside
a format's own names that format, the manifest schema's format enum is the registry's, and a
format, a device and a target can each be added from outside with one module and one registry
line (here: this test module) and go through export, verification, manifest and reports."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backdrop.core.buckets import DEFAULT_BUCKETS
from backdrop.core.contract import io_specs
from backdrop.device_tests import DEVICES
from backdrop.device_tests.base import QUICK_TIMING, DeviceDescription, TimingResult, feedback_loop, first_frame_feed, time_calls
from backdrop.device_tests.host import HostDevice
from backdrop.export.artifact import Artifact
from backdrop.export.formats import FORMATS, ArtifactKind, ExportError, ExportRequest
from backdrop.export.formats.base import check_file_exists
from backdrop.export.targets import TARGETS, Target, TargetEntry
from backdrop.models.wrappers import example_inputs, wrap
from backdrop.orchestration.manifest import schema_file

ROOT = Path(__file__).resolve().parent.parent


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


layers = _load_script("layers")


def test_imports_run_one_way():
    assert layers.violations() == []


def test_layer_check_catches_an_upward_import(monkeypatch, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from backdrop.orchestration import pipeline\n")
    fmt = tmp_path / "fmt.py"
    fmt.write_text("from backdrop.export.formats import onnx\n")
    monkeypatch.setattr(layers, "modules", lambda: {
        "backdrop.quantization.bad": bad, "backdrop.export.formats.fake": fmt,
        "backdrop.orchestration.pipeline": ROOT / "backdrop/orchestration/pipeline.py",
        "backdrop.export.formats.onnx": ROOT / "export/formats/onnx.py",
    })
    found = [str(v) for v in layers.violations()]
    assert (
        "backdrop.quantization.bad:2 imports backdrop.orchestration.pipeline: quantization may not import orchestration" in found
    )
    assert any("a format imports another format" in v for v in found), found


def test_every_module_has_a_layer():
    assert all(layers.layer_of(m) in layers.LAYERS for m in layers.modules())


def _string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants that are not docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
        if isinstance(node, ast.Assign | ast.AnnAssign):  # attribute docstrings after assignments
            pass
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_no_module_outside_a_format_names_it():
    owner = {k.name: name for name in FORMATS for k in FORMATS.get(name).kinds}
    format_module = {name: type(FORMATS.get(name)).__module__ for name in FORMATS}
    offenders = []
    for module, path in layers.modules().items():
        if module.startswith("backdrop.export.targets."):
            continue  # a target's job is to name the formats it combines
        for line, value in _string_constants(ast.parse(path.read_text())):
            fmt = owner.get(value)
            if fmt is not None and module != format_module[fmt]:
                offenders.append(f"{module}:{line} names format {value!r}")
    assert offenders == []


def test_schema_format_enum_is_the_registry():
    enum = schema_file()["$defs"]["artifact"]["properties"]["format"]["enum"]
    assert sorted(enum) == sorted(FORMATS.kind_names())


@pytest.mark.parametrize("name", FORMATS.names())
def test_every_format_is_complete(name):
    fmt = FORMATS.get(name)
    assert fmt.name == name and fmt.kinds and fmt.kinds[0].name == name
    assert set(fmt.state_forms) <= {"explicit", "native"} and fmt.precisions and fmt.summary and fmt.color
    for k in fmt.kinds:
        assert k.suffix.startswith(".") and k.runtime and k.label and set(k.state_forms) <= set(fmt.state_forms)
        assert FORMATS.for_kind(k.name) is fmt
    for m in ("export", "load", "why_not_here", "check_offline"):
        assert callable(getattr(fmt, m))


def test_unknown_artifact_kind_names_the_known_ones():
    with pytest.raises(KeyError, match="Unknown artifact format 'onx'. Did you mean 'onnx'"):
        FORMATS.for_kind("onx")


# --------------------------------------------------------------------------------------------
# A plug-in format, device and target, each one definition and one registry line, from here.
# --------------------------------------------------------------------------------------------


class TorchScriptFormat:
    """TorchScript (.pt) traced from the wrapper: a format no file of backdrop knows."""

    name = "test-torchscript"
    runtime = "torchscript"
    summary = "TorchScript module traced from the state wrapper (test plug-in)"
    state_forms = ("explicit", "native")
    precisions = ("fp32",)
    kinds = (ArtifactKind("test-torchscript", ".pt", "torchscript", ("explicit", "native"), "TorchScript (test)"),)
    reset_alternative = ""
    runtime_packages = ("torch",)
    color = "tab:red"
    int8_speedup_target = None

    def export(self, request: ExportRequest) -> list[Artifact]:
        b = request.bucket
        wrapper = wrap(request.model, request.state_form, b.height, b.width)
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, example_inputs(request.state_form, b.height, b.width), check_trace=False)
        request.out_dir.mkdir(parents=True, exist_ok=True)
        path = request.out_dir / f"model-{self.name}-{request.precision}-{request.state_form}.pt"
        traced.save(str(path))
        inputs, outputs, states = io_specs(request.state_form, b.height, b.width)
        return [Artifact(path, self.name, self.runtime, request.precision, request.state_form, b, inputs, outputs, states)]

    def why_not_here(self, artifact: Artifact) -> str:
        return ""

    def check_offline(self, artifact: Artifact):
        return None

    def load(self, artifact: Artifact, threads: int = 0):
        path = check_file_exists(artifact)
        try:
            module = torch.jit.load(str(path))
        except RuntimeError as e:
            raise ExportError(f"{artifact.key}: cannot load {path}: {e}") from e

        def call(inputs):
            with torch.no_grad():
                out = module(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
            return [o.numpy().copy() for o in (out if isinstance(out, tuple) else (out,))]

        return call


class PluginDevice:
    """A test plug-in device: this process's runtimes, one thread."""

    name = "test-device"
    tier = "test-tier"

    def __init__(self) -> None:
        self._host = HostDevice(threads=1)
        self.runs = 0

    def can_run(self, artifact):
        return not self.why_not(artifact)

    def why_not(self, artifact):
        return "" if artifact.format == TorchScriptFormat.name else "runs only the test plug-in format"

    def ready(self):
        return ""

    def describe(self):
        d = self._host.describe()
        return DeviceDescription(self.name, self.tier, False, d.machine, d.cpu, d.os, d.runtime_versions)

    def runtime_versions(self, artifact):
        return {"torch": torch.__version__}

    def run_sequence(self, artifact, golden):
        self.runs += 1
        PluginDevice.total_runs += 1
        return feedback_loop(artifact, golden, FORMATS.for_kind(artifact.format).load(artifact), self.name)

    def time(self, artifacts, golden, protocol=QUICK_TIMING):
        calls = {a.key: FORMATS.for_kind(a.format).load(a) for a in artifacts}
        feeds = {a.key: first_frame_feed(a, golden) for a in artifacts}
        return TimingResult(time_calls(calls, feeds, protocol), self.describe(), protocol)

    total_runs = 0


@pytest.fixture
def plugins():
    FORMATS.add(TorchScriptFormat.name, TorchScriptFormat())
    DEVICES.add(PluginDevice.name, PluginDevice)
    TARGETS.add("test-target", Target(
        "test-target", "android", "nv21", "test plug-in target",
        (TargetEntry(TorchScriptFormat.name, "fp32", ("explicit", "native")),),
    ))
    try:
        yield
    finally:
        FORMATS.remove(TorchScriptFormat.name)
        DEVICES.remove(PluginDevice.name)
        TARGETS.remove("test-target")


def test_a_new_format_device_and_target_export_verify_and_bundle(plugins, tmp_path):
    from backdrop.orchestration.pipeline import ExportSpec, export_target

    bucket = DEFAULT_BUCKETS.names()[0]
    PluginDevice.total_runs = 0
    result = export_target(ExportSpec(
        target="test-target", only_buckets=(bucket,), out_root=tmp_path, golden_frames=30, jobs=1, device="test-device",
    ), log=lambda m: None)
    manifest = json.loads(result.manifest_path.read_text())
    arts = manifest["artifacts"]
    assert [a["format"] for a in arts] == [TorchScriptFormat.name] * 2
    assert {a["state_form"] for a in arts} == {"explicit", "native"}
    assert all(a["verified"] is True for a in arts), [a["verification"] for a in arts]
    assert all("on test-device (test-tier)" in a["verification"] for a in arts)
    assert all(a["details"]["parity"]["device"] == "test-device" for a in arts)
    assert PluginDevice.total_runs == 2
    parity = json.loads((result.out_dir / "reports" / "parity.json").read_text())
    assert {r["device"] for r in parity["records"]} == {"test-device"} if "records" in parity else True
    assert manifest["tools"]["torch"] == torch.__version__
    assert manifest["reports"] == {"parity": "reports/parity.json"}


def test_parity_refuses_a_modified_artifact_and_a_missing_golden_by_name(plugins, tmp_path):
    from typer.testing import CliRunner

    from backdrop.orchestration.cli import app
    from backdrop.orchestration.manifest import IntegrityError
    from backdrop.orchestration.pipeline import ExportSpec, export_target

    bucket = DEFAULT_BUCKETS.names()[0]
    out = export_target(ExportSpec(
        target="test-target", only_buckets=(bucket,), out_root=tmp_path, golden_frames=30, jobs=1, device="test-device",
    ), log=lambda m: None).out_dir
    manifest = json.loads((out / "manifest.json").read_text())
    r = CliRunner().invoke(app, ["parity", "--dist", str(out), "--device", "test-device"])
    assert r.exit_code == 0, r.output
    victim = manifest["artifacts"][0]["path"]
    data = (out / victim).read_bytes()
    (out / victim).write_bytes(data[:-10] + bytes(10))
    (out / manifest["goldens"][bucket]).unlink()
    PluginDevice.total_runs = 0
    r = CliRunner().invoke(app, ["parity", "--dist", str(out), "--device", "test-device"])
    assert isinstance(r.exception, IntegrityError), r.output
    msg = str(r.exception)
    assert f"{victim} was modified after export" in msg
    assert f"goldens/{bucket}.npz is missing" in msg and "nothing was run" in msg
    assert PluginDevice.total_runs == 0
