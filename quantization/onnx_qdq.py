"""Static int8 for ONNX Runtime: ``quantize_static`` into a QDQ graph, then compaction.

The fp32 ``.onnx`` of export/formats/onnx.py is quantized by ONNX Runtime's static quantizer
(:func:`quantize_qdq`) into a QDQ graph: QuantizeLinear/DequantizeLinear (standard ``ai.onnx``
ops, so the opset stays) around every op the quantizer takes; ONNX Runtime fuses
DequantizeLinear -> op -> QuantizeLinear into its int8 kernels when it loads the graph.

- Weights: int8, symmetric, per output channel, in 7 bits (``reduce_range``: no saturation on
  x86 without VNNI, where the exports are checked). Activations: uint8, affine, per tensor
  (:data:`INT8_ACTIVATIONS`), ranges by MinMax over the calibration set
  (:func:`backdrop.quantization.calibration.cached_calibration_inputs`, fed as ``frame`` /
  ``prev_mask``). The graph is not pre-processed (``quant_pre_process``).
- Fallback: each node's quantization unit (:mod:`backdrop.quantization.units`) comes from the
  exporter's name scopes (:func:`node_units`, read before the format strips the debug
  metadata); :func:`excluded_nodes` turns float units into ``nodes_to_exclude``, so their
  Convs keep float weights and tensors entering them are dequantized; ``"rest"`` excludes
  every node outside all units.
- :func:`compact_qdq_graph` then shrinks the quantizer's graph without changing its outputs.

Why uint8 activations, why no pre-processing, and what compaction saves are measurements:
docs/quantization.md, "ONNX Runtime int8: design measurements".
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from backdrop.core.errors import BackdropError
from backdrop.quantization.calibration import CalibrationSet
from backdrop.quantization.units import REST, unit_of

INT8_ACTIVATIONS = QuantType.QUInt8
"""Activation type of int8 graphs (as accurate as QInt8 and faster: docs/quantization.md)."""

NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
"""Per-node metadata of the dynamo exporter: the module path, outermost first, as a Python list
literal, e.g. ``['', 'model', 'model.encoder', 'model.encoder.stem', 'model.encoder.stem.0', 'conv2d']``."""


class OnnxQuantizationError(BackdropError):
    """ONNX Runtime QDQ quantization failed, or the graph's nodes cannot be mapped to units;
    the message starts with the artifact key it was given."""


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
    left out on purpose (docs/quantization.md)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


def quantize_qdq(
    fp32_path: Path,
    tmp: Path,
    exclude: list[str],
    input_names: list[str],
    key: str,
    calibration: CalibrationSet | None = None,
    ranges: Path | None = None,
) -> onnx.ModelProto:
    """``quantize_static`` of the fp32 file into a QDQ graph (module docstring).

    Args:
        fp32_path: the fp32 ``.onnx`` file.
        tmp: a scratch folder; the quantizer's output file is written there.
        exclude: node names kept in float (``nodes_to_exclude``, see :func:`excluded_nodes`).
        input_names: the graph's input names, in the calibration set's order (``frame``,
            ``prev_mask``).
        key: the artifact key, for error messages.
        calibration: the set the ranges are computed from (and saved to ``ranges`` when
            given); None to read them from the existing ``ranges`` cache instead.
        ranges: ONNX Runtime's calibration cache file (JSON), or None.

    Returns:
        The quantized graph, as the quantizer wrote it (before :func:`compact_qdq_graph`).

    Raises:
        OnnxQuantizationError: the quantizer failed (its first line is in the message).
    """
    reader = _CalibrationReader(calibration, input_names) if calibration is not None else None
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
                # 7-bit weights: on x86 CPUs with AVX2 or AVX-512 but no VNNI, ONNX Runtime's
                # uint8 x int8 kernels add pairs of products in int16 and saturate, so an
                # artifact checked on such a host can be far from float (docs/quantization.md).
                reduce_range=True,
                weight_type=QuantType.QInt8,
                activation_type=INT8_ACTIVATIONS,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=exclude,
                calibration_cache_path=ranges,
            )
        return onnx.load_model(out)
    except Exception as e:  # the quantizer raises ValueError/RuntimeError/ORT errors alike
        raise OnnxQuantizationError(f"{key}: ONNX Runtime's static quantizer failed: {_first_line(e)}") from e
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
       ORT-format conversion);
    2. ``value_info`` is dropped (ONNX Runtime infers shapes when it loads the graph);
    3. internal names become short base-36 ids (``n<id>`` for nodes); graph inputs and outputs,
       the app-facing names, are kept.

    A graph with control-flow bodies (If/Loop) is left as it is (none here). Sizes before and
    after: docs/quantization.md, "ONNX Runtime int8: design measurements".

    Args:
        model: the quantizer's graph; changed in place.

    Returns:
        Counts for the artifact's details: ``shared_initializers``, ``value_info_dropped``,
        ``renamed_tensors``.
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


def quantization_details(model: onnx.ModelProto, float_units: tuple[str, ...], exclude: list[str]) -> dict:
    """``details["quantization"]`` of an int8 artifact (without ``compaction``): the scheme,
    the float units, and node and initializer counts of the quantized ``model``."""
    counts = Counter(n.op_type for n in all_nodes(model.graph))
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


def excluded_nodes(node_units: dict[str, str | None], float_units) -> list[str]:
    """Node names kept in float: those of ``float_units``, and those outside every unit when
    ``float_units`` names ``"rest"``."""
    floats = set(float_units)
    return sorted(name for name, unit in node_units.items() if unit in floats or (unit is None and REST in floats))


def node_units(model: onnx.ModelProto, units: list[str], key: str) -> dict[str, str | None]:
    """Each top-level node's quantization unit by node name, from the exporter's name scopes;
    None for nodes outside every unit and nodes without scopes (the output Identity).

    Unnamed nodes are given a name (``backdrop_unnamed_<index>``) in place.

    Args:
        model: the exported fp32 graph, its per-node metadata (:data:`NAME_SCOPES_KEY`) still in.
        units: the model's quantization units (:func:`backdrop.quantization.units.quant_units`).
        key: the artifact key, for error messages.

    Raises:
        OnnxQuantizationError: two nodes share a name, or a node's name scopes are unreadable.
    """
    out: dict[str, str | None] = {}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"backdrop_unnamed_{i}"
        if node.name in out:
            raise OnnxQuantizationError(f"{key}: two nodes of the ONNX graph are named {node.name!r}.")
        scopes = next((p.value for p in node.metadata_props if p.key == NAME_SCOPES_KEY), None)
        try:
            path = ast.literal_eval(scopes) if scopes else []
        except (ValueError, SyntaxError) as e:
            raise OnnxQuantizationError(f"{key}: node {node.name} has unreadable {NAME_SCOPES_KEY} {scopes!r}.") from e
        out[node.name] = unit_of(path, units)
    return out


def all_nodes(graph: onnx.GraphProto):
    """Every node, including those inside If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from all_nodes(g)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
