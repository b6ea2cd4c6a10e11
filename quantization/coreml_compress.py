"""Core ML weight compression: the ``int8`` and ``palette6`` precisions of export/formats/coreml.py.

Both compress the weights of the converted fp16 ML program with ``coremltools.optimize.coreml``
(:func:`compress_weights`); compute stays fp16 and Core ML restores fp16 weights when it loads
the model:

- ``int8``: weight-only linear quantization (int8, symmetric, one scale per output channel),
  ``linear_quantize_weights`` (``constexpr_affine_dequantize`` on iOS 16,
  ``constexpr_blockwise_shift_scale`` in an iOS 18 program).
- ``palette6``: 6-bit k-means palettization (one 64-entry fp16 lookup table per weight tensor),
  ``palettize_weights`` (``constexpr_lut_to_dense``).

Both are iOS 16 features of ML programs, so the deployment targets stay those of the state
forms. Weight tensors of at most :data:`WEIGHT_THRESHOLD` elements, and every bias (rank 1),
stay fp16. Activations are not quantized: activation calibration runs the model
(``MLModel.predict``), which needs macOS. The weight error of a compressed package is read back
from it without running anything (:func:`compressed_weights_error`). Sizes and errors of the
default model: docs/formats.md, "Core ML", **Precisions**.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

WEIGHT_THRESHOLD = 2048
"""Weight tensors with at most this many elements stay fp16 in the compressed precisions
(coremltools' ``weight_threshold``, its default); biases and other rank-1 consts always do."""

COMPRESSION = {
    "int8": {
        "method": "coremltools.optimize.coreml.linear_quantize_weights",
        "config": {
            "mode": "linear_symmetric", "dtype": "int8", "granularity": "per_channel", "weight_threshold": WEIGHT_THRESHOLD
        },
        "ops": ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"),
    },
    "palette6": {
        "method": "coremltools.optimize.coreml.palettize_weights",
        "config": {"mode": "kmeans", "nbits": 6, "granularity": "per_tensor", "weight_threshold": WEIGHT_THRESHOLD},
        "ops": ("constexpr_lut_to_dense",),
    },
}
"""Weight compression per precision: the coremltools function, its op config (as passed) and
the MIL ops that hold the compressed weights in the saved program. ``fp16`` has none."""

ACTIVATIONS_NOTE = (
    "fp16, not quantized: activation quantization calibrates with MLModel.predict, which needs macOS"
)


def compress_weights(mlmodel, precision: str):
    """``mlmodel`` (an fp16 ML program) with its weights compressed as ``precision`` says
    (:data:`COMPRESSION`); the model description and metadata are kept.

    Args:
        mlmodel: the fp16 ``MLModel`` of a conversion.
        precision: a key of :data:`COMPRESSION` (``int8`` or ``palette6``).

    Returns:
        A new ``MLModel`` with the compressed weights.

    Raises:
        ValueError: ``precision`` has no weight compression.
    """
    import coremltools.optimize.coreml as cto

    if precision not in COMPRESSION:
        raise ValueError(f"no weight compression for precision {precision!r}; known: {', '.join(COMPRESSION)}")
    cfg = dict(COMPRESSION[precision]["config"])
    if precision == "int8":
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(**cfg))
        return cto.linear_quantize_weights(mlmodel, config)
    config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(**cfg))
    return cto.palettize_weights(mlmodel, config)


def _as_mlmodel(model):
    import coremltools as ct

    if isinstance(model, (str, Path)):
        return ct.models.MLModel(str(model), skip_model_load=True)
    return model


def _weight_consumers(name: str, meta) -> tuple:
    """Where a const goes: ((op type, op name, input name), ...); op names survive compression."""
    return tuple(sorted((c.op_type, c.name, k) for c in meta.child_ops for k, v in c.params_name_mapping.items() if v == name))


def _float_weights(mlmodel) -> dict[tuple, tuple[str, np.ndarray]]:
    """Consumers -> (const name, value) for every float const of at least two elements."""
    import coremltools.optimize.coreml as cto

    out = {}
    for name, meta in cto.get_weights_metadata(mlmodel, weight_threshold=2).items():
        if np.issubdtype(meta.val.dtype, np.floating):
            out[_weight_consumers(name, meta)] = (name, meta.val)
    return out


def _compressed_var_names(mlmodel) -> dict[str, str]:
    """Output var name -> op type of every compressed-weight (``constexpr_*``) op."""
    return {
        out.name: op.type
        for op in program_ops(mlmodel.get_spec())
        if op.type.startswith("constexpr_")
        for out in op.outputs
    }


def _weights_comparison(fp16_model, compressed_model) -> dict:
    import coremltools.optimize.coreml as cto

    fp16_model, compressed_model = _as_mlmodel(fp16_model), _as_mlmodel(compressed_model)
    compressed_names = _compressed_var_names(compressed_model)
    reference = _float_weights(fp16_model)
    restored = _float_weights(cto.decompress_weights(compressed_model))
    errors: list[tuple[float, str]] = []
    unmatched: list[str] = []
    elements = {"compressed": 0, "kept": 0}
    for key, (name, val) in restored.items():
        if name not in compressed_names:
            elements["kept"] += int(val.size)
            continue
        elements["compressed"] += int(val.size)
        ref = reference.get(key)
        if ref is None or ref[1].shape != val.shape:
            unmatched.append(name)
            continue
        w = ref[1].astype(np.float64)
        norm = float(np.linalg.norm(w))
        if norm > 0:
            errors.append((float(np.linalg.norm(val.astype(np.float64) - w)) / norm, ref[0]))
    return {
        "compressed": len([n for n, _ in restored.values() if n in compressed_names]),
        "kept": len([n for n, _ in restored.values() if n not in compressed_names]),
        "elements": elements,
        "ops": dict(sorted(Counter(compressed_names.values()).items())),
        "errors": errors,
        "unmatched": sorted(unmatched),
    }


def compressed_weights_error(fp16_model, compressed_model) -> dict:
    """How far the compressed weights are from the fp16 ones (Linux-safe: nothing runs).

    The compressed package's weights are decompressed with
    ``coremltools.optimize.coreml.decompress_weights`` (what Core ML does at load time) and
    compared tensor by tensor with the fp16 package's, matched by the op and input they feed
    (op names do not change when weights are compressed). For each compressed tensor the
    relative error is ``||w_q - w|| / ||w||`` (L2 norms, ``w`` the fp16 weight).

    Args:
        fp16_model, compressed_model: ``.mlpackage`` paths or ``MLModel`` objects of the same
            conversion, fp16 and compressed.

    Returns:
        ``{"tensors", "rel_l2_max", "rel_l2_mean", "worst", "unmatched"}``: the number of
        compressed tensors compared, the max and mean relative error over them, the fp16 const
        name of the worst, and the compressed tensors that found no fp16 twin (expected empty).
    """
    cmp = _weights_comparison(fp16_model, compressed_model)
    return _error_summary(cmp)


def _error_summary(cmp: dict) -> dict:
    errors = cmp["errors"]
    worst = max(errors) if errors else (0.0, None)
    return {
        "tensors": len(errors),
        "rel_l2_max": round(worst[0], 6),
        "rel_l2_mean": round(float(np.mean([e for e, _ in errors])), 6) if errors else 0.0,
        "worst": worst[1],
        "unmatched": cmp["unmatched"],
    }


def compression_details(fp16_model, compressed_model, precision: str) -> dict:
    """``details["compression"]`` without the timings and the package's weight bytes.

    A weight tensor here is a float const of two or more elements (conv weights and biases;
    scalars such as activation constants are not counted).

    Args:
        fp16_model: the fp16 ``MLModel`` (its ``weights_dir`` gives ``fp16_weight_bytes``).
        compressed_model: the ``MLModel`` :func:`compress_weights` made from it.
        precision: the key of :data:`COMPRESSION` it was compressed with.

    Returns:
        The method and config, compressed and kept tensor and element counts, the
        compressed-weight ops, the weight error (as :func:`compressed_weights_error`), the fp16
        weight bytes and the activations note.
    """
    spec = COMPRESSION[precision]
    cmp = _weights_comparison(fp16_model, compressed_model)
    return {
        "method": spec["method"],
        "config": dict(spec["config"]),
        "weights_compressed": cmp["compressed"],
        "weights_kept_fp16": cmp["kept"],
        "elements_compressed": cmp["elements"]["compressed"],
        "elements_kept_fp16": cmp["elements"]["kept"],
        "compressed_ops": cmp["ops"],
        "weight_error": _error_summary(cmp),
        "fp16_weight_bytes": _dir_bytes(fp16_model.weights_dir),
        "activations": ACTIVATIONS_NOTE,
    }


def weight_bytes(package: Path) -> int:
    """Bytes of the package's weight files (``Data/com.apple.CoreML/weights``)."""
    return _dir_bytes(Path(package) / "Data" / "com.apple.CoreML" / "weights")


def _dir_bytes(folder: str | Path | None) -> int:
    if folder is None:
        return 0
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def _iter_ops(block):
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _iter_ops(inner)


def program_ops(spec):
    """Every op of the ML program in ``spec`` (a ``Model`` protobuf), nested blocks included."""
    for func in spec.mlProgram.functions.values():
        for block in func.block_specializations.values():
            yield from _iter_ops(block)
