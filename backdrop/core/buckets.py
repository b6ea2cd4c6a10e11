"""Aspect-ratio buckets: fixed network input sizes, and how a camera frame is placed in one.

A bucket is one fixed input size (one exported artifact per bucket). A frame of any size is
run in the bucket whose aspect ratio is nearest to its own: it is resized (bilinear, aspect
ratio kept) to fit inside the bucket and padded by repeating its edge pixels; the mask that
comes back is cropped and resized to the frame's own size.

Every rule here is specified in docs/buckets.md precisely enough to be reimplemented pixel for
pixel on the phone (Kotlin, Swift). All size arithmetic is exact integer arithmetic; the only
floating-point operations are the float32 ones of :func:`resize_bilinear`.

Sizes are always given as (height, width), and written ``HxW`` (``160x288`` is 160 rows by
288 columns), unlike camera APIs, which say width x height.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from backdrop.core.errors import BucketError, ConfigError, FrameError

MAX_ASPECT_FACTOR = 2
"""A frame may be at most this many times wider or narrower than its nearest bucket."""

MAX_FRAME_SIDE = 65536
"""Largest frame side accepted; keeps every integer product of the rules within int64."""

MAX_BUCKET_SIDE = 4096
"""Largest bucket side accepted; keeps every integer product of the rules within int64."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SPEC_ITEM_RE = re.compile(r"^\s*([^=\s]+)\s*=\s*(\d+)\s*[xX]\s*(\d+)\s*$")
_EXAMPLE_SPEC = "landscape_16x9=160x288,portrait_9x16=288x160"


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_frame_size(height: object, width: object) -> tuple[int, int]:
    """Validate a frame size and return it as Python ints."""
    for label, v in (("height", height), ("width", width)):
        if not _is_int(v):
            raise BucketError(
                f"Frame {label} must be an integer number of pixels, got {v!r} ({type(v).__name__}). "
                "Pass the frame's array shape (height, width)."
            )
        if not 1 <= int(v) <= MAX_FRAME_SIDE:
            raise BucketError(
                f"Frame size {height}x{width} (HxW) is not usable: each side must be between 1 and "
                f"{MAX_FRAME_SIDE} pixels. Check that the frame decoded correctly."
            )
    return int(height), int(width)


@dataclass(frozen=True)
class Bucket:
    """One fixed network input size.

    Attributes:
        name: Identifier used in artifact names and on the command line, e.g. ``portrait_9x16``
            (letters, digits, ``_``, ``.``, ``-``; starting with a letter or digit).
        height: Input height in pixels, 1..4096.
        width: Input width in pixels, 1..4096.

    Raises:
        BucketError: the name or a size is invalid.
    """

    name: str
    height: int
    width: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise BucketError(
                f"Bucket name {self.name!r} is invalid: use letters, digits, '_', '.' or '-', "
                "starting with a letter or digit (e.g. 'portrait_9x16')."
            )
        for label in ("height", "width"):
            v = getattr(self, label)
            if not _is_int(v) or not 1 <= int(v) <= MAX_BUCKET_SIDE:
                raise BucketError(
                    f"Bucket {self.name!r} has {label} {v!r}; a bucket side must be an integer from 1 "
                    f"to {MAX_BUCKET_SIDE} (a multiple of 32 for Core ML stateful models)."
                )
            object.__setattr__(self, label, int(v))

    @property
    def aspect(self) -> float:
        """Width / height (> 1 for landscape)."""
        return self.width / self.height

    @property
    def size(self) -> str:
        """The size as ``HxW``, e.g. ``160x288``."""
        return f"{self.height}x{self.width}"

    def __str__(self) -> str:
        return f"{self.name} {self.size}"


@dataclass(frozen=True)
class BucketSet:
    """An ordered, non-empty set of buckets with unique names.

    Order matters: when two buckets fit a frame equally well, the earlier one is chosen.

    Attributes:
        buckets: The buckets, in priority order.

    Raises:
        BucketError: the set is empty or two buckets share a name.
    """

    buckets: tuple[Bucket, ...]

    def __post_init__(self) -> None:
        buckets = tuple(self.buckets)
        if not buckets:
            raise BucketError(f"A bucket set needs at least one bucket, e.g. {_EXAMPLE_SPEC!r}.")
        for b in buckets:
            if not isinstance(b, Bucket):
                raise BucketError(f"A bucket set holds Bucket objects, got {b!r}.")
        names = [b.name for b in buckets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise BucketError(f"Bucket names must be unique; repeated: {', '.join(dupes)}. Rename or drop them.")
        object.__setattr__(self, "buckets", buckets)

    def __iter__(self) -> Iterator[Bucket]:
        return iter(self.buckets)

    def __len__(self) -> int:
        return len(self.buckets)

    def names(self) -> list[str]:
        """Bucket names in set order."""
        return [b.name for b in self.buckets]

    def get(self, name: str) -> Bucket:
        """The bucket called ``name``.

        Raises:
            BucketError: no bucket has that name; the message lists the valid names.
        """
        for b in self.buckets:
            if b.name == name:
                return b
        raise BucketError(f"Unknown bucket {name!r}. Valid buckets: {', '.join(self.names())}.")

    def select(self, height: int, width: int) -> Bucket:
        """The bucket whose aspect ratio is nearest to a ``height`` x ``width`` frame's.

        Nearest means smallest ``|ln(width/height) - ln(bucket.width/bucket.height)|``, compared
        exactly in integers (docs/buckets.md); ties go to the earlier bucket.

        Args:
            height: Frame height in pixels.
            width: Frame width in pixels.

        Returns:
            The chosen bucket.

        Raises:
            BucketError: the size is not a positive integer pair, or the frame is more than
                ``MAX_ASPECT_FACTOR`` times wider or narrower than even the nearest bucket.
        """
        height, width = _check_frame_size(height, width)
        best = self.buckets[0]
        best_p, best_q = _distortion(height, width, best)  # distortion factor p / q >= 1
        for b in self.buckets[1:]:
            p, q = _distortion(height, width, b)
            if p * best_q < best_p * q:  # strictly better: ties keep the earlier bucket
                best, best_p, best_q = b, p, q
        if best_p > MAX_ASPECT_FACTOR * best_q:
            lo = min(b.aspect for b in self.buckets) / MAX_ASPECT_FACTOR
            hi = max(b.aspect for b in self.buckets) * MAX_ASPECT_FACTOR
            raise BucketError(
                f"Frame {height}x{width} (HxW, aspect {width / height:.3f}) is {best_p / best_q:.2f}x "
                f"off the nearest bucket {best.name} {best.size} (aspect {best.aspect:.3f}); at most "
                f"{MAX_ASPECT_FACTOR}x is allowed, so this set takes aspects {lo:.3f} to {hi:.3f}. "
                "Crop the frame, or add a bucket of that shape with --buckets NAME=HxW,..."
            )
        return best

    def to_dict(self) -> dict:
        """The JSON form: ``{"buckets": [{"name": .., "height": .., "width": ..}, ...]}``."""
        return {"buckets": [{"name": b.name, "height": b.height, "width": b.width} for b in self.buckets]}

    def to_spec(self) -> str:
        """The command-line form ``name=HxW,name=HxW`` that :meth:`parse` reads back."""
        return ",".join(f"{b.name}={b.size}" for b in self.buckets)

    @classmethod
    def from_dict(cls, d: dict) -> BucketSet:
        """Build a set from its JSON form (see :meth:`to_dict`).

        Raises:
            BucketError: the structure, a key or a value is wrong.
        """
        if not isinstance(d, dict) or set(d) != {"buckets"} or not isinstance(d["buckets"], list):
            keys = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise BucketError(
                'A bucket set must be a JSON object with exactly one key, "buckets", holding a list '
                f'of {{"name": ..., "height": ..., "width": ...}} objects; got {keys}.'
            )
        buckets = []
        for i, item in enumerate(d["buckets"]):
            if not isinstance(item, dict) or set(item) != {"name", "height", "width"}:
                got = sorted(item) if isinstance(item, dict) else repr(item)
                raise BucketError(
                    f'Bucket #{i} must be an object with exactly the keys "name", "height", "width"; got {got}.'
                )
            buckets.append(Bucket(item["name"], item["height"], item["width"]))
        return cls(tuple(buckets))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> BucketSet:
        """Read a bucket set from a JSON file in the :meth:`to_dict` form.

        Raises:
            ConfigError: the file is missing, unreadable or not JSON.
            BucketError: the JSON does not describe a valid bucket set.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"Bucket file {path} does not exist. Pass an existing JSON file or an inline spec "
                f"such as {_EXAMPLE_SPEC!r}."
            ) from None
        except OSError as e:
            raise ConfigError(f"Cannot read bucket file {path}: {e.strerror or e}.") from e
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"Bucket file {path} is not valid JSON ({e.msg} at line {e.lineno}).") from e
        try:
            return cls.from_dict(d)
        except BucketError as e:
            raise BucketError(f"Bucket file {path}: {e}") from e

    @classmethod
    def parse(cls, spec: str) -> BucketSet:
        """Read the command-line form ``name=HxW,name=HxW`` or a path to a JSON bucket file.

        A spec containing ``=`` is read inline; anything else is a file path.

        Raises:
            BucketError: an inline item is malformed or describes an invalid bucket.
            ConfigError: the file cannot be read (see :meth:`from_file`).
        """
        if not isinstance(spec, str) or not spec.strip():
            raise BucketError(f"Empty bucket spec. Use NAME=HxW,... such as {_EXAMPLE_SPEC!r}, or a JSON file.")
        if "=" not in spec:
            return cls.from_file(spec.strip())
        buckets = []
        for item in spec.split(","):
            m = _SPEC_ITEM_RE.match(item)
            if not m:
                raise BucketError(
                    f"Bucket spec item {item.strip()!r} is not NAME=HxW (height x width in pixels). "
                    f"Example: {_EXAMPLE_SPEC!r}."
                )
            buckets.append(Bucket(m.group(1), int(m.group(2)), int(m.group(3))))
        return cls(tuple(buckets))


def _distortion(height: int, width: int, bucket: Bucket) -> tuple[int, int]:
    """exp(|ln(frame aspect) - ln(bucket aspect)|) as an exact fraction p / q with p >= q."""
    a = width * bucket.height
    b = height * bucket.width
    return (a, b) if a >= b else (b, a)


def _load_default() -> BucketSet:
    text = resources.files("backdrop").joinpath("data/buckets_default.json").read_text(encoding="utf-8")
    return BucketSet.from_dict(json.loads(text))


DEFAULT_BUCKETS: BucketSet = _load_default()
"""The shipped set (backdrop/data/buckets_default.json): 16:9, 9:16, 4:3, 3:4, 1:1."""


def load_buckets(spec: str | None) -> BucketSet:
    """The bucket set a command-line ``--buckets`` value names.

    Args:
        spec: ``None`` for :data:`DEFAULT_BUCKETS`, else anything :meth:`BucketSet.parse` takes.
    """
    return DEFAULT_BUCKETS if spec is None else BucketSet.parse(spec)


@dataclass(frozen=True)
class Placement:
    """How a ``src_height`` x ``src_width`` frame sits in ``bucket``.

    The frame is resized to ``scaled_height`` x ``scaled_width`` and placed with its top-left
    corner at (``pad_top``, ``pad_left``); the padding rows/columns repeat its edge pixels.
    ``pad_top + scaled_height + pad_bottom == bucket.height``, and likewise for widths.
    """

    bucket: Bucket
    src_height: int
    src_width: int
    scaled_height: int
    scaled_width: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int

    def __post_init__(self) -> None:
        ok = (
            self.pad_top + self.scaled_height + self.pad_bottom == self.bucket.height
            and self.pad_left + self.scaled_width + self.pad_right == self.bucket.width
            and min(self.pad_top, self.pad_bottom, self.pad_left, self.pad_right) >= 0
            and self.scaled_height >= 1
            and self.scaled_width >= 1
        )
        if not ok:
            raise BucketError(f"Inconsistent placement {self}: scaled size plus padding must equal the bucket size.")

    def to_dict(self) -> dict:
        """Plain-JSON form, for metadata and golden files."""
        return {
            "bucket": self.bucket.name,
            "bucket_size": [self.bucket.height, self.bucket.width],
            "src_size": [self.src_height, self.src_width],
            "scaled_size": [self.scaled_height, self.scaled_width],
            "pad": {"top": self.pad_top, "bottom": self.pad_bottom, "left": self.pad_left, "right": self.pad_right},
        }


def _round_div(num: int, den: int) -> int:
    """floor(num / den + 1/2) for num >= 0, den > 0, exactly."""
    return (2 * num + den) // (2 * den)


def plan(src_height: int, src_width: int, bucket: Bucket) -> Placement:
    """Where a frame goes in ``bucket``: the largest aspect-preserving fit, centred.

    With ``scale = min(H_b / h, W_b / w)``, the side that limits the scale becomes exactly the
    bucket's side and the other is ``floor(side * scale + 1/2)`` (round half up), clamped to
    ``[1, bucket side]``, computed exactly in integers. Padding is centred, the odd pixel going
    to the bottom / right. Frames smaller than the bucket are scaled up. This does not check
    the aspect-ratio limit; :meth:`BucketSet.select` does.

    Args:
        src_height: Frame height in pixels.
        src_width: Frame width in pixels.
        bucket: The bucket to place the frame in.

    Raises:
        BucketError: the frame size is not a positive integer pair.
    """
    h, w = _check_frame_size(src_height, src_width)
    hb, wb = bucket.height, bucket.width
    if hb * w <= wb * h:  # H_b / h <= W_b / w: height limits the scale
        sh, sw = hb, min(max(_round_div(w * hb, h), 1), wb)
    else:  # width limits the scale
        sh, sw = min(max(_round_div(h * wb, w), 1), hb), wb
    top, left = (hb - sh) // 2, (wb - sw) // 2
    return Placement(bucket, h, w, sh, sw, top, hb - sh - top, left, wb - sw - left)


def _check_image(image: np.ndarray, height: int, width: int, what: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise FrameError(f"{what} must be a numpy array, got {type(image).__name__}.")
    if image.ndim not in (2, 3) or image.shape[:2] != (height, width):
        raise FrameError(
            f"{what} has shape {image.shape}; expected ({height}, {width}) or ({height}, {width}, C)."
        )
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise FrameError(f"{what} has dtype {image.dtype}; expected uint8 or a float type.")
    return image


def _axis_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices i0, i1 and float32 weight f of each output index along one axis.

    src = (d + 1/2) * n_in / n_out - 1/2 = num / (2 n_out) with num = (2d+1) n_in - n_out.
    num <= 0: i0 = 0, f = 0. Otherwise i0 = num // (2 n_out), f = float32(num - 2 n_out i0) /
    float32(2 n_out). If i0 >= n_in - 1: i0 = n_in - 1, f = 0. i1 = min(i0 + 1, n_in - 1).
    """
    d = np.arange(n_out, dtype=np.int64)
    den = 2 * n_out
    num = (2 * d + 1) * n_in - n_out
    num = np.maximum(num, 0)
    i0 = num // den
    rem = num - i0 * den
    f = rem.astype(np.float32) / np.float32(den)
    last = i0 >= n_in - 1
    i0 = np.where(last, n_in - 1, i0)
    f = np.where(last, np.float32(0), f).astype(np.float32)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, f


def resize_bilinear(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres, no antialiasing, in float32.

    The exact rule (docs/buckets.md): each axis maps output index ``d`` to source coordinate
    ``(d + 0.5) * in / out - 0.5`` clamped to ``[0, in - 1]`` (index and weight computed
    exactly in integers, the weight rounded once to float32); then, in float32, rows first:
    ``t = a + fx * (b - a)`` along x, then ``t0 + fy * (t1 - t0)`` along y. Matches
    ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` on float32 input to float32 rounding.
    A constant image stays exactly constant.

    Args:
        image: (H, W) or (H, W, C), integer or float.
        out_h: Output height, >= 1.
        out_w: Output width, >= 1.

    Returns:
        float32 array (out_h, out_w) or (out_h, out_w, C).

    Raises:
        FrameError: the image is not 2-D/3-D numeric or is empty.
        BucketError: an output size is not a positive integer.
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or 0 in image.shape:
        shape = getattr(image, "shape", type(image).__name__)
        raise FrameError(f"resize_bilinear needs a non-empty (H, W) or (H, W, C) array, got {shape}.")
    _check_frame_size(out_h, out_w)
    src = image.astype(np.float32, copy=False)
    in_h, in_w = src.shape[:2]
    y0, y1, fy = _axis_taps(in_h, int(out_h))
    x0, x1, fx = _axis_taps(in_w, int(out_w))
    if src.ndim == 3:
        fx = fx[:, None]
        fy = fy[:, None, None]
    else:
        fy = fy[:, None]
    a = src[:, x0]
    rows = a + fx * (src[:, x1] - a)  # (in_h, out_w[, C])
    t0 = rows[y0]
    out = t0 + fy * (rows[y1] - t0)
    return np.ascontiguousarray(out, dtype=np.float32)


def to_bucket(image: np.ndarray, placement: Placement) -> np.ndarray:
    """Resize a frame into its bucket and pad it by repeating edge pixels.

    Args:
        image: (src_height, src_width) or (src_height, src_width, C), uint8 or float. Values
            are kept as they are (uint8 0..255 stays 0..255, now float32).
        placement: From :func:`plan` for this frame size.

    Returns:
        float32 (bucket.height, bucket.width) or (bucket.height, bucket.width, C). Pixel
        (y, x) is ``scaled[clamp(y - pad_top, 0, scaled_height - 1), clamp(x - pad_left, 0,
        scaled_width - 1)]`` with ``scaled = resize_bilinear(image, scaled_height, scaled_width)``.

    Raises:
        FrameError: the image's shape does not match ``placement``.
    """
    p = placement
    _check_image(image, p.src_height, p.src_width, "Frame")
    scaled = resize_bilinear(image, p.scaled_height, p.scaled_width)
    rows = np.clip(np.arange(p.bucket.height) - p.pad_top, 0, p.scaled_height - 1)
    cols = np.clip(np.arange(p.bucket.width) - p.pad_left, 0, p.scaled_width - 1)
    return np.ascontiguousarray(scaled[rows][:, cols], dtype=np.float32)


def from_bucket(mask: np.ndarray, placement: Placement) -> np.ndarray:
    """Bring a mask from bucket coordinates back to the frame's own size.

    Crops rows ``pad_top : pad_top + scaled_height`` and columns ``pad_left : pad_left +
    scaled_width``, then resizes with :func:`resize_bilinear` to (src_height, src_width).

    Args:
        mask: (bucket.height, bucket.width) float (a trailing channel axis is also accepted).
        placement: The placement the frame was put in the bucket with.

    Returns:
        float32 (src_height, src_width) (or (src_height, src_width, C)).

    Raises:
        FrameError: the mask's shape is not the bucket's.
    """
    p = placement
    _check_image(mask, p.bucket.height, p.bucket.width, f"Mask for bucket {p.bucket}")
    crop = mask[p.pad_top : p.pad_top + p.scaled_height, p.pad_left : p.pad_left + p.scaled_width]
    return resize_bilinear(crop, p.src_height, p.src_width)


def crop_box(height: int, width: int, bucket: Bucket) -> tuple[int, int, int, int]:
    """The centred, even-sided crop of a ``height x width`` frame to ``bucket``'s aspect ratio.

    Used to frame real video for a bucket (golden sequences, calibration): keep the limiting side
    (made even), set the other to it times the bucket's aspect, rounded half up to an even number,
    clamped to [2, even frame side]; centred. Examples (frame HxW, bucket HxW -> top, left, ch, cw):
    144x176 in 192x256 -> (6, 0, 132, 176); 144x176 in 288x160 -> (0, 48, 144, 80);
    144x176 in 160x288 -> (23, 0, 98, 176); 144x176 in 224x224 -> (0, 16, 144, 144).

    Returns:
        (top, left, crop_height, crop_width).

    Raises:
        ConfigError: the frame is smaller than 2x2.
    """
    if height < 2 or width < 2:
        raise ConfigError(f"A golden source frame must be at least 2x2 pixels, got {height}x{width}.")
    hb, wb = bucket.height, bucket.width
    he, we = height - height % 2, width - width % 2
    if width * hb >= height * wb:
        ch = he
        cw = 2 * ((ch * wb + hb) // (2 * hb))
    else:
        cw = we
        ch = 2 * ((cw * hb + wb) // (2 * wb))
    ch, cw = min(max(ch, 2), he), min(max(cw, 2), we)
    return (height - ch) // 2, (width - cw) // 2, ch, cw
