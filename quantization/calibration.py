"""Calibration sets for static int8 quantization: real frames with the feedback loop running.

The network sees its own previous mask as a 4th input channel, so calibrating on frames with
an all-zero 4th channel would set that channel's (and every downstream activation's) range
from an input distribution the deployed model never sees after its first frame. Here the
float model is run over consecutive real frames exactly as the app runs it (the
:class:`~backdrop.models.reference.ReferencePredictor` loop: mask fed back, reset at the start), and
each frame is recorded together with the state it was actually fed.

Frames (disjoint from the goldens). The goldens that parity checks against are frames
``0 .. 39`` of the carphone clip (:func:`backdrop.export.goldens.make_golden` defaults).
Calibration takes frames ``40 .. 40 + num_frames - 1`` of the same clip (the clip has 120
frames, so at most 80), so the int8 parameters are never fitted to the frames they are
judged on. Each frame is framed like a golden frame: centre crop to the bucket's aspect ratio
(:func:`backdrop.core.buckets.crop_box`), NV21 round trip (what an Android camera
delivers), bucket placement and resize.

Contract of :class:`CalibrationSet` (N frames, bucket H x W, NCHW float32):
    frames:     (N, 3, H, W)  Y, U, V in [0, 1]
    prev_masks: (N, 1, H, W)  the state each frame was fed (explicit ``prev_mask``); zeros
                              on frame 0 (reset), the float model's previous probability after
    resets:     (N,) float32  1.0 where the state was reset before the frame (native ``reset``)

The set is named (``calib-<bucket>-<source>-f<first>-<last>``) and hashed (sha256 over the
three arrays' shapes and bytes, and the model-independent framing) so a manifest can say
exactly what an int8 artifact was calibrated on.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from backdrop.core.buckets import Bucket, BucketSet, crop_box, plan
from backdrop.core.errors import ConfigError, InputError
from backdrop.core.frames import nv21_to_yuv, yuv_to_nv21
from backdrop.core.fsutil import file_sha256
from backdrop.core.sources import iter_frames
from backdrop.models import Segmenter
from backdrop.models.reference import ReferencePredictor, bucket_input

CALIBRATION_START = 40
"""First source frame used for calibration: the goldens use frames 0 .. 39."""
DEFAULT_NUM_FRAMES = 32


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """Real frames and the states the float model fed them (contract in the module docstring).

    Attributes:
        name: identifier for the manifest, e.g. ``calib-t-carphone_pristine-f40-71``.
        bucket: the bucket the frames are framed for.
        frames: float32 (N, 3, H, W), Y/U/V in [0, 1].
        prev_masks: float32 (N, 1, H, W), the state fed with each frame.
        resets: float32 (N,), 1.0 where the state was reset before the frame.
        source: where the frames came from (file name, sha256 of the file, frame range, crop).
        sha256: hex digest over the arrays (shape, dtype and bytes) and the name.
    """

    name: str
    bucket: Bucket
    frames: np.ndarray
    prev_masks: np.ndarray
    resets: np.ndarray
    source: str
    sha256: str = field(default="")

    def __post_init__(self) -> None:
        n, h, w = len(self.frames), self.bucket.height, self.bucket.width
        expect = {"frames": (n, 3, h, w), "prev_masks": (n, 1, h, w), "resets": (n,)}
        for key, shape in expect.items():
            arr = getattr(self, key)
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.shape != shape:
                got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
                raise ConfigError(f"CalibrationSet {self.name!r}: {key} must be float32 {shape}, got {got}.")
        if n == 0 or self.resets[0] != 1.0:
            raise ConfigError(f"CalibrationSet {self.name!r}: needs frames, and a reset at frame 0.")
        object.__setattr__(self, "sha256", self.digest())

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(self.name.encode())
        for arr in (self.frames, self.prev_masks, self.resets):
            h.update(str((arr.dtype.str, arr.shape)).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def explicit_inputs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(frame, prev_mask)`` per frame, each (1, C, H, W), for the explicit wrapper."""
        return [
            (torch.from_numpy(self.frames[i : i + 1].copy()), torch.from_numpy(self.prev_masks[i : i + 1].copy()))
            for i in range(self.num_frames)
        ]

    def native_inputs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(frame, reset)`` per frame, in order, for the native wrapper (its buffer carries
        the state, so the frames must be fed in this order, from a reset)."""
        return [
            (torch.from_numpy(self.frames[i : i + 1].copy()), torch.from_numpy(self.resets[i : i + 1].copy()))
            for i in range(self.num_frames)
        ]

    def inputs(self, state_form: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if state_form == "explicit":
            return self.explicit_inputs()
        if state_form == "native":
            return self.native_inputs()
        raise ConfigError(f"Unknown state form {state_form!r}; valid: explicit, native.")

    def describe(self) -> dict:
        """What a manifest / ``Artifact.details`` carries."""
        return {"name": self.name, "sha256": self.sha256, "frames": self.num_frames, "source": self.source}


def calibration_inputs(
    model: Segmenter,
    bucket: Bucket,
    num_frames: int = DEFAULT_NUM_FRAMES,
    start: int = CALIBRATION_START,
    source: str | os.PathLike | None = None,
) -> CalibrationSet:
    """Run real frames through the float ``model`` with the feedback loop; record the inputs.

    Args:
        model: the float model (eval mode) the int8 model is made from.
        bucket: the bucket to frame the frames for.
        num_frames: consecutive frames to record (state reset before the first only).
        start: first source frame; the default skips the golden frames 0 .. 39.
        source: a video file or image folder; None for the carphone clip.

    Raises:
        ConfigError: ``num_frames`` < 1 or ``start`` < 0.
        InputError: the source has fewer than ``start + num_frames`` frames.
    """
    if num_frames < 1 or start < 0:
        raise ConfigError(f"Calibration needs num_frames >= 1 and start >= 0, got {num_frames} and {start}.")
    if source is None:
        from backdrop.core.samples import carphone_clip

        source = carphone_clip()
    src = Path(source)
    predictor = ReferencePredictor(model, BucketSet((bucket,)))
    frames, prev_masks, resets, names = [], [], [], []
    state = np.zeros((bucket.height, bucket.width), np.float32)
    box = None
    for i, frame in enumerate(iter_frames(src, start + num_frames)):
        if i < start:
            continue
        if box is None:
            box = crop_box(frame.height, frame.width, bucket)
        top, left, ch, cw = box
        crop = np.ascontiguousarray(frame.yuv[top : top + ch, left : left + cw])
        yuv = nv21_to_yuv(yuv_to_nv21(crop), cw, ch)
        result = predictor.step(yuv)  # the float model, state fed back (reset on the first frame)
        if result.reset:
            state = np.zeros_like(state)
        x = bucket_input(yuv, plan(ch, cw, bucket), state)[0]  # the input it was just given
        frames.append(x[:3])
        prev_masks.append(x[3:4])
        resets.append(1.0 if result.reset else 0.0)
        names.append(frame.name)
        state = result.bucket_mask
    if len(names) < num_frames:
        raise InputError(
            f"{src} has {start + len(names)} frames; calibration needs frames {start} .. {start + num_frames - 1}."
        )
    sha = file_sha256(src) if src.is_file() else "folder"
    last = start + num_frames - 1
    return CalibrationSet(
        name=f"calib-{bucket.name}-{src.stem}-f{start}-{last}",
        bucket=bucket,
        frames=np.stack(frames).astype(np.float32),
        prev_masks=np.stack(prev_masks).astype(np.float32),
        resets=np.array(resets, dtype=np.float32),
        source=(
            f"{src.name} (sha256 {sha}), frames {start}..{last}, centre crop {box[2]}x{box[3]} at top "
            f"{box[0]} left {box[1]}, NV21 round trip"
        ),
    )


@dataclass(frozen=True)
class Stretch:
    """One run of consecutive frames of a calibration recipe, from a reset.

    Attributes:
        source: a training source of :data:`backdrop.models.data.SOURCES` (never a held-out one).
        start, num_frames: frames ``start .. start + num_frames - 1`` of a clip; a still has one.
        passes: a still is fed this many times in a row (the first from a reset, then with its
            own mask fed back, as an app sees a camera pointed at a still scene).
    """

    source: str
    start: int = 0
    num_frames: int = 1
    passes: int = 1


DIVERSE_RECIPE: tuple[Stretch, ...] = (
    Stretch("carphone_pristine", CALIBRATION_START, 12),
    Stretch("band_studio", 600, 12),
    Stretch("portrait_f1", passes=2),
    Stretch("smiling_man", passes=2),
    Stretch("friends_outdoors", passes=2),
    Stretch("group_indoor_2", passes=2),
    Stretch("football_coaches", passes=2),
    Stretch("walker_dog_horse", passes=2),
    Stretch("solvay_1927", passes=2),
)
"""The default calibration: 38 frames from the training split only (none of the held-out
people the int8 budget is also checked on): the carphone clip past the goldens, the band in the
studio, and seven stills from portrait to a 29-person group, each twice with the mask fed back.
Their media come from ``backdrop data`` (docs/training.md); carphone is bundled."""


def _stretch_path(stretch: Stretch) -> Path:
    from backdrop.models.data import source, source_file

    spec = source(stretch.source)
    if spec.split != "train":
        raise ConfigError(f"Calibration stretch {stretch.source!r} is a held-out source; calibrate on training sources only.")
    return source_file(spec)  # InputError naming `backdrop data` when the media are not fetched


def recipe_calibration_inputs(model: Segmenter, bucket: Bucket, recipe: tuple[Stretch, ...] = DIVERSE_RECIPE) -> CalibrationSet:
    """The calibration set of ``recipe``: each stretch framed like a golden (centre crop to the
    bucket's aspect, NV21 round trip), run through the float model from a reset with the mask
    fed back, concatenated in order.

    Raises:
        ConfigError: a stretch names a held-out source.
        InputError: a stretch's media is not fetched (says to run ``make data``), or is short.
    """
    parts = []
    for st in recipe:
        path = _stretch_path(st)
        frames = list(iter_frames(path, st.start + st.num_frames))[st.start:]
        if len(frames) < st.num_frames:
            raise InputError(f"{path} has {st.start + len(frames)} frames; calibration needs {st.start + st.num_frames}.")
        parts.append((st, path, [f for f in frames for _ in range(st.passes)]))
    predictor = ReferencePredictor(model, BucketSet((bucket,)))
    frames_, prev_masks, resets, described = [], [], [], []
    for st, path, frames in parts:
        predictor.reset()
        state = np.zeros((bucket.height, bucket.width), np.float32)
        for frame in frames:
            top, left, ch, cw = crop_box(frame.height, frame.width, bucket)
            crop = np.ascontiguousarray(frame.yuv[top : top + ch, left : left + cw])
            yuv = nv21_to_yuv(yuv_to_nv21(crop), cw, ch)
            result = predictor.step(yuv)
            if result.reset:
                state = np.zeros_like(state)
            x = bucket_input(yuv, plan(ch, cw, bucket), state)[0]
            frames_.append(x[:3])
            prev_masks.append(x[3:4])
            resets.append(1.0 if result.reset else 0.0)
            state = result.bucket_mask
        what = f"frames {st.start}..{st.start + st.num_frames - 1}" if st.num_frames > 1 else f"still x{st.passes}"
        described.append(f"{st.source}: {path.name} (sha256 {file_sha256(path)[:16]}), {what}")
    return CalibrationSet(
        name=f"calib-{bucket.name}-diverse-{len(recipe)}x-{len(frames_)}f",
        bucket=bucket,
        frames=np.stack(frames_).astype(np.float32),
        prev_masks=np.stack(prev_masks).astype(np.float32),
        resets=np.array(resets, dtype=np.float32),
        source="; ".join(described) + "; centre crop to the bucket's aspect, NV21 round trip, reset before each stretch",
    )


# (id(model), bucket) -> (model, CalibrationSet); the model is held so its id cannot be reused.
_CACHE: dict[tuple[int, Bucket], tuple[Segmenter, CalibrationSet]] = {}


def cached_calibration_inputs(model: Segmenter, bucket: Bucket) -> CalibrationSet:
    """:func:`recipe_calibration_inputs` of :data:`DIVERSE_RECIPE`, computed once per (model
    object, bucket) in this process, so every int8 format and state form of a bucket shares one
    set (and one hash in the manifest). Formats call this; they never import each other for it."""
    key = (id(model), bucket)
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not model:
        hit = (model, recipe_calibration_inputs(model, bucket))
        _CACHE[key] = hit
    return hit[1]


__all__ = [
    "CALIBRATION_START", "DIVERSE_RECIPE", "CalibrationSet", "Stretch", "cached_calibration_inputs", "calibration_inputs",
    "recipe_calibration_inputs",
]
