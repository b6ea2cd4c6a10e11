"""Static int8 for PyTorch Lite (the legacy target): FX graph mode quantization, qnnpack engine.

PyTorch Mobile runs quantized models through QNNPACK on phones, so the segmenter is quantized
the way that runtime expects: ``prepare_fx`` with ``get_default_qconfig_mapping("qnnpack")``
(int8 symmetric per-tensor weights, uint8 affine activations from histogram observers without
reduced range; conv + ReLU fused), the calibration frames run through the observed model with
the states the float model fed itself, then ``convert_fx``. The result is a ``GraphModule`` of
``quantized::`` ops (``conv2d``, ``conv2d_relu``, ``add``, ``mul``, ``hardswish``, ``cat``; the
replicate padding's ``torch.narrow`` slices keep their input's quantization, models/layers.py)
that the Lite format traces, scripts and saves (export/formats/lite.py). Ops without a quantized
kernel run in float between a dequantize and a quantize: the squeeze-excite gates (``mean``,
``relu6``, ``div``) and the decoder's bilinear resizes.

The segmenter is quantized, not the export wrapper: the Lite format traces the segmenter and
scripts the wrapper (state buffer, ``reset()``) around it, so the wrapper's input concat and
output sigmoid stay float, as in the fp32 ``.ptl``.

Packed weights are engine-specific: quantizing, saving, loading and running must all happen
with ``torch.backends.quantized.engine == "qnnpack"`` (:func:`qnnpack_engine`); a ``.ptl``
loaded under x86's default engine would repack its weights for FBGEMM, whose kernels assume
reduced-range activations.

Fallback units (quantization/units.py) map to FX module names: a unit kept in float gets no
qconfig; ``"rest"`` leaves everything outside the named units (the decoder's resizes, concats
and adds) in float.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Collection, Iterator

import torch
from torch import nn

from backdrop.core.errors import BackdropError
from backdrop.quantization.calibration import CalibrationSet
from backdrop.quantization.units import REST, check_units, quant_units

ENGINE = "qnnpack"
"""The quantized engine of PyTorch Mobile on arm64 phones, and the one these artifacts are for."""

SCHEME = {
    "scheme": "FX graph mode (torch.ao.quantization.quantize_fx), default qnnpack qconfig",
    "weights": "int8 symmetric, per tensor",
    "activations": "uint8 affine per tensor, histogram observers, full range",
    "engine": ENGINE,
}
"""What :func:`quantize_for_qnnpack` does, for an artifact's details."""


class QnnpackQuantizationError(BackdropError):
    """FX quantization of the segmenter failed; the message names the step."""


@contextlib.contextmanager
def qnnpack_engine() -> Iterator[None]:
    """Run the body with the qnnpack quantized engine, restoring the previous engine after.

    Raises:
        QnnpackQuantizationError: this torch build has no qnnpack engine.
    """
    supported = torch.backends.quantized.supported_engines
    if ENGINE not in supported:
        raise QnnpackQuantizationError(
            f"This torch build has no {ENGINE} quantized engine (has: {', '.join(supported)}); "
            "PyTorch Lite int8 needs it."
        )
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = ENGINE
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def _qconfig_mapping(model: nn.Module, float_units: Collection[str]):
    from torch.ao.quantization import get_default_qconfig_mapping

    mapping = get_default_qconfig_mapping(ENGINE)
    qconfig = mapping.global_qconfig
    units = quant_units(model)
    floats = set(float_units)
    if REST in floats:
        mapping.set_global(None)
        for unit in units:
            if unit not in floats:
                mapping.set_module_name(unit, qconfig)
    for unit in units:
        if unit in floats:
            mapping.set_module_name(unit, None)
    return mapping


def quantize_for_qnnpack(
    model: nn.Module, calibration: CalibrationSet, float_units: Collection[str] = ()
) -> torch.fx.GraphModule:
    """The int8 (qnnpack) ``GraphModule`` of the segmenter ``model``, calibrated on ``calibration``.

    Args:
        model: the eval-mode float segmenter (BatchNorm fused); not modified.
        calibration: real frames with the states the float model fed them, for the bucket the
            artifact is for.
        float_units: quantization units kept in float (``"rest"``: the ops outside every unit).

    Returns:
        The converted module: ``(1, 4, H, W)`` float input (YUV + previous mask) -> logits,
        computed with ``quantized::`` kernels. Call and trace it inside :func:`qnnpack_engine`.

    Raises:
        ConfigError: an unknown unit in ``float_units``.
        QnnpackQuantizationError: a step failed (named).
    """
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    floats = check_units(model, float_units)
    explicit = calibration.explicit_inputs()
    example = torch.cat(list(explicit[0]), dim=1)
    step = "prepare_fx"
    with qnnpack_engine(), torch.no_grad(), warnings.catch_warnings():
        # torch.ao's FX workflow warns that it is in maintenance mode (PT2E replaces it): it is
        # still the path to TorchScript quantized ops, which is what the Lite runtime executes.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        try:
            prepared = prepare_fx(copy.deepcopy(model).eval(), _qconfig_mapping(model, floats), (example,))
            step = "calibration"
            for frame, prev_mask in explicit:
                prepared(torch.cat([frame, prev_mask], dim=1))
            step = "convert_fx"
            return convert_fx(prepared)
        except Exception as e:
            raise QnnpackQuantizationError(f"int8 (qnnpack) FX quantization failed at {step}: {e}") from e


def quantized_modules(converted: torch.fx.GraphModule) -> dict[str, str]:
    """Module name -> class name of the quantized modules (``torch.ao.nn.quantized``) in
    ``converted``: what a test or report reads to see which units were quantized."""
    packages = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")
    return {name: type(m).__name__ for name, m in converted.named_modules() if type(m).__module__.startswith(packages)}


__all__ = [
    "ENGINE",
    "SCHEME",
    "QnnpackQuantizationError",
    "qnnpack_engine",
    "quantize_for_qnnpack",
    "quantized_modules",
]
