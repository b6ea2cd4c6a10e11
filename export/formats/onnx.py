"""ONNX (``.onnx``) and its ORT-format twin (``.ort``) for ONNX Runtime on phones.

One fixed-shape graph per bucket, explicit state only: ONNX has no mutable state, so the app
feeds ``next_mask`` back as ``prev_mask`` (export/wrappers.py). Both files come from one export:

- ``model-onnx-<precision>-explicit.onnx``: the portable graph, standard ``ai.onnx`` ops only,
  static shapes, the exact tensor names of :func:`backdrop.export.artifact.io_specs`, and the
  artifact's own description in ``metadata_props`` (keys ``backdrop.*``).
- ``model-onnx-<precision>-explicit.ort``: the same graph, optimized ahead of time by ONNX
  Runtime's converter and saved as a flatbuffer. It loads faster and with less memory, and it is
  the only format a reduced-size (minimal) ONNX Runtime build can load; the operator list such a
  build needs is recorded in the artifact's ``details["required_operators"]``.

Opset: :data:`OPSET` = 18, on purpose. It is the lowest opset the torch.onnx (dynamo) exporter
has implementations for: asking for less triggers a version conversion that fails on this model
(ReduceMean's ``axes`` moved from attribute to input at 18). Opset 18 runs on ONNX Runtime 1.14
and later (the full ``onnxruntime-android`` / ``onnxruntime-c`` / ``onnxruntime-objc`` packages,
which take both ``.onnx`` and ``.ort``); ONNX Runtime 1.32, used here, implements opsets up to
the low 20s, so nothing newer than needed is asked of older app runtimes. The reduced-operator
``onnxruntime-mobile`` packages were discontinued after 1.18; an app that wants a small binary
builds ONNX Runtime itself with ``--include_ops_by_config`` from the required operators.

The dynamo exporter is used rather than the TorchScript-based one because it gives a clean
static graph (weights as initializers, no ``Shape``/``Constant`` plumbing: about half the nodes
for the same model); the replicate padding (``torch.cat`` of edge slices) becomes Slice + Concat.

Precisions: fp32 now. int8 (QDQ, calibrated) arrives with the quantization stage and will add
one branch before the graph checks below; the ORT conversion and checks stay the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

from backdrop import __version__
from backdrop.export.artifact import Artifact, io_specs
from backdrop.export.formats.base import FORMATS, ExportError, ExportRequest
from backdrop.export.wrappers import example_inputs, wrap

OPSET = 18
"""The ``ai.onnx`` opset of every exported graph (see the module docstring for why)."""

STANDARD_DOMAINS = ("", "ai.onnx")
"""Operator domains an exported graph may use: standard ONNX only, no custom or contrib ops."""

ORT_TARGET_PLATFORM = "arm"
"""Phones are arm64: the converter then leaves out x86-only layouts (NCHWc)."""

ORT_OPTIMIZATION_STYLE = OptimizationStyle.Fixed
"""Optimizations applied at conversion and baked into the ``.ort`` (ONNX Runtime's advice for
the CPU execution provider; ``Runtime`` style is for NNAPI/Core ML execution providers)."""

SMOKE_ATOL = 1e-2
"""Largest |ONNX Runtime - PyTorch| allowed on the example inputs, in probability units. A smoke
check that the graph is wired right (names, order, state path), not the parity check: that one
rolls real frames through the artifact (device_tests/) with thresholds set on trained weights."""

_DTYPES = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16}


class OnnxFormat:
    """ONNX + ORT format for ONNX Runtime (Android, iOS); see the module docstring."""

    name = "onnx"
    runtime = "onnxruntime"
    ort_format = "ort"
    ort_runtime = "onnxruntime-ortformat"
    state_forms: tuple[str, ...] = ("explicit",)
    precisions: tuple[str, ...] = ("fp32",)

    def export(self, request: ExportRequest) -> list[Artifact]:
        """Write ``model-onnx-<precision>-<state form>.onnx`` and its ``.ort`` twin.

        Returns:
            [the ONNX artifact, the ORT-format artifact], each with ``details`` saying how it
            was made and the smoke check's max abs difference.

        Raises:
            ExportError: unsupported state form or precision; an op the exporter or the format
                cannot take (named); a graph check, the ORT conversion or the smoke check failed.
        """
        self._check_request(request)
        bucket, form = request.bucket, request.state_form
        inputs, outputs, states = io_specs(form, bucket.height, bucket.width)
        out_dir = Path(request.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"model-{self.name}-{request.precision}-{form}"
        onnx_path = out_dir / f"{stem}.onnx"

        wrapper = wrap(request.model, form, bucket.height, bucket.width)
        example = example_inputs(form, bucket.height, bucket.width)
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(*example)]
        feeds = {spec.name: t.numpy() for spec, t in zip(inputs, example)}

        artifact = Artifact(
            path=onnx_path, format=self.name, runtime=self.runtime, precision=request.precision,
            state_form=form, bucket=bucket, inputs=inputs, outputs=outputs, states=states,
        )
        model = self._to_onnx(wrapper, example, artifact)
        ops = self._check_graph(model, artifact)
        _strip_debug_metadata(model)
        _describe(model, artifact, request)
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            raise ExportError(f"{artifact.key}: the ONNX graph fails onnx.checker ({e}).") from e
        onnx.save_model(model, onnx_path)
        onnx_diff = _smoke(onnx_path, feeds, expected, artifact)
        artifact.details = {
            "opset": OPSET,
            "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}, onnx {onnx.__version__}",
            "ops": ops,
            "smoke_max_abs_diff": onnx_diff,
            "min_runtime": "onnxruntime >= 1.14 (opset 18)",
        }

        ort_path, required = self._to_ort(onnx_path, artifact)
        ort_artifact = Artifact(
            path=ort_path, format=self.ort_format, runtime=self.ort_runtime,
            precision=request.precision, state_form=form, bucket=bucket,
            inputs=inputs, outputs=outputs, states=states,
        )
        ort_diff = _smoke(ort_path, feeds, expected, ort_artifact)
        ort_artifact.details = {
            "converted_from": onnx_path.name,
            "converter": f"onnxruntime.tools.convert_onnx_models_to_ort, onnxruntime {ort.__version__}",
            "optimization_style": ORT_OPTIMIZATION_STYLE.name,
            "optimization_level": _ort_optimization_level(),
            "target_platform": ORT_TARGET_PLATFORM,
            "required_operators": required,
            "smoke_max_abs_diff": ort_diff,
            # ORT-format files are read by the runtime version that wrote them and later ones;
            # optimized (Fixed style) graphs may use kernels of that version.
            "min_runtime": f"onnxruntime >= {ort.__version__} (the converter's version)",
        }
        return [artifact, ort_artifact]

    def _check_request(self, request: ExportRequest) -> None:
        if request.state_form not in self.state_forms:
            raise ExportError(
                f"Format '{self.name}' cannot export state form '{request.state_form}': ONNX has no "
                f"mutable state, so it supports {', '.join(self.state_forms)} only (the app feeds "
                "next_mask back as prev_mask)."
            )
        if request.precision not in self.precisions:
            raise ExportError(
                f"Format '{self.name}' cannot export precision '{request.precision}': supported "
                f"precisions are {', '.join(self.precisions)}. Export fp32, or pick a target whose "
                f"formats support '{request.precision}'."
            )

    def _to_onnx(
        self, wrapper: torch.nn.Module, example: tuple[torch.Tensor, ...], artifact: Artifact
    ) -> onnx.ModelProto:
        try:
            with torch.no_grad():
                program = torch.onnx.export(
                    wrapper,
                    example,
                    None,
                    dynamo=True,
                    opset_version=OPSET,
                    input_names=[s.name for s in artifact.inputs],
                    output_names=[s.name for s in artifact.outputs],
                    external_data=False,
                    optimize=True,
                    verbose=False,
                )
        except torch.onnx.OnnxExporterError as e:
            op = _failed_op(e)
            if op is None:
                raise ExportError(f"{artifact.key}: torch.onnx.export failed: {_first_line(e)}") from e
            raise ExportError(
                f"Format '{self.name}' cannot take op '{op}' ({artifact.key}): the exporter has no "
                f"ONNX opset {OPSET} translation for it. Rewrite that layer with standard ops, or "
                f"leave format '{self.name}' out of the target."
            ) from e
        return program.model_proto

    def _check_graph(self, model: onnx.ModelProto, artifact: Artifact) -> dict[str, int]:
        """Standard ops only, static shapes, exact names and dtypes; returns op counts."""
        custom = [
            f"{n.domain}::{n.op_type}" for n in _all_nodes(model.graph) if n.domain not in STANDARD_DOMAINS
        ] + [f"{f.domain}::{f.name} (function)" for f in model.functions]
        if custom:
            raise ExportError(
                f"Format '{self.name}' cannot take op '{custom[0]}' ({artifact.key}): only standard "
                f"ONNX ops are allowed, found {len(custom)} non-standard: {', '.join(sorted(set(custom)))}."
            )
        opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        if opsets.get("ai.onnx") != OPSET:
            raise ExportError(f"{artifact.key}: the graph has opset {opsets}, expected ai.onnx {OPSET}.")
        for kind, values, specs in (
            ("inputs", model.graph.input, artifact.inputs),
            ("outputs", model.graph.output, artifact.outputs),
        ):
            got = [(v.name, v.type.tensor_type.elem_type, _dims(v)) for v in values]
            want = [(s.name, _DTYPES[s.dtype], list(s.shape)) for s in specs]
            if got != want:
                raise ExportError(
                    f"{artifact.key}: the ONNX graph's {kind} are {got}, expected (name, dtype, static "
                    f"shape) {want}."
                )
        return dict(sorted(Counter(n.op_type for n in _all_nodes(model.graph)).items()))

    def _to_ort(self, onnx_path: Path, artifact: Artifact) -> tuple[Path, list[str]]:
        """Convert with ONNX Runtime's own tool in a scratch folder, keep only the ``.ort``."""
        ort_path = onnx_path.with_suffix(".ort")
        with tempfile.TemporaryDirectory(prefix="ort-", dir=onnx_path.parent) as tmp:
            try:
                # The tool reports progress with print(); keep stdout for data (house style).
                with contextlib.redirect_stdout(sys.stderr):
                    convert_onnx_models_to_ort(
                        onnx_path,
                        output_dir=Path(tmp),
                        optimization_styles=[ORT_OPTIMIZATION_STYLE],
                        target_platform=ORT_TARGET_PLATFORM,
                    )
            except Exception as e:  # ORT raises its own Fail/InvalidGraph/RuntimeError types
                raise ExportError(
                    f"{artifact.key}: ONNX Runtime could not convert {onnx_path.name} to ORT format: "
                    f"{_first_line(e)}"
                ) from e
            produced = Path(tmp) / ort_path.name
            configs = sorted(Path(tmp).glob("*.config"))
            if not produced.is_file() or not configs:
                raise ExportError(
                    f"{artifact.key}: the ORT converter wrote {sorted(p.name for p in Path(tmp).iterdir())}, "
                    f"expected {ort_path.name} and its required-operators config."
                )
            # Lines "domain;opset;Op1,Op2"; comments name the scratch folder, so they are dropped.
            required = [ln for ln in configs[0].read_text().splitlines() if ln and not ln.startswith("#")]
            os.replace(produced, ort_path)
        return ort_path, required


def _describe(model: onnx.ModelProto, artifact: Artifact, request: ExportRequest) -> None:
    """Put the artifact's own description into the file (``metadata_props``, doc strings)."""
    props = {
        "backdrop.version": __version__,
        "backdrop.format": artifact.format,
        "backdrop.precision": artifact.precision,
        "backdrop.state_form": artifact.state_form,
        "backdrop.bucket": json.dumps(
            {"name": artifact.bucket.name, "height": artifact.bucket.height, "width": artifact.bucket.width}
        ),
        "backdrop.inputs": json.dumps([s.to_dict() for s in artifact.inputs]),
        "backdrop.outputs": json.dumps([s.to_dict() for s in artifact.outputs]),
        "backdrop.states": json.dumps([s.to_dict() for s in artifact.states]),
        "backdrop.feedback": (
            "Feed output 'next_mask' back as input 'prev_mask' on the next call; pass zeros as "
            "'prev_mask' on the first frame and after a reset (scene cut, camera switch)."
        ),
        "backdrop.model_config": json.dumps(request.model.config.to_dict()),
        "backdrop.torch_version": torch.__version__,
    }
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = (
        f"backdrop {__version__} person segmentation, bucket {artifact.bucket}, {artifact.state_form} "
        f"state: (frame, prev_mask) -> (mask, next_mask). See metadata_props backdrop.*."
    )
    for values, specs in ((model.graph.input, artifact.inputs), (model.graph.output, artifact.outputs)):
        for value, spec in zip(values, specs):
            low, high = spec.value_range
            value.doc_string = f"{spec.layout} {spec.dtype} in [{low}, {high}]: {spec.meaning}"


def _smoke(path: Path, feeds: dict[str, np.ndarray], expected: list[np.ndarray], artifact: Artifact) -> float:
    """Run the file once in ONNX Runtime; check names and that outputs match PyTorch."""
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names_in = [i.name for i in session.get_inputs()]
        names_out = [o.name for o in session.get_outputs()]
        got = session.run(None, feeds)
    except Exception as e:  # onnxruntime raises its own exception types per failure
        raise ExportError(f"{artifact.key}: ONNX Runtime cannot run {path.name}: {_first_line(e)}") from e
    want_in, want_out = [s.name for s in artifact.inputs], [s.name for s in artifact.outputs]
    if names_in != want_in or names_out != want_out:
        raise ExportError(
            f"{artifact.key}: {path.name} has inputs {names_in} and outputs {names_out} in ONNX "
            f"Runtime, expected {want_in} and {want_out}."
        )
    diff = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected))
    if not diff <= SMOKE_ATOL:
        raise ExportError(
            f"{artifact.key}: {path.name} differs from the PyTorch wrapper by {diff:.3g} (max abs, "
            f"allowed {SMOKE_ATOL}) on the example inputs: the graph is wired wrong."
        )
    return diff


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    """Static sizes as ints; a dynamic dimension as its name (or "?")."""
    return [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in value.type.tensor_type.shape.dim]


def _ort_optimization_level() -> str:
    # The converter reads this variable (ONNX Runtime's tools/convert_onnx_models_to_ort.py).
    return os.getenv("ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL", "all")


def _strip_debug_metadata(model: onnx.ModelProto) -> None:
    """Drop the exporter's per-node debug metadata (Python stack traces with absolute source
    paths, module hierarchies): it leaks the build machine's paths into a shipped file and
    makes the bytes depend on where the repository was checked out."""
    for node in _all_nodes(model.graph):
        del node.metadata_props[:]


def _all_nodes(graph: onnx.GraphProto):
    """Every node, including those inside If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _all_nodes(g)


_NO_FUNCTION = re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)', overload='([^']+)'\)>")
_NODE_TARGET = re.compile(r"target=torch\.ops\.([\w.]+)")


def _failed_op(error: BaseException) -> str | None:
    """The ATen/prims op named in a torch.onnx error or its causes, e.g. ``aten.foo.default``."""
    seen: BaseException | None = error
    while seen is not None:
        text = str(seen)
        m = _NO_FUNCTION.search(text)
        if m:
            return f"{m.group(1)}.{m.group(2)}"
        m = _NODE_TARGET.search(text)
        if m:
            return m.group(1)
        seen = seen.__cause__ or seen.__context__
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


FORMATS.add("onnx", OnnxFormat())
