"""The golden sequence as the native runner reads it, and the masks it writes back.

Sequence file (``*.bdsq``), little-endian, version 1 or 2 (docs/devices.md, "Sequence files"):

    offset  field
    0       magic b"BDSQ"
    4       uint32 version (1, or 2 with camera buffers)
    8       uint32 state form (0 explicit, 1 native)
    12      uint32 frames N
    16      uint32 channels C (3: Y, U, V)
    20      uint32 height H (the bucket's)
    24      uint32 width W
    28      N x uint8 resets (1 where the state is reset before the frame; frame 0 is 1)
    28+N    N x C x H x W float32 model inputs (the golden's ``frames``: NCHW planes / 255)

Version 2 appends the camera buffers the model inputs were made from, for the runner's
end-to-end mode (``--e2e``: it preprocesses each buffer itself with preprocess.cpp, held
bit-exact to the reference by ``backdrop conformance``, and maps each mask back):

    D       (D = 28 + N + 4*N*C*H*W) 12 x uint32: layout (0 NV21, 1 NV12, 2 I420),
            color_range (0 full, 1 video), camera width, camera height, row_stride (0: packed),
            buffer_bytes B, then the placement: scaled_height, scaled_width, pad_top,
            pad_bottom, pad_left, pad_right (``buckets.plan``; the runner checks its own plan
            against it)
    D+48    N x B bytes camera buffers

Masks file (``masks.f32``): N x H x W float32, the artifact's ``mask`` output after each frame.
With ``--e2e`` the runner also writes ``camera_masks.f32``: N x camera height x camera width
float32, each mask mapped back with ``from_bucket``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backdrop.core.buckets import Placement
from backdrop.core.contract import STATE_FORMS
from backdrop.core.fsutil import atomic_write
from backdrop.device_tests.base import DeviceError

MAGIC = b"BDSQ"
VERSION = 1
VERSION_CAMERA = 2
_HEADER = struct.Struct("<4sIIIIII")
_CAMERA = struct.Struct("<12I")
CAMERA_LAYOUTS = ("nv21", "nv12", "i420")
CAMERA_RANGES = ("full", "video")


@dataclass(frozen=True)
class CameraFrames:
    """The camera buffers of a sequence (version 2), one per frame.

    Attributes:
        layout: ``nv21``, ``nv12`` or ``i420`` (docs/frames.md).
        width, height: the camera frame's size.
        buffers: uint8 (N, B), each the whole camera buffer.
        placement: the frame's placement in the sequence's bucket.
        row_stride: bytes per row of both planes; 0 for packed rows.
        color_range: ``full`` or ``video``.
    """

    layout: str
    width: int
    height: int
    buffers: np.ndarray
    placement: Placement
    row_stride: int = 0
    color_range: str = "full"

    @classmethod
    def from_golden(cls, golden) -> CameraFrames:
        """A golden's camera buffers (packed, full range) and placement."""
        from backdrop.core.buckets import plan

        return cls(golden.camera_format, golden.camera_width, golden.camera_height, golden.camera_buffers,
                   plan(golden.camera_height, golden.camera_width, golden.bucket))


def write_sequence(
    frames: np.ndarray, resets: np.ndarray, state_form: str, path: str | os.PathLike, camera: CameraFrames | None = None
) -> Path:
    """Write model inputs ``frames`` (float32 (N, 3, H, W)) and ``resets`` (bool (N,)) for an
    artifact of ``state_form`` (a golden's ``frames`` / ``resets``, or a prefix of them); with
    ``camera``, a version-2 file that also carries the camera buffers (``--e2e``).

    Raises:
        DeviceError: an unknown state form, no frames, frames and resets of other lengths, or
            camera buffers that do not fit the frames.
    """
    if state_form not in STATE_FORMS:
        raise DeviceError(f"unknown state form {state_form!r}; valid: {', '.join(STATE_FORMS)}.")
    x = np.ascontiguousarray(frames, dtype="<f4")
    if x.ndim != 4 or len(x) < 1 or len(resets) != len(x):
        raise DeviceError(f"a sequence needs N >= 1 frames (N, C, H, W) and N resets, got {x.shape} and {len(resets)}.")
    n, c, h, w = x.shape
    camera_block = b""
    if camera is not None:
        bufs = np.ascontiguousarray(camera.buffers, dtype=np.uint8)
        p = camera.placement
        if (bufs.ndim != 2 or len(bufs) != n or camera.layout not in CAMERA_LAYOUTS or camera.color_range not in CAMERA_RANGES
                or (p.bucket.height, p.bucket.width) != (h, w) or (p.src_height, p.src_width) != (camera.height, camera.width)):
            raise DeviceError(
                f"camera buffers {bufs.shape} ({camera.layout}, {camera.color_range}, {camera.height}x{camera.width} in "
                f"{p.bucket.height}x{p.bucket.width}) do not fit {n} frames of {h}x{w}."
            )
        camera_block = _CAMERA.pack(
            CAMERA_LAYOUTS.index(camera.layout), CAMERA_RANGES.index(camera.color_range), camera.width, camera.height,
            camera.row_stride, bufs.shape[1], p.scaled_height, p.scaled_width, p.pad_top, p.pad_bottom, p.pad_left,
            p.pad_right,
        ) + bufs.tobytes()
    path = Path(path)
    with atomic_write(path) as f:
        f.write(_HEADER.pack(MAGIC, VERSION_CAMERA if camera else VERSION, STATE_FORMS.index(state_form), n, c, h, w))
        f.write(np.asarray(resets).astype(np.uint8).tobytes())
        f.write(x.tobytes())
        f.write(camera_block)
    return path


def read_sequence_header(path: str | os.PathLike) -> dict:
    """The header fields of a sequence file (for checks and tests)."""
    with open(path, "rb") as f:
        raw = f.read(_HEADER.size)
    if len(raw) < _HEADER.size:
        raise DeviceError(f"{path}: {len(raw)} bytes, shorter than a sequence header ({_HEADER.size}).")
    magic, version, form, n, c, h, w = _HEADER.unpack(raw)
    if magic != MAGIC or version not in (VERSION, VERSION_CAMERA):
        raise DeviceError(
            f"{path}: not a version-{VERSION} or -{VERSION_CAMERA} sequence file (magic {magic!r}, version {version})."
        )
    header = {"state_form": STATE_FORMS[form], "frames": n, "channels": c, "height": h, "width": w}
    if version == VERSION_CAMERA:
        with open(path, "rb") as f:
            f.seek(_HEADER.size + n + 4 * n * c * h * w)
            fields = _CAMERA.unpack(f.read(_CAMERA.size))
        header["version"] = version
        header["camera"] = {"layout": CAMERA_LAYOUTS[fields[0]], "color_range": CAMERA_RANGES[fields[1]],
                            "width": fields[2], "height": fields[3], "row_stride": fields[4], "buffer_bytes": fields[5]}
    return header


def _read_f32(path: str | os.PathLike, frames: int, height: int, width: int, shape: tuple[int, ...],
              what: str, hint: str = "") -> np.ndarray:
    """A raw little-endian float32 file of N x H x W values the runner wrote, as float32 of
    ``shape``; DeviceError naming ``what`` when it is missing or of another size."""
    path = Path(path)
    want = frames * height * width * 4
    if not path.exists():
        raise DeviceError(f"the runner wrote no {what} file {path}{hint}.")
    got = path.stat().st_size
    if got != want:
        raise DeviceError(f"{path}: {got} bytes, expected {frames} x {height} x {width} float32 = {want}.")
    return np.fromfile(path, dtype="<f4").reshape(shape).astype(np.float32)


def read_masks(path: str | os.PathLike, frames: int, height: int, width: int) -> np.ndarray:
    """The runner's masks as float32 (N, 1, H, W).

    Raises:
        DeviceError: the file is missing or its size is not N x H x W float32.
    """
    return _read_f32(path, frames, height, width, (frames, 1, height, width), "masks")


def read_camera_masks(path: str | os.PathLike, frames: int, height: int, width: int) -> np.ndarray:
    """The runner's ``--e2e`` camera masks as float32 (N, height, width).

    Raises:
        DeviceError: the file is missing or its size is not N x height x width float32.
    """
    return _read_f32(path, frames, height, width, (frames, height, width), "camera masks", " (was it run with --e2e?)")


__all__ = [
    "MAGIC",
    "VERSION",
    "VERSION_CAMERA",
    "CameraFrames",
    "read_camera_masks",
    "read_masks",
    "read_sequence_header",
    "write_sequence",
]
