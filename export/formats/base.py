"""The format interface and registry. A new format is one module and one registry line in
export/formats/__init__.py; only the target table combines formats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from backdrop.buckets import Bucket
from backdrop.errors import BackdropError, ConfigError
from backdrop.export.artifact import Artifact
from backdrop.models import Segmenter
from backdrop.registry import Registry


class ExportError(BackdropError):
    """An export step failed: a format cannot take an op, a runtime rejected an artifact, a
    parity check missed its threshold. The message names the artifact and what to do."""


@dataclass(frozen=True)
class ExportRequest:
    """One artifact to build.

    Attributes:
        model: the float model (eval mode; BatchNorm already fused where the format wants).
        bucket: the fixed input size.
        state_form: "explicit" or "native".
        precision: "fp32", "fp16", "int8" or "palette6" (Core ML 6-bit palettized weights).
        out_dir: the folder to write into (the target's ``<bucket>/`` folder); file names are
            the format's choice but must contain the state form and precision.
        format: the registered format name that handles the request.
        float_units: int8 only: quantization units (:func:`backdrop.quantization.units.quant_units`)
            kept in float, chosen by the fallback search when plain int8 misses its budget.
    """

    model: Segmenter
    bucket: Bucket
    state_form: str
    precision: str
    out_dir: Path
    format: str = ""
    float_units: tuple[str, ...] = ()


class Format(Protocol):
    """An export format (ExecuTorch, ONNX, Core ML, PyTorch Lite)."""

    name: str
    runtime: str
    state_forms: tuple[str, ...]
    precisions: tuple[str, ...]

    def export(self, request: ExportRequest) -> list[Artifact]:
        """Write the artifact(s) for ``request`` and describe them (ONNX also writes its
        ORT-format twin, hence a list). Raises ExportError naming op and format when the
        format cannot take the model."""
        ...


class Int8Format(Format, Protocol):
    """A format with an int8 precision also offers a probe for the fallback search."""

    def int8_probe(self, request: ExportRequest):
        """A :class:`backdrop.quantization.fallback.Int8Probe` for ``request``'s model and bucket
        (explicit state, calibrated as the real export is)."""
        ...


def checked_units(model: Segmenter, names: tuple[str, ...], format_name: str) -> tuple[str, ...]:
    """``names`` after checking each is a quantization unit of ``model`` (or ``"rest"``).

    Raises:
        ExportError: an unknown name (the message lists the model's units).
    """
    from backdrop.quantization.units import check_units

    try:
        return check_units(model, names)
    except ConfigError as e:
        raise ExportError(f"Format '{format_name}' int8 float_units: {e}") from e


def checked_float_units(request: ExportRequest, format_name: str) -> tuple[str, ...]:
    """The request's float units, for a format's checks before anything is written.

    Raises:
        ExportError: float units on a precision other than int8, or an unknown unit.
    """
    if request.float_units and request.precision != "int8":
        raise ExportError(
            f"Format '{format_name}': float_units ({', '.join(request.float_units)}) apply to int8 "
            f"only, not to precision '{request.precision}'."
        )
    return checked_units(request.model, request.float_units, format_name)


FORMATS: Registry[Format] = Registry("export format")
