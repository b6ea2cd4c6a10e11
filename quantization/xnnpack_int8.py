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

from collections.abc import Callable, Collection, Sequence

import torch
from torch import nn
from torch.fx import Node

from backdrop.core.errors import BackdropError
from backdrop.quantization.calibration import CalibrationSet
from backdrop.quantization.units import REST, check_units, quant_units, unit_of


class QuantizationError(BackdropError):
    """PT2E quantization of a wrapper failed; the message names the step."""


def _state_form(wrapper: nn.Module) -> str:
    from backdrop.models.wrappers import ExplicitStateWrapper, NativeStateWrapper

    if isinstance(wrapper, ExplicitStateWrapper):
        return "explicit"
    if isinstance(wrapper, NativeStateWrapper):
        return "native"
    raise QuantizationError(
        f"quantize_for_xnnpack takes an export wrapper (backdrop.models.wrappers.wrap), got {type(wrapper).__name__}."
    )


def _node_filter(float_units: Collection[str], units: Collection[str]) -> Callable[[Node], bool]:
    """Which graph nodes the quantizer may annotate: not those of ``float_units``; those outside
    every unit only when ``float_units`` does not name :data:`REST`."""
    float_units = frozenset(float_units)
    quantize_rest = REST not in float_units

    def keep(node: Node) -> bool:
        stack = node.meta.get("nn_module_stack") or {}
        unit = unit_of([v[0] for v in stack.values()], units)
        if unit is None:
            return quantize_rest
        return unit not in float_units

    return keep


_PLUMBING = {"getitem", "slice", "narrow", "view", "reshape", "_assert_tensor_metadata", "copy_", "alias"}


def _xnnpack_precisions() -> dict[str, list[str]]:
    """op name -> precisions the installed XNNPACK partitioner lowers it in."""
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS

    out = {}
    for config in ALL_PARTITIONER_CONFIGS:
        try:
            name = config.target_name.split(".")[0]
            out[name] = [p.name for p in config().supported_precision_types()]
        except Exception:  # a config that needs arguments: not one of ours
            continue
    return out


def _float_ops(prepared: torch.fx.GraphModule) -> dict[str, dict]:
    """Compute ops the quantizer left in float, by op name: how many, and why (the installed
    XNNPACK partitioner's precisions for the op). These run in fp32 inside the delegate with a
    dequantize/quantize pair around them, which is where int8 loses speed."""
    counts: dict[str, int] = {}
    for n in prepared.graph.nodes:
        if n.op != "call_function" or not hasattr(n.target, "__name__"):
            continue
        name = getattr(n.target, "__name__", str(n.target)).split(".")[0]
        if name in _PLUMBING or name.startswith(("quantize_", "dequantize_")):
            continue
        ann = n.meta.get("quantization_annotation")
        if ann is None or not getattr(ann, "_annotated", False):
            counts[name] = counts.get(name, 0) + 1
    precisions = _xnnpack_precisions()
    out = {}
    for name, count in sorted(counts.items()):
        supported = precisions.get(name)
        if supported is not None and "STATIC_QUANT" not in supported:
            why = f"the XNNPACK partitioner lowers {name} in {'/'.join(supported)} only, not int8"
        else:
            why = "no int8 pattern for it in XNNPACKQuantizer (or left in float on purpose)"
        out[name] = {"count": count, "why": why}
    return out


def _make_quantizer(keep: Callable[[Node], bool] | None):
    """An ``XNNPACKQuantizer`` that leaves every node failing ``keep`` unannotated (float).

    The quantizer's own ``set_filter_function`` is not enough: its ``cat`` annotator and the
    propagation to slice/view-like ops ignore the filter, which would quantize the replicate
    padding (cat of slices) inside units meant to stay float. So annotations are stripped
    after the quantizer ran, and then, until nothing changes, those that share observers
    with a stripped node (``SharedQuantizationSpec``): they would refer to an observer that no
    longer exists.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    class FilteredQuantizer(XNNPACKQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            if keep is None:
                return model
            key = "quantization_annotation"
            stripped = {n for n in model.graph.nodes if key in n.meta and not keep(n)}
            for n in stripped:
                del n.meta[key]

            def refers_to_stripped(spec) -> bool:
                if not isinstance(spec, SharedQuantizationSpec):
                    return False
                ref = spec.edge_or_node
                nodes = ref if isinstance(ref, tuple) else (ref,)
                return any(x in stripped for x in nodes)

            changed = True
            while changed:
                changed = False
                for n in model.graph.nodes:
                    ann = n.meta.get(key)
                    if ann is None:
                        continue
                    specs = [ann.output_qspec, *ann.input_qspec_map.values()]
                    if any(refers_to_stripped(sp) for sp in specs):
                        del n.meta[key]
                        stripped.add(n)
                        changed = True
            return model

    return FilteredQuantizer()


def quantize_for_xnnpack(
    wrapper: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    calibration: CalibrationSet,
    float_units: Collection[str] = (),
) -> torch.fx.GraphModule:
    """The int8 PT2E graph of ``wrapper`` calibrated on ``calibration``.

    Args:
        wrapper: an eval-mode explicit or native wrapper (:func:`backdrop.models.wrappers.wrap`)
            around the float (BatchNorm-fused) model.
        example_inputs: the wrapper's export inputs (:func:`backdrop.models.wrappers.example_inputs`).
        calibration: real frames with the states the float model fed them, for the same bucket.
        float_units: quantization units (quantization/units.py) left in float: XNNPACK runs
            them in fp32 inside the same delegate, with quantize/dequantize at their edges;
            ``"rest"`` (:data:`~backdrop.quantization.units.REST`) means the ops outside every unit.

    Returns:
        The converted (quantize/dequantize) ``GraphModule``; export it with
        ``torch.export.export(gm, example_inputs)`` and lower it to XNNPACK.

    Raises:
        QuantizationError: the wrapper is not an export wrapper, the calibration set is for
            another size, or a PT2E step failed (named).
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    form = _state_form(wrapper)
    frame = example_inputs[0]
    hw = (calibration.bucket.height, calibration.bucket.width)
    if tuple(frame.shape[-2:]) != hw:
        raise QuantizationError(
            f"Calibration set {calibration.name} is {hw[0]}x{hw[1]} but the wrapper takes "
            f"{frame.shape[-2]}x{frame.shape[-1]}; compute it for the same bucket."
        )
    units = quant_units(wrapper.model)
    keep = None
    if float_units:
        keep = _node_filter(check_units(wrapper.model, float_units), units)
    quantizer = _make_quantizer(keep).set_global(get_symmetric_quantization_config(is_per_channel=True))
    step = "torch.export"
    try:
        with torch.no_grad():
            graph = torch.export.export(wrapper, tuple(example_inputs)).module()
            step = "prepare_pt2e"
            prepared = prepare_pt2e(graph, quantizer)
            float_ops = _float_ops(prepared)
            step = "calibration"
            for inputs in calibration.inputs(form):
                prepared(*inputs)
            step = "convert_pt2e"
            converted = convert_pt2e(prepared)
    except Exception as e:
        raise QuantizationError(f"int8 PT2E quantization ({form} state) failed at {step}: {e}") from e
    converted.meta["backdrop_float_ops"] = float_ops
    if form == "native":
        from backdrop.models.wrappers import STATE_NAME

        with torch.no_grad():
            getattr(converted, STATE_NAME).zero_()
    return converted


__all__ = ["QuantizationError", "quantize_for_xnnpack"]
