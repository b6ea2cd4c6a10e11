"""Per-class IoU for fairness analysis, with bootstrap confidence intervals over videos.

Each video of a labelled set carries attribute classes (skin tone, apparent gender, pose,
lighting, ...) from a metadata file. A video's score is the mean of its per-frame scores; a
class's score is the mean over its videos, with a 95% interval from a bootstrap that resamples
*videos*, never frames: frames of one video are strongly correlated, and frame-level intervals
come out several times too narrow.

Metadata file (JSON, UTF-8)::

    {
      "videos": {
        "carphone_a": {"skin_tone": "II", "apparent_gender": "male", "lighting": "daylight"},
        "carphone_b": {"skin_tone": "V", "lighting": "dim"}
      }
    }

Any number of categories and classes; values are strings (numbers are written as strings). A
video may omit a category; it is then in no class of that category. Video names match the
prediction/label names (docs/eval-dataset.md).

Bootstrap: ``method="expanded"`` (default) is the expanded percentile interval (Hesterberg,
"What Teachers Should Know About the Bootstrap", The American Statistician 69(4), 2015): the
percentile interval taken at the tail probability ``Phi(-sqrt(n/(n-1)) * t_{1-alpha/2, n-1})`` instead of
``alpha/2``, which corrects the plain percentile interval's under-coverage for few videos
(measured coverage: docs/metrics.md). ``method="percentile"`` is the plain percentile
interval. Resampling is seeded per (seed, category, class, metric), so adding a class does not
change the other classes' intervals.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from backdrop.core.errors import ConfigError, InputError

BOOTSTRAP_METHODS = ("expanded", "percentile")


@dataclass(frozen=True)
class BootstrapConfig:
    """How confidence intervals are computed.

    Attributes:
        confidence: two-sided confidence level, in (0, 1).
        n_resamples: bootstrap resamples per interval.
        method: ``"expanded"`` (expanded percentile, default) or ``"percentile"``.
        seed: base seed; intervals are reproducible for a given seed.
    """

    confidence: float = 0.95
    n_resamples: int = 4000
    method: str = "expanded"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"Confidence level must be in (0, 1); got {self.confidence}. The usual value is 0.95.")
        if self.n_resamples < 100:
            raise ConfigError(f"Use at least 100 bootstrap resamples; got {self.n_resamples}.")
        if self.method not in BOOTSTRAP_METHODS:
            raise ConfigError(f"Unknown bootstrap method {self.method!r}. Valid: {', '.join(BOOTSTRAP_METHODS)}.")


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval. ``low``/``high`` are NaN when undefined (n < 2)."""

    mean: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return {"mean": _num(self.mean), "low": _num(self.low), "high": _num(self.high)}


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def bootstrap_mean_ci(
    scores: Sequence[float],
    config: BootstrapConfig = BootstrapConfig(),
    *,
    stream: Sequence[int] = (),
) -> Interval:
    """Mean of ``scores`` with a bootstrap confidence interval.

    Args:
        scores: one score per independent unit (per video), NaN-free.
        config: confidence level, resamples, method and seed.
        stream: extra integers mixed into the seed (e.g. hashes of category and class) so that
            different intervals use independent, reproducible random streams.

    Returns:
        :class:`Interval`. With one score the interval is (NaN, NaN); with identical scores it
        is the point itself (the bootstrap distribution is degenerate).

    Raises:
        ConfigError: ``scores`` is empty or contains NaN.
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or np.isnan(x).any():
        raise ConfigError(f"Bootstrap needs a non-empty 1-D list of finite scores; got {x.tolist()!r}.")
    n = x.size
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan)
    if np.ptp(x) == 0:
        return Interval(mean, mean, mean)
    alpha = 1.0 - config.confidence
    if config.method == "expanded":
        z = math.sqrt(n / (n - 1)) * float(stats.t.ppf(1.0 - alpha / 2.0, n - 1))
        tail = float(stats.norm.cdf(-z))
    else:
        tail = alpha / 2.0
    rng = np.random.default_rng([config.seed, *stream])
    means = x[rng.integers(0, n, size=(config.n_resamples, n))].mean(axis=1)
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(mean, float(low), float(high))


def _stream(*names: str) -> tuple[int, ...]:
    return tuple(zlib.crc32(s.encode("utf-8")) for s in names)


@dataclass(frozen=True)
class VideoScore:
    """A video's scores: means over its frames.

    Attributes:
        name: video name (matches the metadata's keys).
        frames: number of frames scored.
        iou: mean per-frame mask IoU.
        boundary_iou: mean per-frame Boundary IoU.
    """

    name: str
    frames: int
    iou: float
    boundary_iou: float


def video_score(name: str, iou_per_frame: Sequence[float], boundary_iou_per_frame: Sequence[float]) -> VideoScore:
    """Per-video score: the mean over frames (NaN frames, if any, are ignored).

    Raises:
        ConfigError: no frames, or the two lists differ in length.
    """
    a = np.asarray(iou_per_frame, dtype=np.float64)
    b = np.asarray(boundary_iou_per_frame, dtype=np.float64)
    if a.size == 0 or a.shape != b.shape:
        raise ConfigError(f"Video {name!r}: need the same non-zero number of IoU and Boundary IoU values.")
    return VideoScore(name=name, frames=int(a.size), iou=float(np.nanmean(a)), boundary_iou=float(np.nanmean(b)))


@dataclass(frozen=True)
class ClassScore:
    """One class of one category, e.g. ``skin_tone = "V"``.

    Attributes:
        category: attribute category.
        name: class within the category.
        videos: names of the videos in the class.
        iou: mean over videos of per-video IoU, with its interval.
        boundary_iou: same for Boundary IoU.
        few_videos: True when ``len(videos) < min_videos``: the interval is unreliable (or
            undefined) and the class should not be compared.
    """

    category: str
    name: str
    videos: tuple[str, ...]
    iou: Interval
    boundary_iou: Interval
    few_videos: bool

    @property
    def n_videos(self) -> int:
        return len(self.videos)

    def to_dict(self) -> dict:
        return {
            "category": self.category,
            "class": self.name,
            "n_videos": self.n_videos,
            "videos": list(self.videos),
            "iou": self.iou.to_dict(),
            "boundary_iou": self.boundary_iou.to_dict(),
            "few_videos": self.few_videos,
        }


@dataclass(frozen=True)
class FairnessConfig:
    """Settings of the per-class analysis.

    Attributes:
        min_videos: classes with fewer videos are flagged ``few_videos`` (default 5).
        bootstrap: interval settings.
    """

    min_videos: int = 5
    bootstrap: BootstrapConfig = BootstrapConfig()

    def __post_init__(self) -> None:
        if self.min_videos < 1:
            raise ConfigError(f"min_videos must be >= 1; got {self.min_videos}.")


@dataclass(frozen=True)
class FairnessReport:
    """Per-class scores over all categories, in metadata order (categories, then classes).

    Attributes:
        classes: one entry per (category, class).
        config: the settings used.
        unlabelled_videos: evaluated videos the metadata does not mention.
    """

    classes: tuple[ClassScore, ...]
    config: FairnessConfig
    unlabelled_videos: tuple[str, ...]

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.category for c in self.classes))

    def to_dict(self) -> dict:
        b = self.config.bootstrap
        return {
            "min_videos": self.config.min_videos,
            "bootstrap": {
                "unit": "video",
                "method": b.method,
                "confidence": b.confidence,
                "n_resamples": b.n_resamples,
                "seed": b.seed,
            },
            "unlabelled_videos": list(self.unlabelled_videos),
            "classes": [c.to_dict() for c in self.classes],
        }


def load_metadata(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Read a fairness metadata file: ``{"videos": {video: {category: class}}}``.

    Args:
        path: JSON file (format in this module's docstring and docs/eval-dataset.md).

    Returns:
        ``{video: {category: class}}`` with every key and value a str.

    Raises:
        InputError: the file is missing, not JSON, or not in this format.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Metadata file not found: {path}. Pass --meta a JSON file as in docs/eval-dataset.md.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid JSON ({e}). See docs/eval-dataset.md for the metadata format.") from e
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict) or not videos:
        raise InputError(
            f'{path} has no "videos" object. Write {{"videos": {{"<video>": {{"<category>": "<class>"}}}}}} '
            "(docs/eval-dataset.md)."
        )
    out: dict[str, dict[str, str]] = {}
    for video, attrs in videos.items():
        if not isinstance(attrs, dict):
            raise InputError(f'{path}: video {video!r} must map to an object {{"<category>": "<class>"}}, got {attrs!r}.')
        row: dict[str, str] = {}
        for cat, cls in attrs.items():
            if not isinstance(cls, (str, int)) or isinstance(cls, bool):
                raise InputError(f"{path}: video {video!r}, category {cat!r}: the class must be a string; got {cls!r}.")
            row[str(cat)] = str(cls)
        out[str(video)] = row
    return out


def fairness_report(
    scores: Mapping[str, VideoScore],
    metadata: Mapping[str, Mapping[str, str]],
    config: FairnessConfig = FairnessConfig(),
) -> FairnessReport:
    """Per-class mean IoU and Boundary IoU with bootstrap intervals over videos.

    Args:
        scores: per-video scores by video name (from :func:`video_score`).
        metadata: ``{video: {category: class}}`` (from :func:`load_metadata`); every video in it
            must have a score.
        config: ``min_videos`` and bootstrap settings.

    Returns:
        :class:`FairnessReport`.

    Raises:
        ConfigError: the metadata names videos that have no scores.
    """
    missing = [v for v in metadata if v not in scores]
    if missing:
        raise ConfigError(
            f"The metadata lists {len(missing)} video(s) with no predictions/labels: {', '.join(missing[:10])}. "
            "Remove them from the metadata or add their masks."
        )
    members: dict[str, dict[str, list[str]]] = {}
    for video, attrs in metadata.items():
        for cat, cls in attrs.items():
            members.setdefault(cat, {}).setdefault(cls, []).append(video)
    classes: list[ClassScore] = []
    b = config.bootstrap
    for cat, by_class in members.items():
        for cls, videos in by_class.items():
            vs = [scores[v] for v in videos]
            classes.append(
                ClassScore(
                    category=cat,
                    name=cls,
                    videos=tuple(videos),
                    iou=bootstrap_mean_ci([s.iou for s in vs], b, stream=_stream(cat, cls, "iou")),
                    boundary_iou=bootstrap_mean_ci([s.boundary_iou for s in vs], b, stream=_stream(cat, cls, "biou")),
                    few_videos=len(videos) < config.min_videos,
                )
            )
    unlabelled = tuple(v for v in scores if v not in metadata)
    return FairnessReport(classes=tuple(classes), config=config, unlabelled_videos=unlabelled)
