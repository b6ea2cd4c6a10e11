"""PyTorch Lite (``.ptl``): the legacy target for apps still on PyTorch Mobile.

PyTorch Lite (the lite interpreter, ``pytorch_android_lite`` / ``LibTorch-Lite``) is deprecated
upstream in favour of ExecuTorch; backdrop keeps it for apps that cannot move yet. One file per
bucket and state form, ``model-torchscript-lite-<precision>-<state form>.ptl``:

- **native**: ``forward(frame, reset) -> mask`` with the previous mask in the ``mask_state``
  buffer (serialized as zeros), plus an exported ``reset()`` method that clears it. Both
  ``reset = 1.0`` and ``run_method("reset")`` work; the buffer carries across ``forward`` calls.
- **explicit**: ``forward(frame, prev_mask) -> (mask, next_mask)``.

Precisions: ``fp32``, and ``int8`` for qnnpack (PyTorch Mobile's quantized engine on arm64):
the segmenter is replaced by its FX-quantized ``GraphModule``
(:func:`backdrop.quantization.qnnpack_int8.quantize_for_qnnpack`, calibrated on the real-frame
calibration set of the bucket, units of ``float_units`` left in float) before tracing, and the
file is saved, loaded and smoke-checked under the qnnpack engine against that quantized module.

How the file is made: the segmenter is traced at the bucket size (it is not scriptable:
``models/layers.py`` uses ``Literal`` type aliases and list arithmetic TorchScript rejects, and a
fixed-shape trace is what a per-bucket artifact wants anyway), the wrapper around it is
scripted (so ``reset()`` and the buffer survive), frozen (weights become constants, BatchNorm
folds into the convolutions), and saved with ``_save_for_lite_interpreter``. The artifact's
description goes into the file as the extra file :data:`METADATA_FILE` (JSON); Android reads it
with ``LiteModuleLoader.load(path, extraFiles, Device.CPU)``.

Not possible on Linux CPU wheels: ``torch.utils.mobile_optimizer.optimize_for_mobile`` asserts
"XNNPACK is not enabled", so the ``.ptl`` carries generic ``aten::_convolution`` ops rather than
XNNPACK-prepacked ones, and the Vulkan/Metal variants cannot be produced either. The lite
interpreter here is the host's (``torch.jit.mobile``): it checks the file loads, its operators
exist and its outputs match; a phone's ``pytorch_android_lite`` (last release 2.1.0) is not run.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch
from torch.jit.mobile import (
    LiteScriptModule,
    _export_operator_list,
    _get_model_bytecode_version,
    _load_for_lite_interpreter,
)

from backdrop.core.errors import ConfigError
from backdrop.export.artifact import Artifact, io_specs
from backdrop.export.formats.base import (
    FORMATS,
    ArtifactKind,
    ExportError,
    ExportRequest,
    FrameRunner,
    OfflineCheck,
    check_file_exists,
    checked_float_units,
)
from backdrop.models.wrappers import STATE_NAME, example_inputs, wrap
from backdrop.quantization.calibration import cached_calibration_inputs
from backdrop.quantization.qnnpack_int8 import (
    SCHEME,
    QnnpackQuantizationError,
    qnnpack_engine,
    quantize_for_qnnpack,
    quantized_modules,
)
from backdrop.quantization.units import fallback_units

METADATA_FILE = "backdrop.json"
"""Name of the extra file inside the ``.ptl`` that holds the artifact's description (JSON)."""

SMOKE_ATOL = 1e-3
"""Largest |lite interpreter - PyTorch| allowed in the smoke check, in probability units. Both
run PyTorch's CPU kernels; only BatchNorm folding changes the rounding. The parity check over
real frames lives in device_tests/."""

_MISSING_OPS = re.compile(r"Following ops cannot be found[^\[]*\[([^\]]*)\]")


class LiteFormat:
    """TorchScript for the PyTorch Lite interpreter; see the module docstring."""

    name = "torchscript-lite"
    runtime = "pytorch-lite"
    summary = "TorchScript for the PyTorch Lite interpreter (.ptl), the legacy PyTorch Mobile runtime"
    state_forms: tuple[str, ...] = ("native", "explicit")
    precisions: tuple[str, ...] = ("fp32", "int8")
    # Byte-identical across processes; within one, TorchScript's mangled class names differ.
    kinds = (
        ArtifactKind(
            "torchscript-lite", ".ptl", "pytorch-lite", ("native", "explicit"), "PyTorch Lite (TorchScript)",
            same_bytes_in_process=False,
        ),
    )
    reset_alternative = "call the module's reset() method"
    runtime_packages = ("torch",)
    color = "tab:green"
    int8_speedup_target: float | None = None

    def why_not_here(self, artifact: Artifact) -> str:
        return "" if artifact.state_form in self.state_forms else f"no {artifact.state_form!r} state form"

    def check_offline(self, artifact: Artifact) -> OfflineCheck | None:
        return None

    def read_description(self, artifact: Artifact) -> dict | None:
        """The :data:`METADATA_FILE` extra file inside the ``.ptl``."""
        extra = {METADATA_FILE: ""}
        engine = qnnpack_engine if artifact.precision == "int8" else contextlib.nullcontext
        with engine():
            torch.jit.load(str(check_file_exists(artifact)), _extra_files=extra)
        return json.loads(extra[METADATA_FILE])

    def load(self, artifact: Artifact, threads: int = 0) -> FrameRunner:
        """The lite interpreter in this torch; int8 files load and run under the qnnpack engine
        (their packed weights are repacked for the engine active at load time), as PyTorch
        Mobile does on arm64 phones."""
        path = check_file_exists(artifact)
        engine = qnnpack_engine if artifact.precision == "int8" else contextlib.nullcontext
        with engine():
            module = self._load(path, artifact)

        def call(inputs):
            with engine(), torch.no_grad():
                out = module(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
            outs = out if isinstance(out, (tuple, list)) else (out,)
            return [o.detach().numpy().copy() for o in outs]

        return call

    def export(self, request: ExportRequest) -> list[Artifact]:
        """Write ``model-torchscript-lite-<precision>-<state form>.ptl`` and check it in the
        lite interpreter (loads, operators present, outputs and state handling match PyTorch).

        Raises:
            ExportError: unsupported state form or precision; tracing/scripting failed; the
                lite interpreter lacks an op (named); the smoke check failed.
        """
        float_units = self._check_request(request)
        bucket, form = request.bucket, request.state_form
        inputs, outputs, states = io_specs(form, bucket.height, bucket.width)
        out_dir = Path(request.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"model-{self.name}-{request.precision}-{form}.ptl"
        artifact = Artifact(
            path=path, format=self.name, runtime=self.runtime, precision=request.precision,
            state_form=form, bucket=bucket, inputs=inputs, outputs=outputs, states=states,
        )

        quant: dict = {}
        segmenter: torch.nn.Module = request.model
        engine = contextlib.nullcontext()
        if request.precision == "int8":
            calibration = cached_calibration_inputs(request.model, bucket)
            try:
                segmenter = quantize_for_qnnpack(request.model, calibration, float_units)
            except QnnpackQuantizationError as e:
                raise ExportError(f"{artifact.key}: {e}") from e
            quant = {
                "calibration": calibration.describe(),
                "quantization": {
                    **SCHEME,
                    "float_units": list(float_units),
                    "quantized_modules": len(quantized_modules(segmenter)),
                },
            }
            engine = qnnpack_engine()
        with engine:
            scripted = self._script(request, artifact, segmenter)
            metadata = {**_describe(artifact, request), **quant}
            # Saved before anything runs the scripted module, so mask_state is serialized as zeros.
            scripted._save_for_lite_interpreter(str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})

            module = self._load(path, artifact)
            reference = wrap(request.model, form, bucket.height, bucket.width)
            reference.model = segmenter  # int8: the lite file must run the quantized graph as torch does
            diff = _smoke(module, reference, artifact)
        artifact.details = {
            "exporter": (
                "torch.jit.trace (segmenter) + torch.jit.script (wrapper) + torch.jit.freeze, "
                f"torch {torch.__version__}"
            ),
            "bytecode_version": _get_model_bytecode_version(str(path)),
            "metadata_file": METADATA_FILE,
            "methods": ["forward", "reset"] if form == "native" else ["forward"],
            "operators": sorted(_export_operator_list(module)),
            "optimize_for_mobile": False,
            "smoke_max_abs_diff": diff,
            **quant,
        }
        return [artifact]

    def int8_probe(self, request: ExportRequest) -> LiteInt8Probe:
        """The fallback search's probe: the qnnpack-quantized segmenter run in torch (explicit
        state), which is what the ``.ptl`` computes (the smoke check holds it to that)."""
        return LiteInt8Probe(request)

    def _check_request(self, request: ExportRequest) -> tuple[str, ...]:
        """Refuse what this format cannot make before anything is written; returns the float
        units (checked against the model's units)."""
        if request.state_form not in self.state_forms:
            raise ExportError(
                f"Format '{self.name}' cannot export state form '{request.state_form}': supported "
                f"state forms are {', '.join(self.state_forms)}."
            )
        if request.precision not in self.precisions:
            raise ExportError(
                f"Format '{self.name}' cannot export precision '{request.precision}': supported "
                f"precisions are {', '.join(self.precisions)}."
            )
        return checked_float_units(request, self.name)

    def _script(self, request: ExportRequest, artifact: Artifact, segmenter: torch.nn.Module) -> torch.jit.ScriptModule:
        """Trace ``segmenter`` (the float model, or its int8 ``GraphModule``) at the bucket
        size, script the state wrapper around it, freeze."""
        bucket, form = request.bucket, request.state_form
        wrapper = wrap(request.model, form, bucket.height, bucket.width)
        wrapper.model = segmenter
        frame, _ = example_inputs(form, bucket.height, bucket.width)
        model_input = torch.cat([frame, torch.zeros(1, 1, bucket.height, bucket.width)], dim=1)
        try:
            with torch.no_grad():
                # check_trace re-runs and re-traces the model (most of the export time); the
                # smoke check below compares the saved file in the lite interpreter instead.
                traced = torch.jit.trace(wrapper.model, (model_input,), check_trace=False)
            # Only the wrapper's copy changes; request.model stays the eager module.
            wrapper.model = traced
            scripted = torch.jit.script(wrapper)
            keep = ["reset", STATE_NAME] if form == "native" else []
            return torch.jit.freeze(scripted, preserved_attrs=keep)
        except (RuntimeError, torch.jit.Error) as e:
            raise ExportError(
                f"{artifact.key}: TorchScript could not compile the model for format '{self.name}': "
                f"{str(e).strip().splitlines()[0]}"
            ) from e

    def _load(self, path: Path, artifact: Artifact) -> LiteScriptModule:
        try:
            return _load_for_lite_interpreter(str(path))
        except RuntimeError as e:
            missing = _MISSING_OPS.search(str(e))
            if missing:
                ops = [o.strip().strip("'\"") for o in missing.group(1).split(",") if o.strip()]
                raise ExportError(
                    f"Format '{self.name}' cannot take op '{ops[0]}' ({artifact.key}): the lite "
                    f"interpreter has no kernel for {', '.join(ops)}. Rewrite that layer with other "
                    f"ops, or leave format '{self.name}' out of the target."
                ) from e
            raise ExportError(f"{artifact.key}: the lite interpreter cannot load {path.name}: {e}") from e


def _describe(artifact: Artifact, request: ExportRequest) -> dict:
    """The artifact's own description (backdrop.core.contract), stored in the file as :data:`METADATA_FILE`."""
    return artifact.description(
        request.model.config.to_dict(), torch.__version__, LiteFormat.reset_alternative
    ).fields()


def _smoke(module: LiteScriptModule, reference: torch.nn.Module, artifact: Artifact) -> float:
    """Run a short sequence through the lite interpreter and the PyTorch wrapper; return the
    largest difference. Native form: the loaded state is zeros, it carries over a call, and
    both ``reset()`` and ``reset=1.0`` clear it."""
    h, w = artifact.bucket.height, artifact.bucket.width
    gen = torch.Generator().manual_seed(0)
    frames = [torch.rand(1, 3, h, w, generator=gen) for _ in range(4)]
    diffs: list[tuple[str, float]] = []
    with torch.no_grad():
        if artifact.state_form == "native":
            keep, clear = torch.zeros(1), torch.ones(1)
            steps = [("fresh state", frames[0], keep), ("carried state", frames[1], keep)]
            for label, frame, reset in steps:
                diffs.append((label, _max_diff(module(frame, reset), reference(frame, reset))))
            module.run_method("reset")
            reference.reset()
            diffs.append(("after reset()", _max_diff(module(frames[2], keep), reference(frames[2], keep))))
            diffs.append(("reset=1.0", _max_diff(module(frames[3], clear), reference(frames[3], clear))))
        else:
            prev_lite = prev_ref = torch.zeros(1, 1, h, w)
            for i, frame in enumerate(frames[:2]):
                got, want = module(frame, prev_lite), reference(frame, prev_ref)
                diffs.append((f"call {i + 1}", max(_max_diff(g, e) for g, e in zip(got, want))))
                prev_lite, prev_ref = got[1], want[1]
    label, worst = max(diffs, key=lambda d: d[1])
    if not worst <= SMOKE_ATOL:
        raise ExportError(
            f"{artifact.key}: {artifact.path.name} in the lite interpreter differs from the PyTorch "
            f"wrapper by {worst:.3g} (max abs, allowed {SMOKE_ATOL}) at step '{label}'."
        )
    return worst


def _max_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    if got.shape != want.shape:
        return float("inf")
    return float((got - want).abs().max())


class LiteInt8Probe:
    """:class:`backdrop.quantization.fallback.Int8Probe` for PyTorch Lite int8 (qnnpack)."""

    runtime = "qnnpack-quantized segmenter in torch (explicit state)"

    def __init__(self, request: ExportRequest) -> None:
        self.request = request
        self.units: tuple[str, ...] = tuple(fallback_units(request.model))
        self.calibration = cached_calibration_inputs(request.model, request.bucket)

    def build(self, float_units: Collection[str]):
        """A :data:`backdrop.quantization.budget.StepFn` with ``float_units`` kept in float.

        Raises:
            ExportError: an unknown unit, or the quantization failed.
        """
        try:
            segmenter = quantize_for_qnnpack(self.request.model, self.calibration, tuple(float_units))
        except (ConfigError, QnnpackQuantizationError) as e:
            raise ExportError(f"PyTorch Lite int8 probe ({self.request.bucket.name}): {e}") from e

        def step(frame: np.ndarray, prev_mask: np.ndarray) -> np.ndarray:
            x = torch.cat([torch.from_numpy(frame), torch.from_numpy(prev_mask)], dim=1)
            with qnnpack_engine(), torch.no_grad():
                return torch.sigmoid(segmenter(x)).numpy()

        return step


FORMATS.add("torchscript-lite", LiteFormat())
