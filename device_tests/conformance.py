"""Conformance: the phone-side preprocessing held bit for bit to the Python reference.

For end-to-end timing the native runner (and later the Kotlin and Swift apps) turns camera
buffers into model inputs and masks back into frame masks itself. This module generates cases
(camera buffers of every size class, bucket, layout, colour range and row padding, plus every
golden frame of an export), runs them through an implementation from :data:`IMPLEMENTATIONS`
and compares each output with the reference's, bit for bit (float32 compared as their bits),
reporting the first difference. ``backdrop conformance --impl NAME`` is the command.

Per case an implementation returns four outputs, compared in this order:

    placement     6 ints: scaled_height, scaled_width, pad_top, pad_bottom, pad_left, pad_right
                  (backdrop/core/buckets.py ``plan``)
    yuv444        uint8 (H, W, 3): the camera buffer as Y, Cb, Cr, full range
                  (backdrop/core/frames.py ``nv21_to_yuv`` / ``nv12_to_yuv`` / ``i420_to_yuv``)
    model_input   float32 (3, Hb, Wb): models/reference.py ``bucket_input(yuv, placement, .)[0, :3]``
                  (value / 255 in float32, then ``to_bucket``)
    camera_mask   float32 (H, W): ``from_bucket(bucket_mask, placement)``

or a rejection (the buffer does not have the size its layout, width, height and row stride
give, or the stride is too small): then the reference must reject the case too. For a golden
frame the expected ``model_input`` and ``camera_mask`` are the golden's own ``frames`` and
``expected_camera_masks`` (the file, not a re-computation), and the bucket mask is its
``expected_masks``.

Implementations that are programs (``native``, ``native-arm64``, ``kotlin``; the Swift harness
is meant to do the same) read a case file and write a results file, little-endian:

Case file (``cases.bdcc``), version 1:

    offset  field
    0       magic b"BDCC"
    4       uint32 version (1)
    8       uint32 cases N
    12      N records, each:
              9 x uint32: name_bytes L, layout (0 NV21, 1 NV12, 2 I420), color_range (0 full,
                          1 video), width W, height H, row_stride S (0: packed rows), bucket
                          height Hb, bucket width Wb, buffer_bytes B
              L bytes     case name, UTF-8
              B bytes     the camera buffer (docs/frames.md "Plane layouts")
              Hb*Wb float32  the bucket mask to map back (row-major)

Results file (``results.bdcr``), version 1:

    0       magic b"BDCR"
    4       uint32 version (1)
    8       uint32 cases N (as in the case file, same order)
    12      N records, each: uint32 status, then
              status 1 (rejected): uint32 message bytes M, M bytes UTF-8 message
              status 0 (ok):       6 x uint32 placement (order above); H*W*3 uint8 yuv444;
                                   3*Hb*Wb float32 model_input; H*W float32 camera_mask

A program exits 0 when it wrote the results (rejections included), non-zero with one line on
stderr otherwise (backdrop-conformance: 2 for bad arguments or a malformed case file, 3 for a
failed write).

Adding an implementation (Kotlin, Swift): one module that registers a class in
:data:`IMPLEMENTATIONS` (a :class:`CaseFileImplementation` subclass whose ``command`` starts
the harness), and one import line at the end of this module.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backdrop.core.buckets import Bucket, BucketSet, from_bucket, load_buckets, plan
from backdrop.core.errors import BackdropError, BucketError, FrameError
from backdrop.core.frames import (
    i420_to_yuv,
    nv12_to_yuv,
    nv21_to_yuv,
    yuv_to_i420,
    yuv_to_nv12,
    yuv_to_nv21,
)
from backdrop.core.fsutil import atomic_write
from backdrop.core.registry import Registry

CASES_MAGIC = b"BDCC"
RESULTS_MAGIC = b"BDCR"
VERSION = 1
LAYOUTS = ("nv21", "nv12", "i420")
COLOR_RANGES = ("full", "video")
OUTPUTS = ("placement", "yuv444", "model_input", "camera_mask")
PLACEMENT_FIELDS = ("scaled_height", "scaled_width", "pad_top", "pad_bottom", "pad_left", "pad_right")
SIZE_CLASSES = (("tiny", 16), ("small", 240), ("medium", 720), ("large", 1 << 16))
"""A generated case's class by its longer side: up to 16, 240, 720 pixels, or more."""
DEFAULT_CASES = 300
BINARY_ENV = "BACKDROP_CONFORMANCE"
"""Path of a backdrop-conformance binary to use instead of the one ``make native-runner`` builds."""
RUN_TIMEOUT_S = 1800
_BATCH_BYTES = 48 << 20  # cases per program run: about this many bytes of buffers and outputs

_CASE_HEADER = struct.Struct("<9I")
_FILE_HEADER = struct.Struct("<4sII")
_DECODE = {"nv21": nv21_to_yuv, "nv12": nv12_to_yuv, "i420": i420_to_yuv}
_ENCODE = {"nv21": yuv_to_nv21, "nv12": yuv_to_nv12, "i420": yuv_to_i420}


class ConformanceError(BackdropError):
    """An implementation cannot be run, or wrote results that cannot be read."""


# ---- cases ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Case:
    """One camera buffer and bucket mask to preprocess.

    Attributes:
        name: unique within a run; says what the case is (size, layout, range, stride, bucket).
        size_class: ``tiny``, ``small``, ``medium``, ``large`` (:data:`SIZE_CLASSES`), ``reject``
            (a buffer the reference refuses) or ``golden``.
        layout: ``nv21``, ``nv12`` or ``i420``.
        color_range: ``full`` or ``video``.
        width, height: the camera frame's size in pixels.
        row_stride: bytes per row (NV21/NV12: of both planes; I420: of Y, chroma rows half of
            it rounded up); 0 for packed rows.
        bucket: the bucket the frame goes into.
        buffer: uint8 (B,), the camera buffer.
        bucket_mask: float32 (Hb, Wb), the mask :func:`from_bucket` maps back.
        expected: for golden frames, the golden's own outputs (``placement``, ``model_input``,
            ``camera_mask``), which replace the reference's; None otherwise.
    """

    name: str
    size_class: str
    layout: str
    color_range: str
    width: int
    height: int
    row_stride: int
    bucket: Bucket
    buffer: np.ndarray
    bucket_mask: np.ndarray
    expected: dict | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of buffer and outputs, for batching."""
        px, bpx = self.width * self.height, self.bucket.height * self.bucket.width
        return int(self.buffer.size) + px * 3 + px * 8 + bpx * 16


def size_class(height: int, width: int) -> str:
    """The :data:`SIZE_CLASSES` name of a frame size."""
    side = max(height, width)
    return next(name for name, top in SIZE_CLASSES if side <= top)


def _nearest_bucket(buckets: BucketSet, height: int, width: int) -> Bucket:
    """``buckets.select``; for a frame it rejects (over 2x off), the nearest bucket anyway."""
    try:
        return buckets.select(height, width)
    except BucketError:
        return min(buckets, key=lambda b: max(width * b.height, height * b.width) / min(width * b.height, height * b.width))


def _chroma(width: int, height: int) -> tuple[int, int]:
    return (width + 1) // 2, (height + 1) // 2


def buffer_size(layout: str, width: int, height: int, row_stride: int) -> int:
    """Bytes of a camera buffer (docs/frames.md "Plane layouts"); row_stride 0: packed."""
    cw, ch = _chroma(width, height)
    if row_stride == 0:
        return width * height + 2 * cw * ch
    if layout == "i420":
        return row_stride * height + 2 * ((row_stride + 1) // 2) * ch
    return row_stride * (height + ch)


def _encode(yuv: np.ndarray, layout: str, row_stride: int) -> np.ndarray:
    return _ENCODE[layout](yuv, row_stride=row_stride or None)


def _smooth_yuv(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Gradients, a disc and some noise: a picture-like frame (random bytes are the other kind)."""
    yy = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    disc = ((yy - rng.random()) ** 2 + (xx - rng.random()) ** 2 < rng.uniform(0.02, 0.2)).astype(np.float32)
    out = np.empty((height, width, 3), np.uint8)
    for k, plane in enumerate((40 + 170 * (0.6 * xx + 0.4 * yy) + 30 * disc,
                               128 + 90 * (yy - 0.5) - 40 * disc + 0 * xx,
                               128 + 90 * (xx - 0.5) + 40 * disc + 0 * yy)):
        noise = rng.integers(-3, 4, (height, width), dtype=np.int16)
        out[:, :, k] = np.clip(np.rint(plane).astype(np.int16) + noise, 0, 255)
    return out


def _camera_buffer(rng: np.random.Generator, layout: str, width: int, height: int, row_stride: int, smooth: bool) -> np.ndarray:
    """A buffer of random bytes, or an encoded smooth frame whose row padding is random bytes
    (an implementation must ignore them)."""
    size = buffer_size(layout, width, height, row_stride)
    garbage = rng.integers(0, 256, size, dtype=np.uint8)
    if not smooth:
        return garbage
    buf = _encode(_smooth_yuv(rng, height, width), layout, row_stride)
    used = _encode(np.full((height, width, 3), 255, np.uint8), layout, row_stride) == 255
    return np.where(used, buf, garbage).astype(np.uint8)


def _bucket_mask(rng: np.random.Generator, bucket: Bucket, smooth: bool) -> np.ndarray:
    hb, wb = bucket.height, bucket.width
    if not smooth:
        return rng.random((hb, wb), dtype=np.float32)
    yy, xx = np.mgrid[0:hb, 0:wb].astype(np.float32)
    d = np.hypot((yy - rng.uniform(0, hb)) / hb, (xx - rng.uniform(0, wb)) / wb).astype(np.float32)
    m = (np.float32(1) / (np.float32(1) + np.exp(np.float32(12) * (d - np.float32(0.3))))).astype(np.float32)
    m[0, :] = 0.0  # exact 0 and 1 values, as saturated probabilities are
    m[-1, :] = 1.0
    return np.ascontiguousarray(m, dtype=np.float32)


def _stride_name(row_stride: int) -> str:
    return f"s{row_stride}" if row_stride else "packed"


def make_case(
    name: str, height: int, width: int, layout: str, color_range: str, row_stride: int, bucket: Bucket,
    rng: np.random.Generator, *, smooth: bool = True, size_class_: str | None = None, buffer: np.ndarray | None = None,
) -> Case:
    """A case of this size and layout with generated content (or ``buffer``)."""
    if buffer is None:
        buffer = _camera_buffer(rng, layout, width, height, row_stride, smooth)
    return Case(
        name=name, size_class=size_class_ or size_class(height, width), layout=layout, color_range=color_range,
        width=width, height=height, row_stride=row_stride, bucket=bucket, buffer=np.ascontiguousarray(buffer, np.uint8),
        bucket_mask=_bucket_mask(rng, bucket, smooth=not smooth),
    )


# The sizes docs/buckets.md works through (bucket selection and placement edge cases), in every
# layout, range and stride kind; then two buffers the reference rejects.
_FIXED = (
    (1080, 1920, "nv21", "full", 0),
    (1920, 1080, "nv12", "video", 1088),
    (480, 640, "nv21", "full", 704),
    (144, 176, "nv12", "full", 0),
    (175, 143, "nv21", "video", 160),
    (720, 720, "nv12", "full", 0),
    (1, 1, "nv21", "full", 0),
    (2, 3, "nv12", "video", 4),
    (64, 113, "nv21", "full", 0),
    (100, 155, "nv12", "full", 0),
    (100, 154, "nv21", "video", 0),
    (10, 36, "nv21", "full", 0),
    (3, 3, "i420", "full", 0),
    (5, 7, "i420", "video", 0),
    (480, 641, "i420", "full", 704),
    (9, 5, "i420", "video", 5),
)
# Each generated case's size class, cycled with the bucket (every pair within 5 x 10 cases).
_SIZE_PLAN = ("small", "tiny", "medium", "small", "medium", "large", "small", "tiny", "medium", "small")
_LONG_SIDE = {"tiny": (1, 16), "small": (17, 240), "medium": (241, 720), "large": (721, 1920)}


def _fixed_cases(buckets: BucketSet, seed: int) -> list[Case]:
    cases = []
    for k, (h, w, layout, rng_name, stride) in enumerate(_FIXED):
        rng = np.random.default_rng([seed, 1_000_000 + k])
        b = _nearest_bucket(buckets, h, w)
        name = f"doc-{h}x{w}-{layout}-{rng_name}-{_stride_name(stride)}-{b.name}"
        cases.append(make_case(name, h, w, layout, rng_name, stride, b, rng, smooth=k % 2 == 0))
    rng = np.random.default_rng([seed, 2_000_000])
    b = _nearest_bucket(buckets, 9, 17)
    short = rng.integers(0, 256, buffer_size("nv21", 17, 9, 0) - 1, dtype=np.uint8)
    cases.append(make_case(f"reject-9x17-nv21-short-buffer-{b.name}", 9, 17, "nv21", "full", 0, b, rng,
                           size_class_="reject", buffer=short))
    narrow = rng.integers(0, 256, 17 * (9 + 5), dtype=np.uint8)  # stride 17 < 2 * ceil(17 / 2) = 18
    cases.append(make_case(f"reject-9x17-nv12-stride-17-{b.name}", 9, 17, "nv12", "full", 17, b, rng,
                           size_class_="reject", buffer=narrow))
    return cases


def _random_case(i: int, seed: int, buckets: BucketSet) -> Case:
    rng = np.random.default_rng([seed, i])
    nb = len(buckets)
    target = buckets.buckets[i % nb]
    cls = _SIZE_PLAN[(i // nb) % len(_SIZE_PLAN)]
    lo, hi = _LONG_SIDE[cls]
    long_side = int(rng.integers(lo, hi + 1))
    spread = math.log(2.0) if rng.random() < 0.2 else math.log(1.3)
    aspect = target.width / target.height * math.exp(rng.uniform(-spread, spread))
    if aspect >= 1:
        w, h = long_side, max(1, int(round(long_side / aspect)))
    else:
        h, w = long_side, max(1, int(round(long_side * aspect)))
    layout = "i420" if i % 16 in (7, 14) else ("nv21", "nv12")[i % 2]
    color_range = COLOR_RANGES[(i // 2) % 2]
    stride = 0
    if ((i // 4) % 2 == 1) if layout != "i420" else ((i // 16) % 2 == 0):  # half of each layout padded
        need = w if layout == "i420" else 2 * _chroma(w, h)[0]
        kind = int(rng.integers(0, 3))
        stride = need if kind == 0 else need + int(rng.integers(1, 33)) if kind == 1 else (need // 64 + 1) * 64
    bucket = _nearest_bucket(buckets, h, w)
    name = f"c{i:04d}-{h}x{w}-{layout}-{color_range}-{_stride_name(stride)}-{bucket.name}"
    return make_case(name, h, w, layout, color_range, stride, bucket, rng, smooth=rng.random() < 0.4)


def generate_cases(n: int = DEFAULT_CASES, seed: int = 0, buckets: BucketSet | None = None) -> list[Case]:
    """``n`` deterministic cases: the docs' worked sizes and two buffers the reference rejects,
    then generated ones cycling every bucket of ``buckets`` (default: the shipped set) through
    every size class, NV21 / NV12 (one in 8 I420), full / video range, packed / padded rows
    (strides of exactly 2*ceil(W/2), a few bytes more, or the next multiple of 64), with random
    bytes or a smooth picture (row padding always random), and a random or smooth bucket mask.

    Raises:
        ConformanceError: ``n`` < 1.
    """
    if n < 1:
        raise ConformanceError(f"--cases must be at least 1, got {n}.")
    buckets = load_buckets(None) if buckets is None else buckets
    cases = _fixed_cases(buckets, seed)[:n]
    i = 0
    while len(cases) < n:
        cases.append(_random_case(i, seed, buckets))
        i += 1
    return cases


def golden_cases(golden, label: str | None = None) -> list[Case]:
    """One case per frame of ``golden`` (an :class:`backdrop.export.goldens.Golden`): its camera
    buffer must give its ``frames`` and its ``expected_masks`` its ``expected_camera_masks``."""
    label = label or golden.bucket.name
    pl = golden.placement
    placement = (*pl["scaled_size"], pl["pad"]["top"], pl["pad"]["bottom"], pl["pad"]["left"], pl["pad"]["right"])
    cases = []
    for i, frame_name in enumerate(golden.frame_names):
        cases.append(Case(
            name=f"golden-{label}-{golden.camera_format}-{frame_name}", size_class="golden", layout=golden.camera_format,
            color_range="full", width=golden.camera_width, height=golden.camera_height, row_stride=0, bucket=golden.bucket,
            buffer=np.ascontiguousarray(golden.camera_buffers[i], np.uint8),
            bucket_mask=np.ascontiguousarray(golden.expected_masks[i, 0], np.float32),
            expected={"placement": tuple(int(v) for v in placement), "model_input": golden.frames[i],
                      "camera_mask": golden.expected_camera_masks[i]},
        ))
    return cases


# ---- outputs -------------------------------------------------------------------------------


@dataclass
class Output:
    """What an implementation made of one case (see the module docstring), or why it refused."""

    error: str = ""
    placement: tuple[int, ...] = ()
    yuv444: np.ndarray | None = None
    model_input: np.ndarray | None = None
    camera_mask: np.ndarray | None = None

    @property
    def rejected(self) -> bool:
        return bool(self.error)


def reference_output(case: Case) -> Output:
    """The Python reference's outputs for ``case`` (a golden frame's own outputs where it has them)."""
    from backdrop.models.reference import bucket_input

    try:
        yuv = _DECODE[case.layout](case.buffer, case.width, case.height, row_stride=case.row_stride or None,
                                   color_range=case.color_range)
        p = plan(case.height, case.width, case.bucket)
    except (FrameError, BucketError) as e:
        return Output(error=f"{type(e).__name__}: {e}")
    state = np.zeros((case.bucket.height, case.bucket.width), np.float32)
    out = Output(
        placement=(p.scaled_height, p.scaled_width, p.pad_top, p.pad_bottom, p.pad_left, p.pad_right),
        yuv444=yuv,
        model_input=bucket_input(yuv, p, state)[0, :3],
        camera_mask=from_bucket(case.bucket_mask, p),
    )
    if case.expected:
        out.placement = tuple(case.expected["placement"])
        out.model_input = case.expected["model_input"]
        out.camera_mask = case.expected["camera_mask"]
    return out


# ---- implementations -----------------------------------------------------------------------


class Implementation:
    """One implementation of the preprocessing: ``run`` returns one :class:`Output` per case."""

    name = ""
    summary = ""

    def ready(self) -> str:
        """Why it cannot run here ("" when it can)."""
        return ""

    def describe(self) -> dict:
        return {"name": self.name, "summary": self.summary, "machine": platform.machine()}

    def run(self, cases: Sequence[Case]) -> list[Output]:
        raise NotImplementedError


IMPLEMENTATIONS: Registry[type[Implementation]] = Registry("conformance implementation")
"""name -> Implementation class (called with no arguments)."""


def get_implementation(name: str) -> Implementation:
    """A ready-to-check instance of the implementation registered as ``name``.

    Raises:
        RegistryError: an unknown name (the message lists the valid ones).
    """
    return IMPLEMENTATIONS.get(name)()


def implementation_summaries() -> dict[str, str]:
    return {n: IMPLEMENTATIONS.get(n).summary for n in IMPLEMENTATIONS.names()}


@IMPLEMENTATIONS.register("python")
class PythonImplementation(Implementation):
    """The reference itself (a self-check of the harness, and of the goldens against today's code)."""

    name = "python"
    summary = "the Python reference itself: a self-check of the harness, and of the goldens against today's code"

    def run(self, cases: Sequence[Case]) -> list[Output]:
        # A golden frame's outputs are computed afresh, and so compared with the stored ones.
        return [reference_output(dataclasses.replace(c, expected=None) if c.expected else c) for c in cases]


def write_cases(cases: Sequence[Case], path: str | os.PathLike) -> Path:
    """Write ``cases`` as a case file (module docstring), atomically."""
    path = Path(path)
    with atomic_write(path) as f:
        f.write(_FILE_HEADER.pack(CASES_MAGIC, VERSION, len(cases)))
        for c in cases:
            name = c.name.encode("utf-8")
            f.write(_CASE_HEADER.pack(len(name), LAYOUTS.index(c.layout), COLOR_RANGES.index(c.color_range), c.width,
                                      c.height, c.row_stride, c.bucket.height, c.bucket.width, c.buffer.size))
            f.write(name)
            f.write(np.ascontiguousarray(c.buffer, np.uint8).tobytes())
            f.write(np.ascontiguousarray(c.bucket_mask, "<f4").tobytes())
    return path


def read_results(path: str | os.PathLike, cases: Sequence[Case]) -> list[Output]:
    """Read a results file written for ``cases``.

    Raises:
        ConformanceError: missing file, wrong magic / version / count, truncated or too long,
            naming the case and the field.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConformanceError(f"no readable results file {path} ({e.strerror or e}).") from e
    pos = 0

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if len(data) - pos < n:
            raise ConformanceError(
                f"results file {path}: truncated in {what} at byte {pos} (needs {n} bytes, {len(data) - pos} left)."
            )
        chunk = data[pos : pos + n]
        pos += n
        return chunk

    magic, version, n = _FILE_HEADER.unpack(take(_FILE_HEADER.size, "the header"))
    if magic != RESULTS_MAGIC or version != VERSION:
        raise ConformanceError(f"results file {path}: not a version-{VERSION} results file (magic {magic!r}, version {version}).")
    if n != len(cases):
        raise ConformanceError(f"results file {path}: field cases is {n}, but {len(cases)} cases were sent.")
    outs = []
    for k, c in enumerate(cases):
        what = f"case {k} ({c.name})"
        (status,) = struct.unpack("<I", take(4, f"{what} status"))
        if status == 1:
            (m,) = struct.unpack("<I", take(4, f"{what} message length"))
            outs.append(Output(error=take(m, f"{what} message").decode("utf-8", "replace") or "(no message)"))
            continue
        if status != 0:
            raise ConformanceError(f"results file {path}: {what}: field status is {status}, expected 0 (ok) or 1 (rejected).")
        h, w, hb, wb = c.height, c.width, c.bucket.height, c.bucket.width
        placement = struct.unpack("<6I", take(24, f"{what} placement"))
        yuv = np.frombuffer(take(h * w * 3, f"{what} yuv444"), np.uint8).reshape(h, w, 3)
        x = np.frombuffer(take(3 * hb * wb * 4, f"{what} model_input"), "<f4").reshape(3, hb, wb).astype(np.float32)
        mask = np.frombuffer(take(h * w * 4, f"{what} camera_mask"), "<f4").reshape(h, w).astype(np.float32)
        outs.append(Output(placement=tuple(int(v) for v in placement), yuv444=yuv, model_input=x, camera_mask=mask))
    if pos != len(data):
        raise ConformanceError(f"results file {path}: {len(data) - pos} bytes after the last of its {n} cases.")
    return outs


class CaseFileImplementation(Implementation):
    """A program that reads a case file and writes a results file (module docstring):
    subclasses give :meth:`command` (and :meth:`ready`)."""

    def command(self, cases_path: Path, results_path: Path) -> list[str]:
        raise NotImplementedError

    def program(self) -> str:
        """The program's name, for messages."""
        return self.name

    def run(self, cases: Sequence[Case]) -> list[Output]:
        reason = self.ready()
        if reason:
            raise ConformanceError(f"conformance implementation {self.name} cannot run here: {reason}")
        with tempfile.TemporaryDirectory(prefix=f"backdrop-conformance-{self.name}-") as tmp:
            cases_path = write_cases(cases, Path(tmp) / "cases.bdcc")
            results_path = Path(tmp) / "results.bdcr"
            cmd = self.command(cases_path, results_path)
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired as e:
                raise ConformanceError(f"{self.name}: {cmd[0]} ran past {RUN_TIMEOUT_S} s.") from e
            except OSError as e:
                raise ConformanceError(f"{self.name}: cannot start {cmd[0]} ({e.strerror or e}).") from e
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
                raise ConformanceError(f"{self.name}: {self.program()} failed: {last}")
            return read_results(results_path, cases)


def default_binary() -> Path:
    """``$BACKDROP_CONFORMANCE``, else build/native/<machine>/backdrop-conformance in this checkout."""
    if os.environ.get(BINARY_ENV):
        return Path(os.environ[BINARY_ENV])
    return Path(__file__).resolve().parents[1] / "build" / "native" / platform.machine() / "backdrop-conformance"


@IMPLEMENTATIONS.register("native")
class NativeImplementation(CaseFileImplementation):
    """backdrop-conformance on this host: the runner's preprocess.cpp (C++17)."""

    name = "native"
    summary = "the runner's C++ preprocessing, backdrop-conformance as make native-runner builds it for this host"

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = Path(binary) if binary is not None else default_binary()

    def ready(self) -> str:
        if not self.binary.is_file():
            return f"no backdrop-conformance at {self.binary}: build it with `make native-runner` (or set {BINARY_ENV})."
        return ""

    def command(self, cases_path: Path, results_path: Path) -> list[str]:
        return [str(self.binary), "--cases", str(cases_path), "--out", str(results_path)]

    def program(self) -> str:
        return str(self.binary)

    def describe(self) -> dict:
        return {**super().describe(), "binary": str(self.binary)}


@IMPLEMENTATIONS.register("native-arm64")
class NativeArm64Implementation(NativeImplementation):
    """The aarch64 build of backdrop-conformance, from the bundle, under user-mode qemu."""

    name = "native-arm64"
    summary = "the aarch64 build of backdrop-conformance from the bundle of make native-runner-arm64, under qemu"

    def __init__(self, bundle: Path | None = None, qemu: Path | None = None) -> None:
        from backdrop.device_tests.qemu_arm64 import default_bundle, default_qemu

        self.bundle = Path(bundle) if bundle is not None else default_bundle()
        self.qemu = Path(qemu) if qemu is not None else default_qemu()
        super().__init__(self.bundle / "backdrop-conformance")

    def ready(self) -> str:
        for what, path in (("qemu-aarch64", self.qemu), ("the aarch64 backdrop-conformance", self.binary),
                           ("the aarch64 loader", self.bundle / "ld-linux-aarch64.so.1")):
            if not path.is_file():
                return f"no {what} at {path}: build the bundle with `make native-runner-arm64`."
        return ""

    def command(self, cases_path: Path, results_path: Path) -> list[str]:
        from backdrop.device_tests.qemu_arm64 import QEMU_CPU

        loader = self.bundle / "ld-linux-aarch64.so.1"
        return [str(self.qemu), "-cpu", QEMU_CPU, str(loader), "--library-path", str(self.bundle),
                *super().command(cases_path, results_path)]

    def describe(self) -> dict:
        from backdrop.device_tests.qemu_arm64 import QEMU_CPU

        return {**super().describe(), "machine": f"aarch64 (emulated, qemu -cpu {QEMU_CPU})", "qemu": str(self.qemu)}


# ---- comparison ----------------------------------------------------------------------------


_AXES = {"yuv444": ("row", "col", "channel"), "model_input": ("channel", "row", "col"), "camera_mask": ("row", "col")}


@dataclass(frozen=True)
class Difference:
    """The first difference within one case: where, and the two values and their bits."""

    case: str
    size_class: str
    output: str
    index: dict = field(default_factory=dict)
    expected: object = None
    got: object = None
    expected_bits: str = ""
    got_bits: str = ""
    differing: int = 0
    total: int = 0
    note: str = ""

    @property
    def message(self) -> str:
        where = ", ".join(f"{k} {v}" for k, v in self.index.items())
        head = f"case {self.case} ({self.size_class}): {self.output}"
        if self.note:
            return f"{head}: {self.note}"
        bits = f" (bits {self.expected_bits})" if self.expected_bits else ""
        got_bits = f" (bits {self.got_bits})" if self.got_bits else ""
        return (f"{head}[{where}]: expected {_fmt(self.expected)}{bits}, got {_fmt(self.got)}{got_bits}; "
                f"{self.differing} of {self.total} values differ")

    def to_dict(self) -> dict:
        return {"case": self.case, "size_class": self.size_class, "output": self.output, "index": self.index,
                "expected": self.expected, "got": self.got, "expected_bits": self.expected_bits, "got_bits": self.got_bits,
                "differing": self.differing, "total": self.total, "note": self.note, "message": self.message}


def _fmt(v: object) -> str:
    """A float32 value as its shortest round-tripping decimal."""
    return str(np.float32(v)) if isinstance(v, float) else str(v)


def _float_bits(v: np.float32) -> str:
    return f"0x{int(np.array(v, np.float32).view(np.uint32)):08x}"


def compare(case: Case, expected: Output, got: Output) -> Difference | None:
    """The first difference between the reference's ``expected`` and ``got`` (None when every
    output is identical, float32 compared by their bits), in :data:`OUTPUTS` order."""
    if expected.rejected or got.rejected:
        if expected.rejected and got.rejected:
            return None
        note = (f"the reference rejects it ({expected.error}) but the implementation accepted it" if expected.rejected
                else f"the implementation rejected it ({got.error}); the reference accepts it")
        return Difference(case.name, case.size_class, "rejection", note=note)
    if tuple(expected.placement) != tuple(got.placement):
        for name, e, g in zip(PLACEMENT_FIELDS, expected.placement, got.placement, strict=False):
            if e != g:
                return Difference(case.name, case.size_class, "placement", {"field": name}, int(e), int(g),
                                  differing=sum(a != b for a, b in zip(expected.placement, got.placement, strict=False)),
                                  total=len(PLACEMENT_FIELDS))
        return Difference(case.name, case.size_class, "placement",
                          note=f"expected {list(expected.placement)}, got {list(got.placement)}")
    for out in OUTPUTS[1:]:
        e, g = getattr(expected, out), getattr(got, out)
        if g is None or e.shape != g.shape or g.dtype != e.dtype:
            desc = "nothing" if g is None else f"{g.dtype} {g.shape}"
            return Difference(case.name, case.size_class, out, note=f"expected {e.dtype} {e.shape}, got {desc}")
        if e.dtype == np.float32:
            eb, gb = np.ascontiguousarray(e).view(np.uint32), np.ascontiguousarray(g).view(np.uint32)
        else:
            eb, gb = e, g
        diff = eb != gb
        if not diff.any():
            continue
        flat = int(np.flatnonzero(diff.reshape(-1))[0])
        idx = np.unravel_index(flat, e.shape)
        index = {axis: int(i) for axis, i in zip(_AXES[out], idx, strict=True)}
        ev, gv = e[idx], g[idx]
        if e.dtype == np.float32:
            return Difference(case.name, case.size_class, out, index, float(ev), float(gv), _float_bits(ev), _float_bits(gv),
                              int(diff.sum()), int(diff.size))
        return Difference(case.name, case.size_class, out, index, int(ev), int(gv), f"0x{int(ev):02x}", f"0x{int(gv):02x}",
                          int(diff.sum()), int(diff.size))
    return None


@dataclass
class CaseResult:
    name: str
    size_class: str
    status: str  # "ok", "rejected" (both rejected it) or "differ"
    difference: Difference | None = None


@dataclass
class ConformanceResult:
    """Every case's outcome for one implementation."""

    impl: str
    description: dict
    results: list[CaseResult]
    seconds: dict
    coverage: dict

    @property
    def differing(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == "differ"]

    @property
    def passed(self) -> bool:
        return not self.differing

    @property
    def first_difference(self) -> Difference | None:
        d = self.differing
        return d[0].difference if d else None

    def by_size_class(self) -> dict[str, dict]:
        order = [n for n, _ in SIZE_CLASSES] + ["reject", "golden"]
        table: dict[str, dict] = {}
        for r in self.results:
            row = table.setdefault(r.size_class, {"cases": 0, "ok": 0, "rejected": 0, "differ": 0, "first_difference": None})
            row["cases"] += 1
            row[r.status] += 1
            if r.status == "differ" and row["first_difference"] is None:
                row["first_difference"] = r.difference.message
        return {k: table[k] for k in sorted(table, key=lambda k: order.index(k) if k in order else len(order))}

    def to_dict(self) -> dict:
        first = self.first_difference
        return {
            "schema": "backdrop-conformance/1",
            "impl": self.impl,
            "implementation": self.description,
            "passed": self.passed,
            "cases": len(self.results),
            "differing_cases": len(self.differing),
            "first_difference": first.to_dict() if first else None,
            "size_classes": self.by_size_class(),
            "coverage": self.coverage,
            "seconds": self.seconds,
            "differences": [r.difference.to_dict() for r in self.differing[:100]],
            "outputs": list(OUTPUTS),
        }

    def to_markdown(self) -> str:
        first = self.first_difference
        lines = [
            f"# Preprocessing conformance: {self.impl}",
            "",
            f"Implementation: {self.description.get('summary', '')}; machine {self.description.get('machine', '?')}.",
            "",
            f"**{'PASS' if self.passed else 'FAIL'}**: {len(self.results)} cases, {len(self.differing)} differ "
            f"(bit-exact comparison of {', '.join(OUTPUTS)} with the Python reference); "
            f"{self.seconds.get('implementation', 0):.2f} s in the implementation, "
            f"{self.seconds.get('reference', 0):.2f} s in the reference.",
            "",
        ]
        if first:
            lines += ["First difference:", "", f"    {first.message}", ""]
        lines += ["| size class | cases | ok | rejected (both) | differ |", "|---|---:|---:|---:|---:|"]
        for k, row in self.by_size_class().items():
            lines.append(f"| {k} | {row['cases']} | {row['ok']} | {row['rejected']} | {row['differ']} |")
        lines += ["", "Coverage:", ""]
        for k, counts in self.coverage.items():
            lines.append(f"- {k}: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
        if self.differing:
            lines += ["", "Differing cases (first 100):", ""]
            lines += [f"- {r.difference.message}" for r in self.differing[:100]]
        return "\n".join(lines) + "\n"


def coverage(cases: Iterable[Case]) -> dict[str, dict[str, int]]:
    """How many cases have each bucket, layout, YUV_420_888 form (chroma pixel stride, row
    padding), range, stride kind and odd/even size."""
    keys = ("bucket", "layout", "yuv_420_888", "color_range", "rows", "size")
    table: dict[str, dict[str, int]] = {k: {} for k in keys}
    for c in cases:
        rows = "padded" if c.row_stride else "packed"
        form = f"pixel stride {1 if c.layout == 'i420' else 2}, {rows} rows"
        for key, value in (("bucket", c.bucket.name), ("layout", c.layout), ("yuv_420_888", form),
                           ("color_range", c.color_range), ("rows", rows),
                           ("size", "odd" if c.width % 2 or c.height % 2 else "even")):
            table[key][value] = table[key].get(value, 0) + 1
    out = {k: dict(sorted(v.items())) for k, v in table.items()}
    out["frame_sizes"] = {"distinct": len({(c.height, c.width) for c in cases})}
    return out


def _batches(cases: Sequence[Case], budget: int) -> Iterable[Sequence[Case]]:
    start, size = 0, 0
    for i, c in enumerate(cases):
        if i > start and size + c.nbytes > budget:
            yield cases[start:i]
            start, size = i, 0
        size += c.nbytes
    if start < len(cases):
        yield cases[start:]


def check(impl: Implementation, cases: Sequence[Case], progress: Callable[[int], None] | None = None,
          batch_bytes: int = _BATCH_BYTES) -> ConformanceResult:
    """Run ``cases`` through ``impl`` and the reference and compare every output bit for bit.

    Args:
        impl: from :func:`get_implementation`.
        cases: :func:`generate_cases` and/or :func:`golden_cases`; names must be unique.
        progress: called with the number of cases done after each batch.
        batch_bytes: cases go to the implementation in batches of about this many bytes.

    Raises:
        ConformanceError: the implementation cannot run, fails, or returns the wrong number of
            outputs; duplicate case names.
    """
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConformanceError(f"case names must be unique; {dup!r} appears more than once.")
    reason = impl.ready()
    if reason:
        raise ConformanceError(f"conformance implementation {impl.name} cannot run here: {reason}")
    results: list[CaseResult] = []
    t_impl = t_ref = 0.0
    for batch in _batches(cases, batch_bytes):
        t0 = time.perf_counter()
        got = impl.run(batch)
        t1 = time.perf_counter()
        expected = [reference_output(c) for c in batch]
        t_ref += time.perf_counter() - t1
        t_impl += t1 - t0
        if len(got) != len(batch):
            raise ConformanceError(f"{impl.name} returned {len(got)} outputs for {len(batch)} cases.")
        for case, e, g in zip(batch, expected, got, strict=True):
            d = compare(case, e, g)
            status = "differ" if d else ("rejected" if e.rejected else "ok")
            results.append(CaseResult(case.name, case.size_class, status, d))
        if progress:
            progress(len(batch))
    return ConformanceResult(impl.name, impl.describe(), results, {"implementation": round(t_impl, 3),
                             "reference": round(t_ref, 3)}, coverage(cases))


def write_report(result: ConformanceResult, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``out_dir``/conformance.json and conformance.md, each atomically."""
    out_dir = Path(out_dir)
    paths = [out_dir / "conformance.json", out_dir / "conformance.md"]
    with atomic_write(paths[0], "w") as f:
        json.dump(result.to_dict(), f, indent=2, default=str)
        f.write("\n")
    with atomic_write(paths[1], "w") as f:
        f.write(result.to_markdown())
    return paths


__all__ = [
    "DEFAULT_CASES",
    "IMPLEMENTATIONS",
    "OUTPUTS",
    "Case",
    "CaseFileImplementation",
    "ConformanceError",
    "ConformanceResult",
    "Difference",
    "Implementation",
    "Output",
    "check",
    "compare",
    "generate_cases",
    "get_implementation",
    "golden_cases",
    "read_results",
    "reference_output",
    "write_cases",
    "write_report",
]

# The registry lines: one import per implementation module beyond the ones above (Kotlin,
# Swift), each registering itself in IMPLEMENTATIONS.
from backdrop.device_tests import conformance_kotlin, conformance_swift  # noqa: E402, F401, I001  (register "kotlin", "swift")
