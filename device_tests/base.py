"""The device interface: somewhere an artifact can be run over a golden sequence.

A device (this host's runtimes, arm64 under emulation, an Android phone over adb, an iPhone)
takes an exported :class:`~backdrop.export.artifact.Artifact` and a
:class:`~backdrop.export.goldens.Golden` and returns the artifact's mask after every frame,
with the mask feedback state carried the way the artifact's state form says:

- explicit (``(frame, prev_mask) -> (mask, next_mask)``): the device's loop keeps the state,
  feeding each call's ``next_mask`` back as the next ``prev_mask`` and zeros wherever
  ``golden.resets`` is True;
- native (``(frame, reset) -> mask``): the runtime keeps the state; the loop passes
  ``reset = 1.0`` wherever ``golden.resets`` is True and 0.0 otherwise.

The parity check (device_tests/parity.py) does not care where the artifact ran. A new device
is one module with a class registered in :data:`DEVICES`.
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import numpy as np

from backdrop.errors import BackdropError
from backdrop.export.artifact import Artifact, TensorSpec
from backdrop.export.goldens import Golden
from backdrop.registry import Registry


class DeviceError(BackdropError):
    """A device cannot run an artifact: unsupported format, the runtime rejected the file, or
    the artifact's real inputs/outputs differ from what it declares. The message names the
    artifact, the device and what differs."""


@runtime_checkable
class Device(Protocol):
    """Where artifacts run.

    Attributes:
        name: registry name, e.g. "host".
        tier: what kind of machine, e.g. "host-x86_64", "emulator-arm64", "phone-pixel8".
    """

    name: str
    tier: str

    def can_run(self, artifact: Artifact) -> bool:
        """Whether this device has a runtime for the artifact's format and state form."""
        ...

    def why_not(self, artifact: Artifact) -> str:
        """Why :meth:`can_run` is False (empty when it is True), for reports."""
        ...

    def runtime_versions(self, artifact: Artifact) -> dict[str, str]:
        """Versions of the runtime(s) that run ``artifact`` here, for parity records."""
        ...

    def run_sequence(self, artifact: Artifact, golden: Golden) -> np.ndarray:
        """Run every frame of ``golden`` through ``artifact`` in order.

        Args:
            artifact: an artifact of ``golden.bucket``.
            golden: the sequence; ``golden.frames`` are the inputs, ``golden.resets`` where
                the state is reset.

        Returns:
            float32 (N, 1, H_b, W_b): the artifact's ``mask`` output after each frame.

        Raises:
            DeviceError: the device cannot run the artifact, or its structure (input/output
                names, count, shapes) differs from the artifact's declared specs.
        """
        ...


DEVICES: Registry[type] = Registry("device")
"""Device classes by name; ``DEVICES.get(name)()`` builds one. Use :func:`get_device`, which
also imports the built-in device modules."""

BUILTIN_DEVICE_MODULES = ("backdrop.device_tests.host", "backdrop.device_tests.coreml_mac")
"""Modules that register a device when imported; listed explicitly (one discovery mechanism)."""


def get_device(name: str) -> Device:
    """A device by registry name (e.g. "host").

    Raises:
        RegistryError: unknown name; the message lists the valid ones.
    """
    for module in BUILTIN_DEVICE_MODULES:
        importlib.import_module(module)
    return DEVICES.get(name)()


def check_sequence_inputs(artifact: Artifact, golden: Golden) -> None:
    """Raise :class:`DeviceError` unless ``artifact`` and ``golden`` are of the same bucket and
    the artifact declares the I/O of its state form (wrappers.py / artifact.io_specs)."""
    if artifact.bucket != golden.bucket:
        raise DeviceError(
            f"{artifact.key}: artifact bucket {artifact.bucket} but golden bucket {golden.bucket}; "
            "run each artifact on its own bucket's golden."
        )
    want = {"explicit": (["frame", "prev_mask"], ["mask", "next_mask"]), "native": (["frame", "reset"], ["mask"])}
    if artifact.state_form not in want:
        raise DeviceError(f"{artifact.key}: unknown state form {artifact.state_form!r}; valid: explicit, native.")
    ins, outs = want[artifact.state_form]
    got_in, got_out = [s.name for s in artifact.inputs], [s.name for s in artifact.outputs]
    if got_in != ins or got_out != outs:
        raise DeviceError(
            f"{artifact.key}: a {artifact.state_form}-state artifact must declare inputs {ins} and outputs "
            f"{outs} in that order; it declares inputs {got_in} and outputs {got_out}."
        )


def check_output(artifact: Artifact, spec: TensorSpec, value: np.ndarray, frame: int, device: str) -> np.ndarray:
    """``value`` as float32 after checking its shape against ``spec``; raises DeviceError."""
    arr = np.asarray(value)
    if tuple(arr.shape) != tuple(spec.shape):
        raise DeviceError(
            f"{artifact.key} on {device}: output {spec.name!r} at frame {frame} has shape "
            f"{tuple(arr.shape)}, the artifact declares {tuple(spec.shape)}."
        )
    return arr.astype(np.float32, copy=False)


def feedback_loop(artifact: Artifact, golden: Golden, call, device: str) -> np.ndarray:
    """Roll ``golden`` through ``call`` with the artifact's state contract.

    The runtime-independent part of every device: ``call(inputs) -> outputs`` runs one frame,
    ``inputs`` being numpy arrays in the artifact's input order and dtypes and ``outputs`` the
    outputs in its output order. Explicit: ``prev_mask`` is zeros where ``golden.resets`` is
    True, else the previous ``next_mask``. Native: ``reset`` is 1.0 where ``golden.resets`` is
    True, else 0.0.

    Returns:
        float32 (N, 1, H_b, W_b) masks.
    """
    check_sequence_inputs(artifact, golden)
    dtypes = [np.dtype(s.dtype) for s in artifact.inputs]
    frame_spec, second = artifact.inputs
    masks = np.empty(golden.expected_masks.shape, np.float32)
    state = None
    for i in range(golden.num_frames):
        frame = golden.frames[i][None].astype(dtypes[0])
        if artifact.state_form == "explicit":
            if golden.resets[i] or state is None:
                state = np.zeros(second.shape, dtypes[1])
            feed = [frame, state.astype(dtypes[1], copy=False)]
        else:
            feed = [frame, np.full(second.shape, 1.0 if golden.resets[i] else 0.0, dtypes[1])]
        outs = list(call(feed))
        if len(outs) != len(artifact.outputs):
            raise DeviceError(
                f"{artifact.key} on {device}: returned {len(outs)} outputs at frame {i}; it declares "
                f"{len(artifact.outputs)} ({', '.join(s.name for s in artifact.outputs)})."
            )
        checked = [check_output(artifact, s, o, i, device) for s, o in zip(artifact.outputs, outs)]
        masks[i] = checked[0][0]
        if artifact.state_form == "explicit":
            state = checked[1]
    return masks


__all__ = [
    "BUILTIN_DEVICE_MODULES",
    "DEVICES",
    "Device",
    "DeviceError",
    "check_output",
    "check_sequence_inputs",
    "feedback_loop",
    "get_device",
]
