"""Golden sequences: real camera frames for one bucket, with the reference output after each.

A golden is what every artifact of a bucket is checked against (device_tests/parity.py) and
what app code can test itself against (scripts/run_from_manifest.py). It is built from a real
video (the carphone clip by default, never random tensors) and holds each frame three ways:
the camera buffer an app receives (NV21 on Android, NV12 on iOS), the model input the bucket
rule makes of it, and the float PyTorch reference's probability after that frame, which is
also the state the next frame is fed.

Framing (the crop rule). A source frame of ``h x w`` is centre-cropped to the bucket's aspect
ratio so that the whole bucket is picture, not padding, and the crop has even sides (a 4:2:0
buffer then has whole chroma samples). With ``Hb x Wb`` the bucket, in exact integers:

    if w * Hb >= h * Wb:    # source at least as wide as the bucket: keep the height
        ch = h - h % 2
        cw = 2 * ((ch * Wb + Hb) div (2 * Hb))        # ch * Wb / Hb rounded half up to even
    else:                   # source narrower: keep the width
        cw = w - w % 2
        ch = 2 * ((cw * Hb + Wb) div (2 * Wb))
    cw, ch = clamp(cw, 2, w - w % 2), clamp(ch, 2, h - h % 2)
    top = (h - ch) div 2;  left = (w - cw) div 2

The 144x176 carphone frame becomes 132x176 for ``landscape_4x3`` (192x256), 98x176 for
``landscape_16x9``, 144x80 for ``portrait_9x16``, 144x108 for ``portrait_3x4`` and 144x144 for
``square_1x1``. The crop is re-encoded as a fresh camera buffer, so an odd ``top`` or ``left``
does not shift chroma siting.

Sequence. Frames 0 .. N-1 of the source in order, cropped, converted to the camera buffer
(:func:`backdrop.core.frames.yuv_to_nv21` / ``yuv_to_nv12``: chroma is the 2x2 mean), then decoded
back (``nv21_to_yuv`` / ``nv12_to_yuv``: nearest chroma upsampling) exactly as an app would,
and only the decoded frame goes on: bucket placement, resize and padding, / 255, model. The
state is reset before frame 0 and before frame ``reset_at`` (mid-sequence), so a golden checks
the initial state, the carried state, and the reset.

File format (:func:`save_golden`): one ``.npz`` (``np.savez_compressed``, no pickled objects;
``np.load(path, allow_pickle=False)`` reads it) with exactly the keys of :data:`NPZ_KEYS`:

    schema                 str ()        "backdrop-golden/1"
    bucket_name            str ()        e.g. "landscape_16x9"
    bucket_size            int64 (2,)    [Hb, Wb]
    camera_format          str ()        "nv21" (Android) or "nv12" (iOS), BT.601 full range
    camera_size            int64 (2,)    [h, w] of the camera frame (after the crop)
    frame_names            str (N,)      source frame names, e.g. "frame_00000"
    camera_buffers         uint8 (N, B)  packed 4:2:0 buffers, B = h*w + 2*ceil(h/2)*ceil(w/2)
    frames                 float32 (N, 3, Hb, Wb)  model input: Y, U, V / 255 in the bucket
    resets                 bool (N,)     True where the state is reset before the frame
    expected_masks         float32 (N, 1, Hb, Wb)  reference probability = state after frame
    expected_camera_masks  float32 (N, h, w)       that probability mapped back to the frame
    placement              str ()        JSON of Placement.to_dict() (pads, scaled size)
    source                 str ()        where the frames came from (file, sha256, crop)
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backdrop.core.buckets import Bucket, BucketSet, crop_box, plan
from backdrop.core.errors import BackdropError, ConfigError, InputError
from backdrop.core.frames import nv12_to_yuv, nv21_to_yuv, yuv_to_nv12, yuv_to_nv21
from backdrop.core.fsutil import atomic_write, file_sha256
from backdrop.core.sources import iter_frames
from backdrop.models import Segmenter
from backdrop.models.reference import ReferencePredictor, bucket_input

SCHEMA = "backdrop-golden/1"
CAMERA_FORMATS = ("nv21", "nv12")
MIN_FRAMES = 30
"""The issue's floor: a golden has at least this many frames, with a reset in the middle."""

NPZ_KEYS = (
    "schema",
    "bucket_name",
    "bucket_size",
    "camera_format",
    "camera_size",
    "frame_names",
    "camera_buffers",
    "frames",
    "resets",
    "expected_masks",
    "expected_camera_masks",
    "placement",
    "source",
)

_ENCODE = {"nv21": yuv_to_nv21, "nv12": yuv_to_nv12}
_DECODE = {"nv21": nv21_to_yuv, "nv12": nv12_to_yuv}


class GoldenError(BackdropError):
    """A golden file is missing, unreadable, or not a valid golden sequence."""


@dataclass
class Golden:
    """One bucket's golden sequence (see the module docstring for every field's contract).

    Attributes:
        bucket: the bucket the sequence is framed for.
        camera_format: "nv21" (Android) or "nv12" (iOS), BT.601 full range, packed rows.
        camera_height: camera frame height (rows), even.
        camera_width: camera frame width (columns), even.
        frame_names: N source frame names.
        camera_buffers: uint8 (N, nbytes), the buffer an app receives per frame.
        frames: float32 (N, 3, Hb, Wb), the model input (Y, U, V / 255 after the bucket rule),
            computed from the *decoded* camera buffer.
        resets: bool (N,), True where the state is reset before the frame (frame 0 and
            the mid-sequence reset).
        expected_masks: float32 (N, 1, Hb, Wb), reference probability after each frame; it is
            also the state the next frame gets (explicit ``next_mask`` / native ``mask_state``).
        expected_camera_masks: float32 (N, camera_height, camera_width), the probability mapped
            back to the camera frame (``from_bucket``).
        placement: ``Placement.to_dict()`` of the camera frame in the bucket.
        source: where the frames came from.
    """

    bucket: Bucket
    camera_format: str
    camera_height: int
    camera_width: int
    frame_names: list[str]
    camera_buffers: np.ndarray
    frames: np.ndarray
    resets: np.ndarray
    expected_masks: np.ndarray
    expected_camera_masks: np.ndarray
    placement: dict
    source: str

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    @property
    def reset_indices(self) -> list[int]:
        """Frames before which the state is reset (always includes 0)."""
        return [int(i) for i in np.flatnonzero(self.resets)]

    def prefix(self, frames: int) -> Golden:
        """The first ``frames`` frames, which must include every reset of the sequence (a
        prefix that stops before the mid-sequence reset would not check that a reset clears
        the state).

        Raises:
            GoldenError: ``frames`` is below 1 or stops before the last reset.
        """
        last = self.reset_indices[-1]
        if frames < 1 or frames <= last:
            raise GoldenError(
                f"Golden for bucket {self.bucket}: a prefix of {frames} frames leaves out the reset at frame {last}; "
                f"pass at least {last + 1} frames (the sequence has {self.num_frames})."
            )
        if frames >= self.num_frames:
            return self
        n = frames
        return dataclasses.replace(
            self, frame_names=self.frame_names[:n], camera_buffers=self.camera_buffers[:n], frames=self.frames[:n],
            resets=self.resets[:n], expected_masks=self.expected_masks[:n], expected_camera_masks=self.expected_camera_masks[:n],
        )

    def validate(self) -> None:
        """Check every array's dtype and shape against the others.

        Raises:
            GoldenError: naming the field and what was expected.
        """
        n = len(self.frame_names)
        hb, wb = self.bucket.height, self.bucket.width
        h, w = self.camera_height, self.camera_width
        if self.camera_format not in CAMERA_FORMATS:
            raise GoldenError(f"camera_format {self.camera_format!r} is not one of {', '.join(CAMERA_FORMATS)}.")
        nbytes = h * w + 2 * ((h + 1) // 2) * ((w + 1) // 2)
        expect = {
            "camera_buffers": (np.uint8, (n, nbytes)),
            "frames": (np.float32, (n, 3, hb, wb)),
            "resets": (np.bool_, (n,)),
            "expected_masks": (np.float32, (n, 1, hb, wb)),
            "expected_camera_masks": (np.float32, (n, h, w)),
        }
        for name, (dtype, shape) in expect.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape:
                got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
                raise GoldenError(
                    f"Golden for bucket {self.bucket}: {name} must be {np.dtype(dtype).name} {shape}, got {got}."
                )
        if n == 0 or not self.resets[0]:
            raise GoldenError(f"Golden for bucket {self.bucket}: needs frames, and a reset at frame 0.")


def make_golden(
    model: Segmenter,
    bucket: Bucket,
    camera_format: str = "nv21",
    num_frames: int = 40,
    reset_at: int = 20,
    source: str | os.PathLike | None = None,
) -> Golden:
    """Build the golden sequence of ``bucket`` from real video frames.

    Args:
        model: the float reference model (eval mode).
        bucket: the bucket to frame the sequence for.
        camera_format: "nv21" (Android) or "nv12" (iOS).
        num_frames: frames 0 .. num_frames-1 of the source, at least :data:`MIN_FRAMES`.
        reset_at: the mid-sequence frame before which the state is reset, 1 .. num_frames-1.
        source: a video file or image folder (:func:`backdrop.core.sources.iter_frames`); None for
            the carphone clip (:func:`backdrop.core.samples.carphone_clip`).

    Returns:
        The :class:`Golden`.

    Raises:
        ConfigError: bad camera format, frame count or reset position.
        InputError: the source is missing, unreadable or has fewer than ``num_frames`` frames.
    """
    if camera_format not in CAMERA_FORMATS:
        raise ConfigError(f"Unknown camera format {camera_format!r}; use 'nv21' (Android) or 'nv12' (iOS).")
    if num_frames < MIN_FRAMES:
        raise ConfigError(f"A golden sequence needs at least {MIN_FRAMES} frames, got num_frames={num_frames}.")
    if not 0 < reset_at < num_frames:
        raise ConfigError(
            f"reset_at must fall inside the sequence (1 .. {num_frames - 1}) so both sides of the reset "
            f"are checked; got {reset_at}."
        )
    if source is None:
        from backdrop.core.samples import carphone_clip

        source = carphone_clip()
    src = Path(source)
    decoded, names = [], []
    box = None
    for frame in iter_frames(src, num_frames):
        if box is None:
            box = crop_box(frame.height, frame.width, bucket)
            first_size = (frame.height, frame.width)
        elif (frame.height, frame.width) != first_size:
            raise InputError(
                f"{src}: frame {frame.name} is {frame.height}x{frame.width} but the first was "
                f"{first_size[0]}x{first_size[1]}; a golden source needs one frame size."
            )
        top, left, ch, cw = box
        crop = np.ascontiguousarray(frame.yuv[top : top + ch, left : left + cw])
        buf = _ENCODE[camera_format](crop)
        decoded.append((buf, _DECODE[camera_format](buf, cw, ch)))
        names.append(frame.name)
    if len(names) < num_frames:
        raise InputError(f"{src} has {len(names)} frames; the golden needs num_frames={num_frames}.")
    top, left, ch, cw = box

    predictor = ReferencePredictor(model, BucketSet((bucket,)))
    placement = plan(ch, cw, bucket)
    frames, masks, camera_masks, resets = [], [], [], []
    for i, (_, yuv) in enumerate(decoded):
        if i == reset_at:
            predictor.reset()
        state = np.zeros((bucket.height, bucket.width), np.float32)  # the input's image planes only
        frames.append(bucket_input(yuv, placement, state)[0, :3])
        result = predictor.step(yuv)
        masks.append(result.bucket_mask[None])
        camera_masks.append(result.mask)
        resets.append(result.reset)
    sha = file_sha256(src) if src.is_file() else "folder"
    return Golden(
        bucket=bucket,
        camera_format=camera_format,
        camera_height=ch,
        camera_width=cw,
        frame_names=names,
        camera_buffers=np.stack([b for b, _ in decoded]),
        frames=np.stack(frames).astype(np.float32),
        resets=np.array(resets, dtype=bool),
        expected_masks=np.stack(masks).astype(np.float32),
        expected_camera_masks=np.stack(camera_masks).astype(np.float32),
        placement=placement.to_dict(),
        source=(
            f"{src.name} (sha256 {sha}), frames 0..{num_frames - 1}, centre crop "
            f"{ch}x{cw} at top {top} left {left} of {first_size[0]}x{first_size[1]}"
        ),
    )


def save_golden(golden: Golden, path: str | os.PathLike) -> Path:
    """Write ``golden`` to ``path`` (.npz, keys :data:`NPZ_KEYS`) atomically.

    The file is written next to ``path`` under a temporary name and moved into place, so a
    reader never sees half a file.

    Returns:
        The path written.
    """
    golden.validate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "schema": np.array(SCHEMA),
        "bucket_name": np.array(golden.bucket.name),
        "bucket_size": np.array([golden.bucket.height, golden.bucket.width], dtype=np.int64),
        "camera_format": np.array(golden.camera_format),
        "camera_size": np.array([golden.camera_height, golden.camera_width], dtype=np.int64),
        "frame_names": np.array(golden.frame_names, dtype=str),
        "camera_buffers": golden.camera_buffers,
        "frames": golden.frames,
        "resets": golden.resets,
        "expected_masks": golden.expected_masks,
        "expected_camera_masks": golden.expected_camera_masks,
        "placement": np.array(json.dumps(golden.placement, sort_keys=True)),
        "source": np.array(golden.source),
    }
    with atomic_write(path) as f:
        np.savez_compressed(f, **arrays)
    return path


def load_golden(path: str | os.PathLike) -> Golden:
    """Read a golden written by :func:`save_golden`.

    Raises:
        GoldenError: the file is missing, not an npz, has other keys, another schema, or
            arrays that do not fit together; the message names the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise GoldenError(f"Golden file {path} does not exist. Re-run the export to write it.")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise GoldenError(f"Golden file {path} is not a readable .npz ({e}). Re-run the export.") from e
    missing = [k for k in NPZ_KEYS if k not in data]
    extra = sorted(set(data) - set(NPZ_KEYS))
    if missing or extra:
        raise GoldenError(f"Golden file {path}: missing keys {missing}, unexpected keys {extra}.")
    if str(data["schema"]) != SCHEMA:
        raise GoldenError(f"Golden file {path} has schema {str(data['schema'])!r}; this backdrop reads {SCHEMA!r}.")
    try:
        hb, wb = (int(v) for v in data["bucket_size"])
        h, w = (int(v) for v in data["camera_size"])
        return Golden(
            bucket=Bucket(str(data["bucket_name"]), hb, wb),
            camera_format=str(data["camera_format"]),
            camera_height=h,
            camera_width=w,
            frame_names=[str(s) for s in data["frame_names"]],
            camera_buffers=data["camera_buffers"],
            frames=data["frames"],
            resets=data["resets"],
            expected_masks=data["expected_masks"],
            expected_camera_masks=data["expected_camera_masks"],
            placement=json.loads(str(data["placement"])),
            source=str(data["source"]),
        )
    except (GoldenError, BackdropError, ValueError) as e:
        raise GoldenError(f"Golden file {path}: {e}") from e


__all__ = [
    "CAMERA_FORMATS",
    "MIN_FRAMES",
    "NPZ_KEYS",
    "SCHEMA",
    "Golden",
    "GoldenError",
    "crop_box",
    "load_golden",
    "make_golden",
    "save_golden",
]
