"""The format interface and registry.

A format owns its artifacts' whole life: it exports them (and says which kinds of file it
writes: ONNX writes ``.onnx`` and its ``.ort`` twin), says why it cannot take a request or
cannot load a file here, loads one into a runner that executes one frame, and checks one
offline where nothing here can run it. Everyone else (devices, verification, reports, the
manifest schema, the manifest-only runner) asks the registry, never a format by name.

A new format is one module that registers itself in :data:`FORMATS` and one import line in
export/formats/__init__.py (docs/architecture.md). Only targets combine formats.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from backdrop.core.buckets import Bucket
from backdrop.core.errors import BackdropError, ConfigError, RegistryError
from backdrop.core.registry import Registry
from backdrop.export.artifact import Artifact
from backdrop.models import Segmenter
from backdrop.quantization.units import check_units


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


FrameRunner = Callable[[Sequence[np.ndarray]], list[np.ndarray]]
"""One frame through a loaded artifact: inputs (numpy, the artifact's declared order and
dtypes) -> outputs (numpy, declared order). The state loop is the device's
(device_tests/base.py); a native-form runner keeps the runtime's state between calls."""


@dataclass(frozen=True)
class ArtifactKind:
    """One kind of file a format writes; its name is the manifest's ``format`` value.

    Attributes:
        name: e.g. "onnx", "ort" (unique over all formats).
        suffix: file or folder suffix, e.g. ".onnx", ".mlpackage".
        runtime: the manifest's ``runtime`` value for it.
        state_forms: the state forms files of this kind come in.
        label: for people and docs tables, e.g. "ORT format (ONNX Runtime, pre-optimized)".
        same_bytes_in_process: a second export of the same request in the same process writes
            the same bytes (False where the writer does not: docs/formats.md, "Reproducible").
    """

    name: str
    suffix: str
    runtime: str
    state_forms: tuple[str, ...]
    label: str
    same_bytes_in_process: bool = True


@dataclass(frozen=True)
class OfflineCheck:
    """What a format checked of a file without running it (e.g. Core ML's spec check).

    ``errors`` fail the export; ``warnings`` are recorded in the manifest."""

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    what: str = ""


class Format(Protocol):
    """An export format (ExecuTorch, ONNX, Core ML, PyTorch Lite), from export to loading.

    Attributes:
        name: registry name; also the ``format`` of its primary artifacts.
        runtime: the runtime that executes its primary artifacts.
        summary: one line for docs tables and help.
        state_forms, precisions: what it can export.
        kinds: every kind of file it writes (the first is the primary).
        reset_alternative: a native-form reset besides ``reset = 1.0`` ("" if none), e.g.
            "call the module's reset() method".
        runtime_packages: Python distributions whose versions describe its runtime here.
        color: its colour in plots.
        int8_speedup_target: the int8-over-float speed-up the reports hold it to, or None.
    """

    name: str
    runtime: str
    summary: str
    state_forms: tuple[str, ...]
    precisions: tuple[str, ...]
    kinds: tuple[ArtifactKind, ...]
    reset_alternative: str
    runtime_packages: tuple[str, ...]
    color: str
    int8_speedup_target: float | None

    def export(self, request: ExportRequest) -> list[Artifact]:
        """Write the artifact(s) for ``request`` and describe them (ONNX also writes its
        ORT-format twin, hence a list). Raises ExportError naming op and format when the
        format cannot take the model."""
        ...

    def why_not_here(self, artifact: Artifact) -> str:
        """Why this Python process cannot load ``artifact`` ("" when it can)."""
        ...

    def load(self, artifact: Artifact, threads: int = 0) -> FrameRunner:
        """Load ``artifact`` into its runtime here (``threads``: intra-op threads, 0 for the
        runtime's default).

        Raises:
            ExportError: the file is missing, corrupt, or its inputs/outputs differ from what
                the artifact declares (the message names the file and what differs).
        """
        ...

    def check_offline(self, artifact: Artifact) -> OfflineCheck | None:
        """Check ``artifact`` without running it; None when the format has no such check."""
        ...

    def read_description(self, artifact: Artifact) -> dict | None:
        """The self-description stored inside ``artifact``'s file, as
        :meth:`backdrop.core.contract.SelfDescription.fields` wrote it; None for kinds of file
        that carry none."""
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


def package_versions(packages: Sequence[str]) -> dict[str, str]:
    """Installed versions of Python distributions ("not installed" for missing ones)."""
    out = {}
    for package in packages:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def check_loaded_io(artifact: Artifact, got_inputs: Sequence[str], got_outputs: Sequence[str], what: str) -> None:
    """Raise ExportError unless a loaded file's input/output names are the declared ones (any
    order: runtimes that bind by name report their own order)."""
    want_in = [s.name for s in artifact.inputs]
    want_out = [s.name for s in artifact.outputs]
    if sorted(got_inputs) != sorted(want_in) or sorted(got_outputs) != sorted(want_out):
        raise ExportError(
            f"{artifact.key}: the {what} has inputs {list(got_inputs)} and outputs {list(got_outputs)}; "
            f"the artifact declares inputs {want_in} and outputs {want_out}."
        )


JSON_FIELDS = ("bucket", "inputs", "outputs", "states", "model_config")
"""Fields of a self-description that formats storing strings keep as JSON."""


def decode_description(pairs: dict[str, str], prefix: str) -> dict:
    """A self-description back from string key/value metadata written under ``prefix``."""
    out = {}
    for key, value in pairs.items():
        if key.startswith(prefix):
            name = key[len(prefix):]
            out[name] = json.loads(value) if name in JSON_FIELDS else value
    return out


def check_file_exists(artifact: Artifact) -> Path:
    path = Path(artifact.path)
    if not path.exists():
        raise ExportError(f"{artifact.key}: artifact file {path} does not exist.")
    return path


class FormatRegistry(Registry[Format]):
    """The format registry, with lookups by artifact kind (the manifest's ``format``)."""

    def kinds(self) -> list[ArtifactKind]:
        """Every artifact kind of every registered format, in registry order."""
        return [kind for name in self for kind in self.get(name).kinds]

    def kind_names(self) -> list[str]:
        return [k.name for k in self.kinds()]

    def for_kind(self, kind_name: str) -> Format:
        """The format that writes artifacts of kind ``kind_name``.

        Raises:
            RegistryError: no registered format writes that kind (lists the known kinds).
        """
        for name in self:
            fmt = self.get(name)
            if any(k.name == kind_name for k in fmt.kinds):
                return fmt
        names = self.kind_names()
        close = difflib.get_close_matches(kind_name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RegistryError(f"Unknown artifact format {kind_name!r}.{hint} Valid: {', '.join(names)}.")

    def kind_of(self, kind_name: str) -> ArtifactKind:
        return next(k for k in self.for_kind(kind_name).kinds if k.name == kind_name)


FORMATS: FormatRegistry = FormatRegistry("export format")
