"""This machine's runtimes as a device: ExecuTorch, ONNX Runtime and PyTorch Lite on the CPU.

- ExecuTorch ``.pte``: ``executorch.runtime`` (XNNPACK linked in); inputs and outputs by
  position in the artifact's declared order. Every sequence loads the program afresh, and the
  native form's ``mask_state`` is cleared by ``reset = 1.0`` on frame 0 (reloading a method
  does not clear a mutable buffer; measured).
- ONNX ``.onnx`` and its ORT-format twin ``.ort``: ``onnxruntime.InferenceSession`` on the CPU
  execution provider, fed by the artifact's input names. Explicit state only (ONNX has no
  runtime-kept state).
- PyTorch Lite ``.ptl``: ``torch.jit.mobile._load_for_lite_interpreter``; both state forms;
  int8 files are loaded and run with the qnnpack quantized engine (PyTorch Mobile's on arm64).
- Core ML cannot run on Linux: ``can_run`` is False and the reason says to run
  ``backdrop parity`` on macOS.
"""

from __future__ import annotations

import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from backdrop.device_tests.base import DEVICES, DeviceError, feedback_loop
from backdrop.export.artifact import Artifact
from backdrop.export.goldens import Golden

# format -> (state forms this host runs, runtime package names for versions)
_SUPPORT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "executorch": (("explicit", "native"), ("executorch", "torch")),
    "onnx": (("explicit",), ("onnxruntime",)),
    "ort": (("explicit",), ("onnxruntime",)),
    "torchscript-lite": (("explicit", "native"), ("torch",)),
}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@DEVICES.register("host")
class HostDevice:
    """The runtimes installed in this Python environment, on this machine's CPU.

    Args:
        onnx_threads: intra-op threads for ONNX Runtime sessions (0 = its default).
    """

    name = "host"

    def __init__(self, onnx_threads: int = 0) -> None:
        self.tier = f"host-{platform.machine()}"
        self.onnx_threads = onnx_threads

    def why_not(self, artifact: Artifact) -> str:
        if artifact.format == "coreml":
            return "Core ML runs only on macOS/iOS; run `backdrop parity` on a Mac for the real check."
        if artifact.format not in _SUPPORT:
            return f"no runtime here for format {artifact.format!r} (runs: {', '.join(_SUPPORT)})."
        forms, _ = _SUPPORT[artifact.format]
        if artifact.state_form not in forms:
            return f"{artifact.format} runs only the {', '.join(forms)} state form(s) here, not {artifact.state_form!r}."
        return ""

    def can_run(self, artifact: Artifact) -> bool:
        return not self.why_not(artifact)

    def runtime_versions(self, artifact: Artifact) -> dict[str, str]:
        versions = {"python": platform.python_version(), "machine": platform.machine()}
        for package in _SUPPORT.get(artifact.format, ((), ()))[1]:
            versions[package] = _version(package)
        return versions

    def run_sequence(self, artifact: Artifact, golden: Golden) -> np.ndarray:
        return feedback_loop(artifact, golden, self._open(artifact), f"{self.name} ({self.tier})")

    def time_interleaved(
        self, artifacts: list[Artifact], golden: Golden, warmup: int = 3, runs: int = 15
    ) -> dict[str, list[float]]:
        """Milliseconds per call of each artifact on the golden's first frame (state reset),
        the artifacts timed in turn within each round (order alternating) so that machine load
        and clock changes hit all alike: compare them as ratios of medians, not absolutes.

        Raises:
            DeviceError: an artifact cannot run here.
        """
        calls, feeds = {}, {}
        for art in artifacts:
            calls[art.key] = self._open(art)
            frame = golden.frames[0][None].astype(np.dtype(art.inputs[0].dtype))
            second = art.inputs[1]
            fill = 1.0 if art.state_form == "native" else 0.0  # a reset / an empty previous mask
            feeds[art.key] = [frame, np.full(second.shape, fill, np.dtype(second.dtype))]
        for _ in range(warmup):
            for key, call in calls.items():
                call(feeds[key])
        times: dict[str, list[float]] = {key: [] for key in calls}
        keys = list(calls)
        for i in range(runs):
            for key in keys if i % 2 == 0 else keys[::-1]:
                t0 = time.perf_counter()
                calls[key](feeds[key])
                times[key].append((time.perf_counter() - t0) * 1e3)
        return times

    def _open(self, artifact: Artifact):
        """Load ``artifact`` in its runtime: the per-frame call of its runner.

        Raises:
            DeviceError: no runtime here for it, or its file is missing.
        """
        reason = self.why_not(artifact)
        if reason:
            raise DeviceError(f"{artifact.key} cannot run on {self.name} ({self.tier}): {reason}")
        path = Path(artifact.path)
        if not path.exists():
            raise DeviceError(f"{artifact.key}: artifact file {path} does not exist.")
        runner = {
            "executorch": self._executorch,
            "onnx": self._onnxruntime,
            "ort": self._onnxruntime,
            "torchscript-lite": self._lite,
        }[artifact.format]
        return runner(artifact, path)

    # One runner per runtime: build the per-frame call ``inputs (numpy, declared order) ->
    # outputs (numpy, declared order)``; the state loop lives in base.feedback_loop.

    def _executorch(self, artifact: Artifact, path: Path):
        import torch
        from executorch.runtime import Runtime

        try:
            method = Runtime.get().load_program(path).load_method("forward")
        except Exception as e:  # the runtime raises plain RuntimeError/ValueError on bad files
            raise DeviceError(f"{artifact.key}: ExecuTorch could not load {path}: {e}") from e
        meta = method.metadata
        if meta.num_inputs() != len(artifact.inputs) or meta.num_outputs() != len(artifact.outputs):
            raise DeviceError(
                f"{artifact.key}: the .pte's forward takes {meta.num_inputs()} inputs and returns "
                f"{meta.num_outputs()} outputs; the artifact declares {len(artifact.inputs)} and "
                f"{len(artifact.outputs)}."
            )

        def call(inputs: list[np.ndarray]) -> list[np.ndarray]:
            outs = method.execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
            # Outputs live in the method's planned memory: copy before the next execute.
            return [o.detach().numpy().copy() for o in outs]

        return call

    def _onnxruntime(self, artifact: Artifact, path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.onnx_threads:
            options.intra_op_num_threads = self.onnx_threads
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise DeviceError(f"{artifact.key}: ONNX Runtime could not load {path}: {e}") from e
        in_names = [i.name for i in session.get_inputs()]
        out_names = [o.name for o in session.get_outputs()]
        want_in = [s.name for s in artifact.inputs]
        want_out = [s.name for s in artifact.outputs]
        if sorted(in_names) != sorted(want_in) or sorted(out_names) != sorted(want_out):
            raise DeviceError(
                f"{artifact.key}: the ONNX graph has inputs {in_names} and outputs {out_names}; "
                f"the artifact declares inputs {want_in} and outputs {want_out}."
            )

        def call(inputs: list[np.ndarray]) -> list[np.ndarray]:
            return session.run(want_out, dict(zip(want_in, inputs)))

        return call

    def _lite(self, artifact: Artifact, path: Path):
        import contextlib

        import torch
        from torch.jit.mobile import _load_for_lite_interpreter

        # int8 files hold qnnpack-packed weights, repacked for the engine active at load time:
        # load and run them under qnnpack, as PyTorch Mobile does on arm64 phones.
        engine = contextlib.nullcontext
        if artifact.precision == "int8":
            from backdrop.quantization.qnnpack_int8 import qnnpack_engine as engine
        try:
            with engine():
                module = _load_for_lite_interpreter(str(path))
        except Exception as e:  # torch raises RuntimeError with the loader's message
            raise DeviceError(f"{artifact.key}: PyTorch Lite could not load {path}: {e}") from e

        def call(inputs: list[np.ndarray]) -> list[np.ndarray]:
            with engine(), torch.no_grad():
                out = module(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
            outs = out if isinstance(out, (tuple, list)) else (out,)
            return [o.detach().numpy().copy() for o in outs]

        return call


__all__ = ["HostDevice"]
