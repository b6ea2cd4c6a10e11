"""The golden sequence as the native runner reads it, and the masks it writes back.

Sequence file (``*.bdsq``), little-endian, version 1 (docs/devices.md, "Sequence files"):

    offset  field
    0       magic b"BDSQ"
    4       uint32 version (1)
    8       uint32 state form (0 explicit, 1 native)
    12      uint32 frames N
    16      uint32 channels C (3: Y, U, V)
    20      uint32 height H (the bucket's)
    24      uint32 width W
    28      N x uint8 resets (1 where the state is reset before the frame; frame 0 is 1)
    28+N    N x C x H x W float32 model inputs (the golden's ``frames``: NCHW planes / 255)

Masks file (``masks.f32``): N x H x W float32, the artifact's ``mask`` output after each frame.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from backdrop.core.contract import STATE_FORMS
from backdrop.core.fsutil import atomic_write
from backdrop.device_tests.base import DeviceError

MAGIC = b"BDSQ"
VERSION = 1
_HEADER = struct.Struct("<4sIIIIII")


def write_sequence(frames: np.ndarray, resets: np.ndarray, state_form: str, path: str | os.PathLike) -> Path:
    """Write model inputs ``frames`` (float32 (N, 3, H, W)) and ``resets`` (bool (N,)) for an
    artifact of ``state_form`` (a golden's ``frames`` / ``resets``, or a prefix of them).

    Raises:
        DeviceError: an unknown state form, no frames, or frames and resets of other lengths.
    """
    if state_form not in STATE_FORMS:
        raise DeviceError(f"unknown state form {state_form!r}; valid: {', '.join(STATE_FORMS)}.")
    x = np.ascontiguousarray(frames, dtype="<f4")
    if x.ndim != 4 or len(x) < 1 or len(resets) != len(x):
        raise DeviceError(f"a sequence needs N >= 1 frames (N, C, H, W) and N resets, got {x.shape} and {len(resets)}.")
    n, c, h, w = x.shape
    path = Path(path)
    with atomic_write(path) as f:
        f.write(_HEADER.pack(MAGIC, VERSION, STATE_FORMS.index(state_form), n, c, h, w))
        f.write(np.asarray(resets).astype(np.uint8).tobytes())
        f.write(x.tobytes())
    return path


def read_sequence_header(path: str | os.PathLike) -> dict:
    """The header fields of a sequence file (for checks and tests)."""
    with open(path, "rb") as f:
        raw = f.read(_HEADER.size)
    if len(raw) < _HEADER.size:
        raise DeviceError(f"{path}: {len(raw)} bytes, shorter than a sequence header ({_HEADER.size}).")
    magic, version, form, n, c, h, w = _HEADER.unpack(raw)
    if magic != MAGIC or version != VERSION:
        raise DeviceError(f"{path}: not a version-{VERSION} sequence file (magic {magic!r}, version {version}).")
    return {"state_form": STATE_FORMS[form], "frames": n, "channels": c, "height": h, "width": w}


def read_masks(path: str | os.PathLike, frames: int, height: int, width: int) -> np.ndarray:
    """The runner's masks as float32 (N, 1, H, W).

    Raises:
        DeviceError: the file is missing or its size is not N x H x W float32.
    """
    path = Path(path)
    want = frames * height * width * 4
    if not path.exists():
        raise DeviceError(f"the runner wrote no masks file {path}.")
    got = path.stat().st_size
    if got != want:
        raise DeviceError(f"{path}: {got} bytes, expected {frames} x {height} x {width} float32 = {want}.")
    return np.fromfile(path, dtype="<f4").reshape(frames, 1, height, width).astype(np.float32)


__all__ = ["MAGIC", "VERSION", "read_masks", "read_sequence_header", "write_sequence"]
