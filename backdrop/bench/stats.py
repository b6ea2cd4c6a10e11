"""Statistics of latency samples, and the comparison of two sets of them.

Everything here is a pure function of the samples (milliseconds), so tests can hold it to
known answers. docs/benchmarking.md says what each number means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from backdrop.core.errors import BackdropError

BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the median's bootstrap interval (percentile method)."""

TRIM = 0.10
"""Fraction cut from each side for the trimmed mean."""


class StatsError(BackdropError):
    """Samples that cannot be summarised (none, negative, not finite)."""


@dataclass(frozen=True)
class Stats:
    """One metric's samples, summarised (all in milliseconds but ``n`` and ``cv``).

    Attributes:
        n: number of samples.
        p50, p90, p99: percentiles (linear interpolation between order statistics).
        trimmed_mean: mean of the samples left after cutting 10 % from each side.
        min, max, mean: as named.
        cv: coefficient of variation, standard deviation / mean (0 for one sample).
        median_ci_low, median_ci_high: bootstrap 95 % interval of the median (percentile
            method, 2000 resamples, fixed seed: the same samples give the same interval).
    """

    n: int
    p50: float
    p90: float
    p99: float
    trimmed_mean: float
    min: float
    max: float
    mean: float
    cv: float
    median_ci_low: float
    median_ci_high: float

    def to_dict(self) -> dict:
        return asdict(self)


def _checked(samples) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        raise StatsError("no samples to summarise.")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise StatsError("latency samples must be finite and >= 0.")
    return x


def trimmed_mean(samples, trim: float = TRIM) -> float:
    """Mean after dropping ``floor(trim * n)`` samples from each end (the plain mean when that
    is zero)."""
    x = np.sort(_checked(samples))
    k = int(np.floor(trim * x.size))
    return float(x[k : x.size - k].mean())


def bootstrap_medians(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The medians of ``resamples`` resamples of ``x`` with replacement, drawn from ``rng``."""
    return np.median(x[rng.integers(0, x.size, size=(resamples, x.size))], axis=1)


def median_interval(samples, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95 % interval of the median (percentile method)."""
    x = _checked(samples)
    if x.size == 1:
        return float(x[0]), float(x[0])
    medians = bootstrap_medians(x, resamples, np.random.default_rng(seed))
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def summarize(samples) -> Stats:
    """:class:`Stats` of ``samples``.

    Raises:
        StatsError: no samples, or a negative or non-finite one.
    """
    x = _checked(samples)
    p50, p90, p99 = (float(v) for v in np.percentile(x, [50, 90, 99]))
    mean = float(x.mean())
    cv = float(x.std(ddof=1) / mean) if x.size > 1 and mean > 0 else 0.0
    low, high = median_interval(x)
    return Stats(
        n=int(x.size), p50=p50, p90=p90, p99=p99, trimmed_mean=trimmed_mean(x), min=float(x.min()), max=float(x.max()),
        mean=mean, cv=cv, median_ci_low=low, median_ci_high=high,
    )


__all__ = [
    "BOOTSTRAP_RESAMPLES", "TRIM", "Stats", "StatsError", "bootstrap_medians", "median_interval", "summarize", "trimmed_mean",
]
