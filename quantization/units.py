"""Quantization units: the named pieces of a model that int8 fallback keeps in float.

A unit is an outermost ``InvertedResidual``, ``ConvBNAct`` or bare ``Conv2d`` of the model
(its dotted module path, e.g. ``encoder.stages.3.5``, ``fuse.0``, ``head``). The default model
has 31: the stem, 22 inverted-residual blocks, the lateral conv, 3 fuse and 3 refine convs and
the head. Blocks rather than single convs because a block's convs share its activations'
ranges, and 31 trials is what a sensitivity analysis can afford at export time.

Formats find a unit's ops by the module path their exporter records per node: ``torch.export``
keeps ``nn_module_stack`` (qualified names ``model.<unit>...``, ``model`` being the export
wrapper's attribute), the ONNX exporter ``pkg.torch.onnx.name_scopes`` (the same names).
:func:`unit_of` maps such a list of qualified names to the unit, or None for ops outside any
unit (the wrapper's concat, sigmoid, the decoder's resizes and adds).

Those ops form one more unit for the fallback, :data:`REST`: ``float_units`` containing
``"rest"`` keeps every op outside the named units in float too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import nn

from backdrop.core.errors import ConfigError

REST = "rest"
"""The pseudo-unit of every op outside the model's units (input concat, decoder resizes/adds)."""

WRAPPER_PREFIX = "model."
"""The export wrappers hold the segmenter as ``self.model`` (models/wrappers.py)."""


def _unit_types() -> tuple[type, ...]:
    from backdrop.models.layers import ConvBNAct, InvertedResidual

    return (InvertedResidual, ConvBNAct, nn.Conv2d)


def quant_units(model: nn.Module) -> list[str]:
    """The model's units in execution-definition order (module registration order)."""
    types = _unit_types()
    units: list[str] = []
    for name, module in model.named_modules():
        if not name or not isinstance(module, types):
            continue
        if any(name.startswith(u + ".") for u in units):
            continue  # inside a unit already listed
        units.append(name)
    return units


def fallback_units(model: nn.Module) -> list[str]:
    """What the fallback search ranks: the model's units and :data:`REST`."""
    return [*quant_units(model), REST]


def check_units(model: nn.Module, names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, after checking each is a unit of ``model`` or :data:`REST`.

    Raises:
        ConfigError: a name that is not a unit (the message lists the valid ones).
    """
    names = tuple(names)
    valid = fallback_units(model)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ConfigError(
            f"Unknown quantization unit(s) {', '.join(unknown)}; the model's units are: {', '.join(valid)}."
        )
    return names


def unit_of(qualified_names: Sequence[str], units: Iterable[str]) -> str | None:
    """The unit a node belongs to, from its exporter's module path (outermost first), or None."""
    wanted = {WRAPPER_PREFIX + u: u for u in units}
    for q in qualified_names:
        if q in wanted:
            return wanted[q]
    return None


__all__ = ["REST", "WRAPPER_PREFIX", "check_units", "fallback_units", "quant_units", "unit_of"]
