"""The contract between an artifact and the code that feeds it, written once.

Everything an app, a device or a report needs to know about how an artifact is called lives
here, and every other place serialises it from here: each format's in-file metadata
(ONNX ``metadata_props``, Core ML ``user_defined_metadata``, the PyTorch Lite extra file), the
manifest (``state_contract`` and each artifact's ``feedback`` / ``reset``), the device loop that
carries the state (device_tests/base.py) and the wrappers that implement it (models/wrappers.py).

The two state forms:

- **explicit**: ``forward(frame, prev_mask) -> (mask, next_mask)``. The caller keeps the state:
  zeros as ``prev_mask`` on a first frame and after a reset, otherwise the previous call's
  ``next_mask`` unchanged.
- **native**: ``forward(frame, reset) -> mask``. The runtime keeps the previous mask in the state
  tensor :data:`STATE_NAME` (zeros when loaded); the caller passes ``reset = 1.0`` on a first
  frame and after a reset, 0.0 otherwise.

Tensors (N = 1, bucket H x W, NCHW, float32 unless an artifact says float16): see
:func:`io_specs`.
"""

from __future__ import annotations

from dataclasses import dataclass

from backdrop.core.errors import ConfigError

STATE_FORMS = ("explicit", "native")
"""Every artifact comes in one of these; a format says which it supports."""

STATE_NAME = "mask_state"
"""The runtime-kept state tensor of the native form."""


@dataclass(frozen=True)
class StateRule:
    """How one state form is called.

    Attributes:
        form: "explicit" or "native".
        inputs: input names in call order.
        outputs: output names in call order.
        contract: the whole rule for people (the manifest's ``state_contract``).
        feedback: what the caller feeds back between calls (manifest entry ``feedback``).
        reset: how the caller resets the state (manifest entry ``reset``); a format may add an
            alternative of its own (:attr:`Format.reset_alternative`).
        in_file: the rule as stored inside the artifact file.
    """

    form: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    contract: str
    feedback: str
    reset: str
    in_file: str

    @property
    def call(self) -> str:
        return f"forward({', '.join(self.inputs)}) -> " + (
            f"({', '.join(self.outputs)})" if len(self.outputs) > 1 else self.outputs[0]
        )


STATE_RULES: dict[str, StateRule] = {
    "explicit": StateRule(
        form="explicit",
        inputs=("frame", "prev_mask"),
        outputs=("mask", "next_mask"),
        contract=(
            "Call forward(frame, prev_mask) -> (mask, next_mask). Pass all-zero prev_mask on the first frame and "
            "after a reset (scene cut, camera switch, bucket change); otherwise pass the previous call's next_mask "
            "unchanged (float, not thresholded)."
        ),
        feedback="feed next_mask back as prev_mask on the next call; zeros after a reset",
        reset="pass an all-zero prev_mask",
        in_file=(
            "Feed output 'next_mask' back as input 'prev_mask' on the next call; pass zeros as "
            "'prev_mask' on the first frame and after a reset (scene cut, camera switch)."
        ),
    ),
    "native": StateRule(
        form="native",
        inputs=("frame", "reset"),
        outputs=("mask",),
        contract=(
            "Call forward(frame, reset) -> mask. The runtime keeps the previous mask in the state tensor (starts at "
            "zeros). Pass reset=1.0 on the first frame and after a reset (scene cut, camera switch, bucket change), "
            "0.0 otherwise. One loaded model instance per camera stream: the state is per instance."
        ),
        feedback=f"nothing: the runtime keeps {STATE_NAME}",
        reset="pass reset=1.0 for that frame",
        in_file=(
            f"The runtime keeps the previous mask in '{STATE_NAME}' (zeros when loaded). Pass reset=1.0 "
            "on the first frame and after a scene cut or camera switch, else 0.0"
        ),
    ),
}


def state_rule(form: str) -> StateRule:
    """The rule of a state form.

    Raises:
        ConfigError: an unknown form (the message lists the valid ones).
    """
    try:
        return STATE_RULES[form]
    except KeyError:
        raise ConfigError(f"unknown state form {form!r}; valid: {', '.join(STATE_FORMS)}.") from None


def state_contract() -> dict[str, str]:
    """The manifest's ``state_contract``: form -> the rule for people."""
    return {form: rule.contract for form, rule in STATE_RULES.items()}


def reset_text(form: str, alternative: str = "") -> str:
    """How to reset, with a format's own alternative (e.g. a ``reset()`` method) appended."""
    text = state_rule(form).reset
    return f"{text}, or {alternative}" if alternative and form == "native" else text


def in_file_rule(form: str, alternative: str = "") -> str:
    """The rule as stored in an artifact file; native forms add the format's alternative."""
    rule = state_rule(form)
    if form == "native":
        return rule.in_file + (f"; or {alternative}." if alternative else ".")
    return rule.in_file


@dataclass(frozen=True)
class TensorSpec:
    """One input, output or state tensor of an artifact.

    Attributes:
        name: the exact name the runtime uses (ONNX/Core ML feature names; for ExecuTorch and
            PyTorch Lite, which bind by position, the documented name of that position).
        shape: static shape.
        dtype: "float32" or "float16".
        layout: "NCHW" for images, "C" for the reset flag.
        value_range: (low, high) of valid values.
        meaning: what the app puts in or gets out.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    layout: str
    value_range: tuple[float, float]
    meaning: str

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
            "range": list(self.value_range),
            "meaning": self.meaning,
        }

    @classmethod
    def from_dict(cls, d: dict) -> TensorSpec:
        return cls(d["name"], tuple(d["shape"]), d["dtype"], d["layout"], tuple(d["range"]), d["meaning"])


def io_specs(
    state_form: str, height: int, width: int, dtype: str = "float32"
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """(inputs, outputs, states) of an artifact of ``state_form`` at one bucket size.

    Raises:
        ConfigError: an unknown state form.
    """
    rule = state_rule(state_form)
    frame = TensorSpec(
        "frame", (1, 3, height, width), dtype, "NCHW", (0.0, 1.0),
        "Y, U, V planes of the frame after the bucket resize and replicate padding, BT.601 full range, uint8 / 255",
    )
    mask = TensorSpec(
        "mask", (1, 1, height, width), dtype, "NCHW", (0.0, 1.0),
        "person probability at bucket size; binary mask = mask >= 0.5; crop the padding and resize to the frame",
    )
    if rule.form == "explicit":
        prev = TensorSpec(
            "prev_mask", (1, 1, height, width), dtype, "NCHW", (0.0, 1.0),
            "the previous call's next_mask; all zeros on the first frame and after a reset",
        )
        nxt = TensorSpec("next_mask", (1, 1, height, width), dtype, "NCHW", (0.0, 1.0), "state to pass as prev_mask next call")
        return (frame, prev), (mask, nxt), ()
    reset = TensorSpec(
        "reset", (1,), dtype, "C", (0.0, 1.0),
        "1.0 on the first frame, after a scene cut or camera switch (clears the state); else 0.0",
    )
    state = TensorSpec(
        STATE_NAME, (1, 1, height, width), dtype, "NCHW", (0.0, 1.0), "previous mask kept by the runtime; starts at zeros"
    )
    return (frame, reset), (mask,), (state,)


@dataclass(frozen=True)
class SelfDescription:
    """What an artifact says about itself inside its own file (and, field for field, in the
    manifest): one shape for every format. Formats serialise :meth:`fields` under their own
    key prefix (``backdrop.`` in ONNX ``metadata_props``, ``com.backdrop.`` in Core ML).

    Attributes:
        version: the backdrop version that wrote it.
        format: the registered format name.
        precision: "fp32", "fp16", "int8", "palette6".
        state_form: "explicit" or "native".
        bucket: name, height, width.
        inputs, outputs, states: the tensor specs.
        feedback: the state rule as stored in files (:func:`in_file_rule`).
        model_config: the checkpoint's architecture config, when the model has one.
        torch_version: the torch that traced it.
    """

    version: str
    format: str
    precision: str
    state_form: str
    bucket: dict
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    states: tuple[TensorSpec, ...]
    feedback: str
    model_config: dict | None
    torch_version: str

    def fields(self) -> dict:
        """Ordered plain data: name -> str or JSON-able value."""
        out = {
            "version": self.version,
            "format": self.format,
            "precision": self.precision,
            "state_form": self.state_form,
            "bucket": dict(self.bucket),
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "states": [s.to_dict() for s in self.states],
            "feedback": self.feedback,
        }
        if self.model_config is not None:
            out["model_config"] = dict(self.model_config)
        out["torch_version"] = self.torch_version
        return out


__all__ = [
    "STATE_FORMS",
    "STATE_NAME",
    "STATE_RULES",
    "SelfDescription",
    "StateRule",
    "TensorSpec",
    "in_file_rule",
    "io_specs",
    "reset_text",
    "state_contract",
    "state_rule",
]
