"""The int8 accuracy budget: how close int8 masks must stay to the float model's.

Measured over a bucket's golden sequence (real frames, the state carried by the model under
test itself, resets where the golden has them) against the float reference masks of that
golden (``expected_masks``), masks thresholded at 0.5:

- ``iou_mean``: mean over frames of IoU(int8, float);
- ``boundary_iou_mean``: mean over frames of Boundary IoU(int8, float): the boundary is
  where quantization shows first and where users see it;
- temporal consistency: the mean consecutive-frame IoU of the int8 masks may be lower than
  the float masks' by at most ``max_temporal_drop`` (int8 must not add flicker).

The export measures the budget over a :class:`CheckSequence`: the bucket's golden and
held-out clips of other people (never calibrated or trained on) back to back, each from a
reset, so a budget that holds only on the calibration clip's scene does not pass.

Per-frame minima and the largest probability error are reported too. The export pipeline
also holds int8 artifacts to the per-frame parity floors of their precision
(device_tests/parity.py); fallback engages when either misses (docs/quantization.md).

The golden is duck-typed (``frames``, ``resets``, ``expected_masks``; see
:class:`backdrop.export.goldens.Golden`) so that this module does not depend on the export stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from backdrop.core.errors import ConfigError
from backdrop.core.metrics import boundary_iou, iou, temporal_consistency

MASK_THRESHOLD = 0.5


@dataclass(frozen=True)
class AccuracyBudget:
    """What an int8 artifact must keep of the float model's masks (module docstring).

    Attributes:
        min_iou: mean IoU against float over the golden frames.
        min_boundary_iou: mean Boundary IoU against float.
        max_temporal_drop: float's mean consecutive-frame IoU minus int8's, at most.
        max_float_fraction: the fallback may keep at most this fraction of the model's units
            in float; past it the export fails (int8 would be mostly float anyway).
    """

    min_iou: float = 0.97
    min_boundary_iou: float = 0.90
    max_temporal_drop: float = 0.01
    max_float_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("min_iou", "min_boundary_iou", "max_float_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"Accuracy budget {name} must be in [0, 1], got {v}.")
        if not 0.0 <= self.max_temporal_drop <= 1.0:
            raise ConfigError(f"Accuracy budget max_temporal_drop must be in [0, 1], got {self.max_temporal_drop}.")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Quality:
    """int8 (or any candidate) masks against the float reference over one golden sequence."""

    frames: int
    iou_mean: float
    iou_min: float
    boundary_iou_mean: float
    boundary_iou_min: float
    temporal_iou_float: float
    temporal_iou: float
    max_abs_error: float
    mean_abs_error: float

    @property
    def temporal_drop(self) -> float:
        return self.temporal_iou_float - self.temporal_iou

    def misses(self, budget: AccuracyBudget) -> list[str]:
        """Human-readable reasons the budget is missed; empty when it holds."""
        out = []
        if self.iou_mean < budget.min_iou:
            out.append(f"mean IoU {self.iou_mean:.4f} < {budget.min_iou}")
        if self.boundary_iou_mean < budget.min_boundary_iou:
            out.append(f"mean Boundary IoU {self.boundary_iou_mean:.4f} < {budget.min_boundary_iou}")
        if self.temporal_drop > budget.max_temporal_drop:
            out.append(
                f"temporal IoU {self.temporal_iou:.4f} is {self.temporal_drop:.4f} below float's "
                f"{self.temporal_iou_float:.4f} (> {budget.max_temporal_drop})"
            )
        return out

    def to_dict(self) -> dict:
        return {**asdict(self), "temporal_drop": self.temporal_drop}


def measure_quality(masks: np.ndarray, golden) -> Quality:
    """Compare (N, 1, H, W) probabilities with ``golden.expected_masks``.

    Raises:
        ConfigError: shapes differ.
    """
    ref = golden.expected_masks
    if masks.shape != ref.shape:
        raise ConfigError(f"Masks of shape {masks.shape} cannot be compared with a golden of {ref.shape}.")
    a = masks[:, 0] >= MASK_THRESHOLD
    b = ref[:, 0] >= MASK_THRESHOLD
    ious = [iou(a[i], b[i]) for i in range(len(a))]
    bious = [boundary_iou(a[i], b[i]) for i in range(len(a))]
    err = np.abs(masks - ref)
    return Quality(
        frames=len(a),
        iou_mean=float(np.mean(ious)),
        iou_min=float(np.min(ious)),
        boundary_iou_mean=float(np.mean(bious)),
        boundary_iou_min=float(np.min(bious)),
        temporal_iou_float=float(np.mean(temporal_consistency(list(ref[:, 0]), threshold=MASK_THRESHOLD).static_iou)),
        temporal_iou=float(np.mean(temporal_consistency(list(masks[:, 0]), threshold=MASK_THRESHOLD).static_iou)),
        max_abs_error=float(err.max()),
        mean_abs_error=float(err.mean()),
    )


StepFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""One frame of an explicit-state model: ``(frame (1,3,H,W), prev_mask (1,1,H,W)) -> mask
(1,1,H,W)`` probabilities, float32. The mask is fed back as the next ``prev_mask``."""


@dataclass(frozen=True, eq=False)
class CheckSequence:
    """Several sequences of one bucket back to back, each from a reset: what the budget is
    measured over (the golden and the held-out clips together). Duck-types a golden for
    :func:`measure_quality` and :func:`run_explicit`.

    Attributes:
        names: each part's name, in order; ``spans``: its (start, stop) frame range.
        frames, resets, expected_masks: the parts' arrays concatenated.
    """

    names: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    frames: np.ndarray
    resets: np.ndarray
    expected_masks: np.ndarray

    def part(self, masks: np.ndarray, name: str) -> tuple[np.ndarray, CheckSequence]:
        """The frames of part ``name``: (its masks out of ``masks``, itself as a sequence)."""
        a, b = self.spans[self.names.index(name)]
        return masks[a:b], CheckSequence((name,), ((0, b - a),), self.frames[a:b], self.resets[a:b], self.expected_masks[a:b])


def combine_sequences(parts: dict) -> CheckSequence:
    """``{name: golden-like}`` -> one :class:`CheckSequence` (every part must start with a reset).

    Raises:
        ConfigError: a part does not start with a reset, or the parts' frame shapes differ.
    """
    spans, start = [], 0
    for name, g in parts.items():
        if not bool(g.resets[0]):
            raise ConfigError(f"Budget sequence {name!r} must start with a reset.")
        spans.append((start, start + len(g.frames)))
        start += len(g.frames)
    shapes = {tuple(g.frames.shape[1:]) for g in parts.values()}
    if len(shapes) != 1:
        raise ConfigError(f"Budget sequences of one bucket must share a frame shape, got {sorted(shapes)}.")
    return CheckSequence(
        tuple(parts), tuple(spans),
        np.concatenate([g.frames for g in parts.values()]).astype(np.float32),
        np.concatenate([np.asarray(g.resets, bool) for g in parts.values()]),
        np.concatenate([g.expected_masks for g in parts.values()]).astype(np.float32),
    )


def run_explicit(step: StepFn, golden) -> np.ndarray:
    """Roll ``golden`` through ``step`` with the state fed back (zeros at each reset)."""
    masks = np.empty(golden.expected_masks.shape, np.float32)
    state = np.zeros((1, *golden.expected_masks.shape[1:]), np.float32)
    for i in range(len(golden.frames)):
        if golden.resets[i]:
            state = np.zeros_like(state)
        out = np.asarray(step(np.ascontiguousarray(golden.frames[i : i + 1], np.float32), state), np.float32)
        masks[i] = out.reshape(masks.shape[1:])
        state = out.reshape(state.shape)
    return masks


__all__ = ["AccuracyBudget", "CheckSequence", "Quality", "StepFn", "combine_sequences", "measure_quality", "run_explicit"]
