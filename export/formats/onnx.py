"""ONNX (``.onnx``) and its ORT-format twin (``.ort``) for ONNX Runtime on phones.

One fixed-shape graph per bucket, explicit state only: ONNX has no mutable state, so the app
feeds ``next_mask`` back as ``prev_mask`` (models/wrappers.py). Both files come from one export:

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
static graph (weights as initializers, no ``Shape``/``Constant`` plumbing; docs/formats.md,
"ONNX and ORT"); the replicate padding (``torch.cat`` of edge slices) becomes Slice + Concat.

Precisions. ``fp32`` is the exported graph as it is. ``int8`` is that same graph, held to the
same checks, then quantized by ONNX Runtime's static quantizer into a QDQ graph and compacted
(:mod:`backdrop.quantization.onnx_qdq`: int8 per-channel weights, uint8 per-tensor activations,
MinMax ranges); the opset stays 18. The quantizer takes Conv, Concat, Slice, Resize, Add, Mul,
Clip, Relu and Sigmoid; HardSwish, ReduceMean and Div run in float between a DequantizeLinear
and a QuantizeLinear. ONNX Runtime fuses DequantizeLinear -> op -> QuantizeLinear into its int8
kernels when it loads the graph (ahead of time in the ``.ort`` twin).

- Calibration: real frames with the feedback loop running,
  :func:`backdrop.quantization.calibration.cached_calibration_inputs` (the set ExecuTorch int8
  uses too, so a bucket has one calibration hash). ``details["calibration"]`` names and hashes it.
- Fallback: :attr:`ExportRequest.float_units` names quantization units kept in float; their
  nodes go to ``nodes_to_exclude`` (:func:`backdrop.quantization.onnx_qdq.node_units`, read
  before the debug metadata is stripped). :meth:`OnnxFormat.int8_probe` gives the fallback
  search the same quantizer on ONNX Runtime, any set of units excluded, with the calibration
  ranges computed once per probe.
- The smoke check is a wiring check with its own tolerance (:data:`INT8_SMOKE_ATOL`); int8
  accuracy is judged over real frames against the float reference (backdrop/orchestration/int8_stage.py).

Sizes, accuracy and latency of int8, and the measurements behind its choices (uint8
activations, no ``quant_pre_process``, compaction): docs/quantization.md, "Measured" and
"ONNX Runtime int8: design measurements".
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
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
from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

from backdrop import __version__
from backdrop.export.artifact import Artifact, io_specs
from backdrop.export.formats.base import (
    FORMATS,
    ArtifactKind,
    ExportError,
    ExportRequest,
    FrameRunner,
    OfflineCheck,
    check_file_exists,
    check_loaded_io,
    checked_float_units,
    checked_units,
    decode_description,
)
from backdrop.models.wrappers import example_inputs, wrap
from backdrop.quantization import onnx_qdq
from backdrop.quantization.calibration import CalibrationSet, cached_calibration_inputs
from backdrop.quantization.units import fallback_units, quant_units

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

_DTYPES = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16}


class OnnxFormat:
    """ONNX + ORT format for ONNX Runtime (Android, iOS); see the module docstring."""

    name = "onnx"
    runtime = "onnxruntime"
    summary = "ONNX graph (.onnx) and its ORT-format twin (.ort) for ONNX Runtime (Android, iOS)"
    ort_format = "ort"
    ort_runtime = "onnxruntime-ortformat"
    state_forms: tuple[str, ...] = ("explicit",)
    precisions: tuple[str, ...] = ("fp32", "int8")
    kinds = (
        ArtifactKind("onnx", ".onnx", "onnxruntime", ("explicit",), "ONNX (ONNX Runtime)"),
        ArtifactKind(
            "ort", ".ort", "onnxruntime-ortformat", ("explicit",), "ORT format (ONNX Runtime, pre-optimized)",
            same_bytes_in_process=False,
        ),
    )
    reset_alternative = ""
    runtime_packages = ("onnxruntime", "onnx")
    color = "tab:orange"
    int8_speedup_target: float | None = None

    def why_not_here(self, artifact: Artifact) -> str:
        return (
            ""
            if artifact.state_form in self.state_forms
            else f"no {artifact.state_form!r} state form (ONNX has no runtime-kept state)"
        )

    def check_offline(self, artifact: Artifact) -> OfflineCheck | None:
        return None

    def read_description(self, artifact: Artifact) -> dict | None:
        """``metadata_props`` (keys ``backdrop.*``) of an ``.onnx``; the ``.ort`` twin's
        flatbuffer is read by ONNX Runtime only, so it is described by its manifest entry."""
        if artifact.format != self.name:
            return None
        model = onnx.load(str(check_file_exists(artifact)))
        props = {p.key: p.value for p in model.metadata_props}
        return decode_description(props, "backdrop.")

    def load(self, artifact: Artifact, threads: int = 0) -> FrameRunner:
        """An ``onnxruntime.InferenceSession`` on the CPU execution provider (both kinds), fed
        by the artifact's input names."""
        path = check_file_exists(artifact)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ExportError(f"{artifact.key}: ONNX Runtime could not load {path}: {e}") from e
        check_loaded_io(artifact, [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()], "ONNX graph")
        want_in = [s.name for s in artifact.inputs]
        want_out = [s.name for s in artifact.outputs]

        def call(inputs):
            return session.run(want_out, dict(zip(want_in, inputs)))

        return call

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
            exclude = onnx_qdq.excluded_nodes(node_units, float_units)
            with tempfile.TemporaryDirectory(prefix="int8-", dir=out_dir) as tmp:
                fp32_path = Path(tmp) / "fp32.onnx"
                onnx.save_model(model, fp32_path)
                model = _quantize(fp32_path, Path(tmp), exclude, artifact, calibration=calibration)
            compaction = onnx_qdq.compact_qdq_graph(model)
            details = onnx_qdq.quantization_details(model, float_units, exclude)
            quant = {"calibration": calibration.describe(), "quantization": {**details, "compaction": compaction}}
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
            {f"{n.domain}::{n.op_type}" for n in onnx_qdq.all_nodes(model.graph) if n.domain not in STANDARD_DOMAINS}
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
            f"{n.domain}::{n.op_type}" for n in onnx_qdq.all_nodes(model.graph) if n.domain not in STANDARD_DOMAINS
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
    description = artifact.description(request.model.config.to_dict(), torch.__version__).fields()
    props = {f"backdrop.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in description.items()}
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
        exclude = onnx_qdq.excluded_nodes(self._node_units, floats)
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


def _quantize(
    fp32_path: Path,
    tmp: Path,
    exclude: list[str],
    artifact: Artifact,
    calibration: CalibrationSet | None = None,
    ranges: Path | None = None,
) -> onnx.ModelProto:
    """:func:`backdrop.quantization.onnx_qdq.quantize_qdq` for ``artifact``'s inputs, its
    failure raised as an :class:`ExportError`."""
    try:
        return onnx_qdq.quantize_qdq(
            fp32_path, tmp, exclude, [s.name for s in artifact.inputs], artifact.key, calibration, ranges
        )
    except onnx_qdq.OnnxQuantizationError as e:
        raise ExportError(str(e)) from e


def _node_units(model: onnx.ModelProto, units: list[str], artifact: Artifact) -> dict[str, str | None]:
    """:func:`backdrop.quantization.onnx_qdq.node_units`, its failure raised as an
    :class:`ExportError`."""
    try:
        return onnx_qdq.node_units(model, units, artifact.key)
    except onnx_qdq.OnnxQuantizationError as e:
        raise ExportError(str(e)) from e


def _op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for n in onnx_qdq.all_nodes(model.graph)).items()))


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
    for node in onnx_qdq.all_nodes(model.graph):
        del node.metadata_props[:]


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
