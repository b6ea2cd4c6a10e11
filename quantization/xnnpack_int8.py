"""Static int8 (w8a8) quantization for the XNNPACK delegate, via PT2E.

``torch.export`` -> ``XNNPACKQuantizer`` (symmetric, per-channel weights, per-tensor
activations) -> ``prepare_pt2e`` -> the calibration frames run through the observed graph ->
``convert_pt2e``. The result is a ``GraphModule`` with quantize/dequantize pairs around each
op, which is exported again and lowered by ``to_edge_transform_and_lower(XnnpackPartitioner)``
as the fp32 path does; XNNPACK folds the Q/DQ pairs into its int8 kernels.

Both state forms:
- explicit ``(frame, prev_mask)``: the calibration set's (frame, prev_mask) pairs, any order.
- native ``(frame, reset)``: the ``mask_state`` buffer and its in-place ``copy_`` survive
  ``prepare_pt2e``/``convert_pt2e`` (the buffer stays a mutated buffer of the re-exported
  program); calibration feeds the frames in order from a reset, so the buffer carries the
  prepared model's own previous masks, as on the phone. The buffer is reset to zeros after
  calibration (:func:`quantize_for_xnnpack` leaves no state behind).

Imports: ``executorch.backends.xnnpack.quantizer.xnnpack_quantizer`` (executorch 1.5) and
``torchao.quantization.pt2e.quantize_pt2e`` (torchao 0.18); the ``torch.ao`` copies are
deprecated.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from backdrop.errors import BackdropError
from backdrop.quantization.calibration import CalibrationSet


class QuantizationError(BackdropError):
    """PT2E quantization of a wrapper failed; the message names the step."""


def _state_form(wrapper: nn.Module) -> str:
    from backdrop.export.wrappers import ExplicitStateWrapper, NativeStateWrapper

    if isinstance(wrapper, ExplicitStateWrapper):
        return "explicit"
    if isinstance(wrapper, NativeStateWrapper):
        return "native"
    raise QuantizationError(
        f"quantize_for_xnnpack takes an export wrapper (backdrop.export.wrappers.wrap), got {type(wrapper).__name__}."
    )


def quantize_for_xnnpack(
    wrapper: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    calibration: CalibrationSet,
) -> torch.fx.GraphModule:
    """The int8 PT2E graph of ``wrapper`` calibrated on ``calibration``.

    Args:
        wrapper: an eval-mode explicit or native wrapper (:func:`backdrop.export.wrappers.wrap`)
            around the float (BatchNorm-fused) model.
        example_inputs: the wrapper's export inputs (:func:`backdrop.export.wrappers.example_inputs`).
        calibration: real frames with the states the float model fed them, for the same bucket.

    Returns:
        The converted (quantize/dequantize) ``GraphModule``; export it with
        ``torch.export.export(gm, example_inputs)`` and lower it to XNNPACK.

    Raises:
        QuantizationError: the wrapper is not an export wrapper, the calibration set is for
            another size, or a PT2E step failed (named).
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    form = _state_form(wrapper)
    frame = example_inputs[0]
    hw = (calibration.bucket.height, calibration.bucket.width)
    if tuple(frame.shape[-2:]) != hw:
        raise QuantizationError(
            f"Calibration set {calibration.name} is {hw[0]}x{hw[1]} but the wrapper takes "
            f"{frame.shape[-2]}x{frame.shape[-1]}; compute it for the same bucket."
        )
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    step = "torch.export"
    try:
        with torch.no_grad():
            graph = torch.export.export(wrapper, tuple(example_inputs)).module()
            step = "prepare_pt2e"
            prepared = prepare_pt2e(graph, quantizer)
            step = "calibration"
            for inputs in calibration.inputs(form):
                prepared(*inputs)
            step = "convert_pt2e"
            converted = convert_pt2e(prepared)
    except Exception as e:
        raise QuantizationError(f"int8 PT2E quantization ({form} state) failed at {step}: {e}") from e
    if form == "native":
        from backdrop.export.wrappers import STATE_NAME

        with torch.no_grad():
            getattr(converted, STATE_NAME).zero_()
    return converted


__all__ = ["QuantizationError", "quantize_for_xnnpack"]
