"""ExecuTorch ``.pte`` lowered to the XNNPACK delegate (Android and iOS CPU).

Both state forms. The native form keeps the previous mask in a mutable buffer
(``mask_state``); ExecuTorch does not serialise a mutated buffer's initial value unless
``InitializedMutableBufferPass`` names it, so it is named here (otherwise the first frame
would see uninitialised memory). Inputs and outputs bind by position, in io_specs order.

Every compute op must land in XNNPACK: the per-artifact delegation summary is kept in
``Artifact.delegation`` and ``reports/delegation.{json,md}`` is written from it.

Precision "int8" (static w8a8, per-channel weights; :mod:`backdrop.quantization.xnnpack_int8`):
the wrapper is PT2E-quantized on a calibration set computed here from ``request.model`` and
``request.bucket`` (real frames of training people with the float model's feedback loop,
:func:`backdrop.quantization.calibration.cached_calibration_inputs`; cached per model object and
bucket within the process, so both state forms share one set), then lowered exactly as fp32
and held to the same full-delegation rule. ``Artifact.details["calibration"]`` names and hashes
the set. Both state forms: the native form's ``mask_state`` mutation survives PT2E (the two
forms' int8 masks over a golden: docs/quantization.md, "Measured").
"""

from __future__ import annotations

import numpy as np
import torch

from backdrop.export.artifact import Artifact, DelegationSummary, io_specs
from backdrop.export.formats.base import (
    FORMATS,
    ArtifactKind,
    ExportError,
    ExportRequest,
    FrameRunner,
    OfflineCheck,
    check_file_exists,
)
from backdrop.models.wrappers import STATE_NAME, example_inputs, wrap

# Graph bookkeeping that legitimately stays outside a delegate: not computation.
NON_COMPUTE_OPS = frozenset({"getitem", "output", "placeholder"})


def delegation_summary(graph_module) -> DelegationSummary:
    """Delegated vs non-delegated ops of a lowered graph, as plain data."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    df = info.get_operator_delegation_dataframe()
    ops = {
        row.op_type: {
            "delegated": int(row.occurrences_in_delegated_graphs), "outside": int(row.occurrences_in_non_delegated_graphs)
        }
        for row in df.itertuples()
        if row.op_type != "Total"
    }
    outside_compute = {op: c["outside"] for op, c in ops.items() if c["outside"] and op not in NON_COMPUTE_OPS}
    return DelegationSummary(
        delegate="XnnpackBackend",
        delegated_subgraphs=int(info.num_delegated_subgraphs),
        delegated_nodes=int(info.num_delegated_nodes),
        non_delegated_nodes=int(info.num_non_delegated_nodes),
        compute_ops_outside=outside_compute,
        ops=ops,
    )


class ExecuTorchFormat:
    name = "executorch"
    runtime = "executorch-xnnpack"
    summary = "ExecuTorch program (.pte) lowered to the XNNPACK delegate (Android and iOS CPU)"
    state_forms = ("explicit", "native")
    precisions = ("fp32", "int8")
    kinds = (ArtifactKind("executorch", ".pte", "executorch-xnnpack", ("explicit", "native"), "ExecuTorch program (XNNPACK)"),)
    reset_alternative = ""
    runtime_packages = ("executorch", "torch")
    color = "tab:blue"
    int8_speedup_target: float | None = 1.8
    """int8 over fp32 on every bucket (docs/quantization.md)."""

    def why_not_here(self, artifact: Artifact) -> str:
        return "" if artifact.state_form in self.state_forms else f"no {artifact.state_form!r} state form"

    def check_offline(self, artifact: Artifact) -> OfflineCheck | None:
        return None

    def read_description(self, artifact: Artifact) -> dict | None:
        return None  # a .pte carries no free-form metadata; the manifest describes it

    def load(self, artifact: Artifact, threads: int = 0) -> FrameRunner:
        """``executorch.runtime`` with XNNPACK linked in; inputs and outputs by position. The
        native form's mutable buffer persists across calls; ``reset = 1.0`` clears it (reloading
        a method does not)."""
        from executorch.runtime import Runtime

        path = check_file_exists(artifact)
        try:
            method = Runtime.get().load_program(path).load_method("forward")
        except Exception as e:  # the runtime raises plain RuntimeError/ValueError on bad files
            raise ExportError(f"{artifact.key}: ExecuTorch could not load {path}: {e}") from e
        meta = method.metadata
        if meta.num_inputs() != len(artifact.inputs) or meta.num_outputs() != len(artifact.outputs):
            raise ExportError(
                f"{artifact.key}: the .pte's forward takes {meta.num_inputs()} inputs and returns "
                f"{meta.num_outputs()} outputs; the artifact declares {len(artifact.inputs)} and "
                f"{len(artifact.outputs)}."
            )

        def call(inputs):
            outs = method.execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
            # Outputs live in the method's planned memory: copy before the next execute.
            return [o.detach().numpy().copy() for o in outs]

        return call

    def export(self, request: ExportRequest) -> list[Artifact]:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
        from executorch.exir.passes.init_mutable_pass import InitializedMutableBufferPass

        if request.precision not in self.precisions:
            raise ExportError(
                f"Format {self.name!r} cannot export precision {request.precision!r} yet; "
                f"supported: {', '.join(self.precisions)}."
            )
        b = request.bucket
        wrapper = wrap(request.model, request.state_form, b.height, b.width)
        inputs_ = example_inputs(request.state_form, b.height, b.width)
        details: dict = {}
        if request.precision == "int8":
            from backdrop.quantization.calibration import cached_calibration_inputs
            from backdrop.quantization.xnnpack_int8 import QuantizationError, quantize_for_xnnpack

            calibration = cached_calibration_inputs(request.model, b)
            try:
                wrapper = quantize_for_xnnpack(wrapper, inputs_, calibration, float_units=request.float_units)
            except QuantizationError as e:
                raise ExportError(f"ExecuTorch int8 of {b.name}/{request.state_form}: {e}") from e
            details["calibration"] = calibration.describe()
            details["quantization"] = {
                "scheme": "PT2E static, XNNPACKQuantizer (symmetric config)",
                "weights": "int8 symmetric, per output channel",
                "activations": "int8 per tensor, affine, MinMax observers",
                "float_units": list(request.float_units),
                "float_ops": wrapper.meta["backdrop_float_ops"],
            }
        try:
            with torch.no_grad():
                ep = torch.export.export(wrapper, inputs_)
            edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
        except Exception as e:
            raise ExportError(f"ExecuTorch lowering of {b.name}/{request.state_form} failed: {e}") from e
        summary = delegation_summary(edge.exported_program().graph_module)
        if summary.compute_ops_outside:
            ops = ", ".join(f"{op} x{n}" for op, n in summary.compute_ops_outside.items())
            raise ExportError(
                f"ExecuTorch/XNNPACK cannot take {ops} in {b.name}/{request.state_form}: these ops would run "
                "in the portable CPU kernels, splitting the graph. Rewrite them in delegate-friendly form "
                "(docs/models.md, 'Padding')."
            )
        passes = [InitializedMutableBufferPass([STATE_NAME])] if request.state_form == "native" else []
        program = edge.to_executorch(ExecutorchBackendConfig(passes=passes))
        request.out_dir.mkdir(parents=True, exist_ok=True)
        path = request.out_dir / f"model-executorch-{request.precision}-{request.state_form}.pte"
        path.write_bytes(program.buffer)
        inputs, outputs, states = io_specs(request.state_form, b.height, b.width)
        return [
            Artifact(
                path=path,
                format=self.name,
                runtime=self.runtime,
                precision=request.precision,
                state_form=request.state_form,
                bucket=b,
                inputs=inputs,
                outputs=outputs,
                states=states,
                delegation=summary,
                details={
                    "method": "forward",
                    "binding": "positional, in the order listed",
                    **details,
                },
            )
        ]

    def int8_probe(self, request: ExportRequest) -> XnnpackInt8Probe:
        """The fallback search's probe: the PT2E-converted graph run in torch (quantize /
        dequantize simulated in float, as XNNPACK's int8 kernels compute it up to rounding)."""
        return XnnpackInt8Probe(request)


class XnnpackInt8Probe:
    """:class:`backdrop.quantization.fallback.Int8Probe` for ExecuTorch/XNNPACK int8."""

    runtime = "PT2E reference graph in torch (explicit state)"

    def __init__(self, request: ExportRequest) -> None:
        from backdrop.quantization.calibration import cached_calibration_inputs
        from backdrop.quantization.units import fallback_units

        self.request = request
        self.units = tuple(fallback_units(request.model))
        self.calibration = cached_calibration_inputs(request.model, request.bucket)

    def build(self, float_units):
        from backdrop.quantization.xnnpack_int8 import quantize_for_xnnpack

        b = self.request.bucket
        gm = quantize_for_xnnpack(
            wrap(self.request.model, "explicit", b.height, b.width),
            example_inputs("explicit", b.height, b.width),
            self.calibration,
            float_units=tuple(float_units),
        )

        def step(frame, prev_mask):
            with torch.no_grad():
                mask, _ = gm(torch.from_numpy(frame), torch.from_numpy(prev_mask))
            return mask.numpy()

        return step


FORMATS.add("executorch", ExecuTorchFormat())
