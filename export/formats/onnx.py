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

Precisions. ``fp32`` is the exported graph as it is. ``int8`` is that same graph, held to the
same checks, then quantized by ONNX Runtime's static quantizer (``quantize_static``) into a
QDQ graph: QuantizeLinear/DequantizeLinear (standard ``ai.onnx`` ops; opset 18 stays) around
every op the quantizer takes (Conv, Concat, Slice, Resize, Add, Mul, Clip, Relu, Sigmoid);
HardSwish, ReduceMean and Div run in float between a DequantizeLinear and a QuantizeLinear.
ONNX Runtime fuses DequantizeLinear -> op -> QuantizeLinear into its int8 kernels when it loads
the graph (ahead of time in the ``.ort`` twin).

- Weights: int8, symmetric, per output channel. Activations: uint8, affine, per tensor
  (:data:`INT8_ACTIVATIONS`), ranges by MinMax over the calibration set. int8 (affine)
  activations were measured too, on the default model at 160x288 (ONNX Runtime 1.32, x86_64,
  one thread): the same accuracy (IoU against float 0.9956 both, Boundary IoU 0.9709 vs 0.9715)
  but 1.6x slower (19.0 vs 12.1 ms), so uint8.
- Measured there for uint8: the ``.onnx`` is 0.29 of the fp32 file after
  :func:`compact_qdq_graph` (0.36 as the quantizer writes it); the ``.ort`` twin 0.39 (the ORT
  format stores a type and shape for every value, fused-away ones included); over the
  40-frame golden, IoU against float mean 0.9956 / min 0.9935, Boundary IoU mean 0.9715 /
  min 0.9594, temporal IoU 0.0006 below float's. Latency on x86 (one thread): ``.ort`` int8
  11.9 ms vs fp32 21.6 ms; the ``.onnx`` files 12.1 vs 12.5 ms, because on x86 the fp32
  ``.onnx`` gets ONNX Runtime's NCHWc kernels, which the arm-targeted ``.ort`` leaves out.
- Calibration: real frames with the feedback loop running,
  :func:`backdrop.quantization.calibration.cached_calibration_inputs` (carphone frames 40 ..
  71 framed for the bucket, each with the previous mask the float model fed itself; the set
  ExecuTorch int8 uses too, so a bucket has one calibration hash), fed as ``frame`` /
  ``prev_mask``. ``details["calibration"]`` names and hashes it.
- Not pre-processed (``quant_pre_process``): measured on the default model at 160x288, no
  accuracy change (IoU against float 0.9958 vs 0.9956) for a 2 % smaller file, and it would run
  ONNX Runtime's graph optimizer on the portable file.
- Fallback: :attr:`ExportRequest.float_units` names quantization units
  (:mod:`backdrop.quantization.units`) kept in float. Each node's unit comes from the exporter's
  ``pkg.torch.onnx.name_scopes`` (read before the debug metadata is stripped); the nodes of
  those units go to ``nodes_to_exclude``, so their Convs keep float weights and tensors entering
  them are dequantized; ``"rest"`` excludes every node outside all units (input concat, the
  decoder's resizes and adds, the sigmoid). :meth:`OnnxFormat.int8_probe` gives the fallback search the same
  quantizer on ONNX Runtime, any set of units excluded, with the calibration ranges computed
  once per probe.
- The smoke check is a wiring check with its own tolerance (:data:`INT8_SMOKE_ATOL`); int8
  accuracy is judged over real frames against the float reference (backdrop/int8_stage.py).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Collection
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

from backdrop import __version__
from backdrop.export.artifact import Artifact, io_specs
from backdrop.export.formats.base import FORMATS, ExportError, ExportRequest, checked_float_units, checked_units
from backdrop.export.wrappers import example_inputs, wrap
from backdrop.quantization.calibration import CalibrationSet, cached_calibration_inputs
from backdrop.quantization.units import REST, fallback_units, quant_units, unit_of

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

INT8_SMOKE_ATOL = 0.2
"""The smoke check's tolerance for int8 (mid-grey frame, empty state): a wiring check only (a
swapped input or a dropped output is off by far more); int8 accuracy is measured over real
frames against the float reference by the pipeline's int8 stage."""

INT8_ACTIVATIONS = QuantType.QUInt8
"""Activation type of int8 graphs (module docstring: as accurate as QInt8 and faster)."""

NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
"""Per-node metadata of the dynamo exporter: the module path, outermost first, as a Python list
literal, e.g. ``['', 'model', 'model.encoder', 'model.encoder.stem', 'model.encoder.stem.0', 'conv2d']``."""

_DTYPES = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16}


class OnnxFormat:
    """ONNX + ORT format for ONNX Runtime (Android, iOS); see the module docstring."""

    name = "onnx"
    runtime = "onnxruntime"
    ort_format = "ort"
    ort_runtime = "onnxruntime-ortformat"
    state_forms: tuple[str, ...] = ("explicit",)
    precisions: tuple[str, ...] = ("fp32", "int8")

    def export(self, request: ExportRequest) -> list[Artifact]:
        """Write ``model-onnx-<precision>-<state form>.onnx`` and its ``.ort`` twin.

        Returns:
            [the ONNX artifact, the ORT-format artifact], each with ``details`` saying how it
            was made and the smoke check's max abs difference (int8 also: ``calibration`` and
            ``quantization``).

        Raises:
            ExportError: unsupported state form or precision, or an unknown float unit; an op
                the exporter or the format cannot take (named); a graph check, the
                quantization, the ORT conversion or the smoke check failed.
        """
        float_units = self._check_request(request)
        bucket, form = request.bucket, request.state_form
        inputs, outputs, states = io_specs(form, bucket.height, bucket.width)
        out_dir = Path(request.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"model-{self.name}-{request.precision}-{form}"
        onnx_path = out_dir / f"{stem}.onnx"
        int8 = request.precision == "int8"

        wrapper = wrap(request.model, form, bucket.height, bucket.width)
        example = example_inputs(form, bucket.height, bucket.width)
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(*example)]
        feeds = {spec.name: t.numpy() for spec, t in zip(inputs, example)}
        atol = INT8_SMOKE_ATOL if int8 else SMOKE_ATOL

        artifact = Artifact(
            path=onnx_path, format=self.name, runtime=self.runtime, precision=request.precision,
            state_form=form, bucket=bucket, inputs=inputs, outputs=outputs, states=states,
        )
        model, ops, node_units = self._float_graph(wrapper, example, artifact, request)
        quant: dict = {}
        if int8:
            calibration = cached_calibration_inputs(request.model, bucket)
            exclude = _excluded_nodes(node_units, float_units)
            with tempfile.TemporaryDirectory(prefix="int8-", dir=out_dir) as tmp:
                fp32_path = Path(tmp) / "fp32.onnx"
                onnx.save_model(model, fp32_path)
                model = _quantize(fp32_path, Path(tmp), exclude, artifact, calibration=calibration)
            compaction = compact_qdq_graph(model)
            quant = {
                "calibration": calibration.describe(),
                "quantization": {**_quantization_details(model, float_units, exclude), "compaction": compaction},
            }
            _describe(model, artifact, request, quant)
            self._check_int8_graph(model, artifact)
        onnx.save_model(model, onnx_path)
        onnx_diff = _smoke(onnx_path, feeds, expected, artifact, atol)
        artifact.details = {
            "opset": OPSET,
            "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}, onnx {onnx.__version__}",
            "ops": ops,
            "smoke_max_abs_diff": onnx_diff,
            "min_runtime": "onnxruntime >= 1.14 (opset 18)",
            **quant,
        }
        if int8:
            artifact.details["quantizer"] = f"onnxruntime.quantization.quantize_static, onnxruntime {ort.__version__}"
            artifact.details["ops"] = _op_counts(model)
            artifact.details["float_graph_ops"] = ops

        ort_path, required = self._to_ort(onnx_path, artifact)
        ort_artifact = Artifact(
            path=ort_path, format=self.ort_format, runtime=self.ort_runtime,
            precision=request.precision, state_form=form, bucket=bucket,
            inputs=inputs, outputs=outputs, states=states,
        )
        ort_diff = _smoke(ort_path, feeds, expected, ort_artifact, atol)
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
            **quant,
        }
        return [artifact, ort_artifact]

    def int8_probe(self, request: ExportRequest) -> OnnxInt8Probe:
        """The fallback search's probe: ``request``'s model and bucket quantized as the int8
        export does (explicit state), run in ONNX Runtime on the CPU.

        Raises:
            ExportError: the model cannot be exported (raised by the first ``build``).
        """
        return OnnxInt8Probe(self, request)

    def _check_request(self, request: ExportRequest) -> tuple[str, ...]:
        """Refuse what this format cannot make before anything is written; returns the float
        units (checked against the model's units)."""
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
        return checked_float_units(request, self.name)

    def _float_graph(
        self, wrapper: torch.nn.Module, example: tuple[torch.Tensor, ...], artifact: Artifact, request: ExportRequest
    ) -> tuple[onnx.ModelProto, dict[str, int], dict[str, str | None]]:
        """The checked, described fp32 graph, its op counts, and each node's quantization unit
        (by node name; None outside every unit), read before the debug metadata goes."""
        model = self._to_onnx(wrapper, example, artifact)
        ops = self._check_graph(model, artifact)
        node_units = _node_units(model, quant_units(request.model), artifact)
        _strip_debug_metadata(model)
        _describe(model, artifact, request)
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            raise ExportError(f"{artifact.key}: the ONNX graph fails onnx.checker ({e}).") from e
        return model, ops, node_units

    def _check_int8_graph(self, model: onnx.ModelProto, artifact: Artifact) -> None:
        """The quantized graph: standard domains and opset still, names unchanged, onnx.checker."""
        custom = sorted(
            {f"{n.domain}::{n.op_type}" for n in _all_nodes(model.graph) if n.domain not in STANDARD_DOMAINS}
        )
        imports = sorted(o.domain for o in model.opset_import if o.domain not in STANDARD_DOMAINS)
        if custom or imports or model.functions:
            raise ExportError(
                f"{artifact.key}: ONNX Runtime's quantizer produced non-standard ops {custom or imports}; "
                "the int8 graph must stay standard ONNX (QuantizeLinear/DequantizeLinear)."
            )
        _check_opset_and_io(model, artifact, "int8 graph")
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            raise ExportError(f"{artifact.key}: the int8 ONNX graph fails onnx.checker ({e}).") from e

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
        _check_opset_and_io(model, artifact, "ONNX graph")
        return _op_counts(model)

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


def _describe(model: onnx.ModelProto, artifact: Artifact, request: ExportRequest, quant: dict | None = None) -> None:
    """Put the artifact's own description into the file (``metadata_props``, doc strings);
    int8 adds ``backdrop.calibration`` and ``backdrop.quantization`` (JSON, from ``quant``).
    Replaces every earlier entry (the quantizer adds its own ``onnx.infer``)."""
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
    for key, value in (quant or {}).items():
        props[f"backdrop.{key}"] = json.dumps(value)
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


def _smoke(
    path: Path, feeds: dict[str, np.ndarray], expected: list[np.ndarray], artifact: Artifact, atol: float = SMOKE_ATOL
) -> float:
    """Run the file once in ONNX Runtime; check names and that outputs match PyTorch within
    ``atol`` (:data:`SMOKE_ATOL`, :data:`INT8_SMOKE_ATOL`)."""
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
    if not diff <= atol:
        raise ExportError(
            f"{artifact.key}: {path.name} differs from the PyTorch wrapper by {diff:.3g} (max abs, "
            f"allowed {atol}) on the example inputs: the graph is wired wrong."
        )
    return diff


class OnnxInt8Probe:
    """:class:`backdrop.quantization.fallback.Int8Probe` for ONNX int8: the fp32 graph of the
    request's model and bucket (explicit state) is exported once, its calibration ranges are
    computed once (the first ``build``), and each ``build`` quantizes it with other nodes
    excluded and opens an ONNX Runtime session (CPU execution provider) on the result, as the
    ``.onnx`` artifact runs on the host. Scratch files live only during a ``build``."""

    runtime = "onnxruntime (CPU EP, QDQ)"

    def __init__(self, fmt: OnnxFormat, request: ExportRequest) -> None:
        self.request = dataclasses.replace(request, state_form="explicit", precision="int8", float_units=())
        self.units: tuple[str, ...] = tuple(fallback_units(request.model))
        self._format = fmt
        self._artifact: Artifact | None = None
        self._fp32: bytes = b""
        self._node_units: dict[str, str | None] = {}
        self._ranges: str = ""  # ONNX Runtime's calibration cache (JSON), computed once

    def build(self, float_units: Collection[str]):
        """A :data:`backdrop.quantization.budget.StepFn` of the int8 graph with the nodes of
        ``float_units`` in float (``"rest"``: every node outside all units).

        Raises:
            ExportError: an unknown unit; the export or the quantization failed.
        """
        floats = set(checked_units(self.request.model, tuple(float_units), self._format.name))
        self._prepare()
        exclude = _excluded_nodes(self._node_units, floats)
        with tempfile.TemporaryDirectory(prefix="backdrop-onnx-int8-probe-") as tmp:
            fp32_path = Path(tmp) / "fp32.onnx"
            fp32_path.write_bytes(self._fp32)
            cache = Path(tmp) / "ranges.json"
            if self._ranges:
                cache.write_text(self._ranges)
                model = _quantize(fp32_path, Path(tmp), exclude, self._artifact, ranges=cache)
            else:
                calibration = cached_calibration_inputs(self.request.model, self.request.bucket)
                model = _quantize(
                    fp32_path, Path(tmp), exclude, self._artifact, calibration=calibration, ranges=cache
                )
                self._ranges = cache.read_text()
        try:
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types per failure
            raise ExportError(
                f"{self._artifact.key}: ONNX Runtime cannot run the int8 probe graph: {_first_line(e)}"
            ) from e
        frame_name, state_name = (s.name for s in self._artifact.inputs)
        mask_name = self._artifact.outputs[0].name

        def step(frame: np.ndarray, prev_mask: np.ndarray) -> np.ndarray:
            return session.run([mask_name], {frame_name: frame, state_name: prev_mask})[0]

        return step

    def _prepare(self) -> None:
        if self._artifact is not None:
            return
        request, fmt = self.request, self._format
        b = request.bucket
        inputs, outputs, states = io_specs("explicit", b.height, b.width)
        artifact = Artifact(
            path=Path(f"model-{fmt.name}-int8-explicit.onnx"), format=fmt.name, runtime=fmt.runtime,
            precision="int8", state_form="explicit", bucket=b, inputs=inputs, outputs=outputs, states=states,
        )
        wrapper = wrap(request.model, "explicit", b.height, b.width)
        example = example_inputs("explicit", b.height, b.width)
        model, _, self._node_units = fmt._float_graph(wrapper, example, artifact, request)
        self._fp32 = model.SerializeToString()
        self._artifact = artifact


class _CalibrationReader(CalibrationDataReader):
    """The calibration set's explicit inputs, fed by the graph's input names."""

    def __init__(self, calibration: CalibrationSet, names: list[str]) -> None:
        self._feeds = [{n: t.numpy() for n, t in zip(names, pair)} for pair in calibration.explicit_inputs()]
        self._next = iter(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._next, None)

    def __len__(self) -> int:
        return len(self._feeds)


class _DropPreprocessAdvice(logging.Filter):
    """ONNX Runtime's quantizer advises ``quant_pre_process`` on every call; it was measured and
    left out on purpose (module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


def _quantize(
    fp32_path: Path,
    tmp: Path,
    exclude: list[str],
    artifact: Artifact,
    calibration: CalibrationSet | None = None,
    ranges: Path | None = None,
) -> onnx.ModelProto:
    """``quantize_static`` of the fp32 file into a QDQ graph (module docstring), scratch files
    in ``tmp``. Ranges come from ``calibration`` (and are saved to ``ranges`` when given) or,
    without it, from the existing ``ranges`` cache."""
    reader = _CalibrationReader(calibration, [s.name for s in artifact.inputs]) if calibration is not None else None
    out = tmp / "int8.onnx"
    advice = _DropPreprocessAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(
                fp32_path,
                out,
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=INT8_ACTIVATIONS,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=exclude,
                calibration_cache_path=ranges,
            )
        return onnx.load_model(out)
    except Exception as e:  # the quantizer raises ValueError/RuntimeError/ORT errors alike
        raise ExportError(f"{artifact.key}: ONNX Runtime's static quantizer failed: {_first_line(e)}") from e
    finally:
        root.removeFilter(advice)


def compact_qdq_graph(model: onnx.ModelProto) -> dict[str, int]:
    """Shrink the quantizer's QDQ graph in place without changing what it computes.

    ``quantize_static`` writes a QDQ graph whose description is a quarter of the file: every
    weight gets its own all-zero zero-point tensor (int8 per channel, int32 per channel for
    the bias), every tensor a long derived name (``model.encoder.stages.0.0.depthwise.1.
    bias_quantized_scale``), and every value a ``value_info`` shape entry. Three steps:

    1. identical initializers (same type, shape and bytes) are stored once and shared: the
       zero-point tensors of equal length are the bulk; every DequantizeLinear keeps its three
       inputs (an omitted zero point is legal ONNX but trips ONNX Runtime's runtime-optimized
       ORT-format conversion, measured);
    2. ``value_info`` is dropped (ONNX Runtime infers shapes when it loads the graph);
    3. internal names become short base-36 ids (``n<id>`` for nodes); graph inputs and outputs,
       the app-facing names, are kept.

    A graph with control-flow bodies (If/Loop) is left as it is (none here).

    Measured on the default model at 160x288: 1.80 MB -> 1.48 MB (0.29 of the fp32 ``.onnx``),
    outputs bit-identical in ONNX Runtime. Returns counts for the artifact's details.
    """
    g = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        return {"shared_initializers": 0, "value_info_dropped": 0, "renamed_tensors": 0}  # If/Loop bodies: left as is
    canonical: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    for t in g.initializer:
        key = (t.data_type, tuple(t.dims), onnx.numpy_helper.to_array(t).tobytes())
        if key in canonical:
            alias[t.name] = canonical[key]
        else:
            canonical[key] = t.name
    for node in g.node:
        for k, name in enumerate(node.input):
            if name in alias:
                node.input[k] = alias[name]
    kept = [t for t in g.initializer if t.name not in alias]
    del g.initializer[:]
    g.initializer.extend(kept)
    value_info = len(g.value_info)
    del g.value_info[:]

    public = {v.name for v in g.input} | {v.name for v in g.output}
    short: dict[str, str] = {}
    ids = (np.base_repr(i, 36).lower() for i in itertools.count())

    def rename(name: str) -> str:
        if not name or name in public:
            return name
        if name not in short:
            short[name] = next(x for x in ids if x not in public)
        return short[name]

    for t in g.initializer:
        t.name = rename(t.name)
    for i, node in enumerate(g.node):
        node.name = f"n{np.base_repr(i, 36).lower()}"
        node.input[:] = [rename(x) for x in node.input]
        node.output[:] = [rename(x) for x in node.output]
    return {"shared_initializers": len(alias), "value_info_dropped": value_info, "renamed_tensors": len(short)}


def _quantization_details(model: onnx.ModelProto, float_units: tuple[str, ...], exclude: list[str]) -> dict:
    counts = Counter(n.op_type for n in _all_nodes(model.graph))
    weights = Counter(onnx.TensorProto.DataType.Name(t.data_type) for t in model.graph.initializer)
    return {
        "scheme": "static QDQ (onnxruntime.quantization.quantize_static)",
        "weights": "int8 symmetric per-channel",
        "activations": f"{'uint8' if INT8_ACTIVATIONS == QuantType.QUInt8 else 'int8'} affine per-tensor",
        "calibration_method": "MinMax",
        "float_units": list(float_units),
        "excluded_nodes": len(exclude),
        "quantized_nodes": counts["QuantizeLinear"],
        "dequantize_nodes": counts["DequantizeLinear"],
        "initializers": dict(sorted(weights.items())),
    }


def _excluded_nodes(node_units: dict[str, str | None], float_units) -> list[str]:
    """Node names kept in float: those of ``float_units``, and those outside every unit when
    ``float_units`` names ``"rest"``."""
    floats = set(float_units)
    return sorted(name for name, unit in node_units.items() if unit in floats or (unit is None and REST in floats))


def _node_units(model: onnx.ModelProto, units: list[str], artifact: Artifact) -> dict[str, str | None]:
    """Each top-level node's quantization unit by node name, from the exporter's name scopes;
    None for nodes outside every unit and nodes without scopes (the output Identity)."""
    out: dict[str, str | None] = {}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"backdrop_unnamed_{i}"
        if node.name in out:
            raise ExportError(f"{artifact.key}: two nodes of the ONNX graph are named {node.name!r}.")
        scopes = next((p.value for p in node.metadata_props if p.key == NAME_SCOPES_KEY), None)
        try:
            path = ast.literal_eval(scopes) if scopes else []
        except (ValueError, SyntaxError) as e:
            raise ExportError(f"{artifact.key}: node {node.name} has unreadable {NAME_SCOPES_KEY} {scopes!r}.") from e
        out[node.name] = unit_of(path, units)
    return out


def _op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for n in _all_nodes(model.graph)).items()))


def _check_opset_and_io(model: onnx.ModelProto, artifact: Artifact, what: str) -> None:
    """The ``ai.onnx`` opset is :data:`OPSET`; inputs and outputs have the artifact's exact
    names, dtypes and static shapes, in order."""
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    if opsets.get("ai.onnx") != OPSET:
        raise ExportError(f"{artifact.key}: the {what} has opset {opsets}, expected ai.onnx {OPSET}.")
    for kind, values, specs in (
        ("inputs", model.graph.input, artifact.inputs),
        ("outputs", model.graph.output, artifact.outputs),
    ):
        got = [(v.name, v.type.tensor_type.elem_type, _dims(v)) for v in values]
        want = [(s.name, _DTYPES[s.dtype], list(s.shape)) for s in specs]
        if got != want:
            raise ExportError(
                f"{artifact.key}: the {what}'s {kind} are {got}, expected (name, dtype, static shape) {want}."
            )


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
