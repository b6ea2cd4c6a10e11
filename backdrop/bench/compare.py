"""``backdrop results compare``: is run B slower or faster than run A, beyond the noise?

A change is called a regression or an improvement only when it is both larger than a threshold
(the ratio of medians B/A beyond 1 +- 5 % by default) and statistically significant on the raw
samples: a two-sided Mann-Whitney U test (scipy.stats.mannwhitneyu) at ``alpha`` (0.01 by
default) on the medians of the runs' rounds. Rounds, not frames, are the units: the frames of
one round share the machine's state of those seconds (its clock, its neighbours' load), so on a
shared machine two rounds differ by far more than two frames of one round, and a test over
frames would call that drift a change. Runs benched in one session (``backdrop bench
--against``: the same ``session``, their artifacts taking turns) are compared round by round
instead: a one-sample t-test on the logs of the per-round ratios of medians (round r of B
against round r of A, seconds apart), which cancels the machine's drift; this is the fair A/B
on a shared machine, where two sessions minutes apart can differ by tens of percent with
nothing changed. A run without round boundaries (``round_frames``) is tested over its frames,
with a warning that the p-value is optimistic. Either criterion alone is "no change": a 6 %
shift inside the rounds' spread is not significant, and a 0.5 % shift can be significant
without mattering. With the default alpha a run needs at least five rounds for any change to be
significant (the smallest two-sided p of 5 against 5 is 0.008).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from backdrop.bench.stats import bootstrap_medians
from backdrop.core.errors import ConfigError

THRESHOLD = 0.05
ALPHA = 0.01
RATIO_RESAMPLES = 1000
"""Bootstrap resamples of the ratio's interval (for display; the verdict does not use it)."""
VERDICTS = ("regression", "improvement", "no change")


@dataclass(frozen=True)
class Change:
    """One metric of one artifact, run A against run B.

    Attributes:
        key: the artifact key; metric: "model", "e2e" or "load".
        median_a, median_b: the medians (ms).
        ratio: median_b / median_a (> 1: B is slower).
        ratio_low, ratio_high: bootstrap 95 % interval of the ratio of medians.
        p_value: the two-sided Mann-Whitney U test's.
        verdict: "regression", "improvement" or "no change".
        n_a, n_b: sample counts.
        unit: what the test compared: "paired rounds", "rounds" (their medians) or "frames".
        units_a, units_b: how many of them.
    """

    key: str
    metric: str
    median_a: float
    median_b: float
    ratio: float
    ratio_low: float
    ratio_high: float
    p_value: float
    verdict: str
    n_a: int
    n_b: int
    unit: str = "frames"
    units_a: int = 0
    units_b: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _check(threshold: float, alpha: float) -> None:
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold must be a fraction in (0, 1), e.g. 0.05 for 5 %; got {threshold}.")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), e.g. 0.01; got {alpha}.")


def round_medians(samples: Sequence[float], round_frames: Sequence[int] | None) -> np.ndarray | None:
    """The median of each round's frames; None when the boundaries are missing or do not add
    up to the samples."""
    if not round_frames or sum(round_frames) != len(samples) or any(n < 1 for n in round_frames):
        return None
    edges = np.cumsum([0, *round_frames])
    x = np.asarray(samples, np.float64)
    return np.array([np.median(x[edges[i]:edges[i + 1]]) for i in range(len(round_frames))])


def compare_samples(
    key: str, metric: str, a: Sequence[float], b: Sequence[float], threshold: float = THRESHOLD, alpha: float = ALPHA,
    seed: int = 0, rounds_a: Sequence[int] | None = None, rounds_b: Sequence[int] | None = None, paired: bool = False,
) -> Change:
    """Compare two sample sets of one metric (see the module docstring for the rule);
    ``rounds_a`` / ``rounds_b`` are the timed frames of each round, in order; ``paired``: the
    runs' rounds took turns in one session, so round i of each are compared.

    Raises:
        ConfigError: a threshold or alpha outside (0, 1), or an empty sample set.
    """
    from scipy.stats import mannwhitneyu

    _check(threshold, alpha)
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.size == 0 or y.size == 0:
        raise ConfigError(f"{key} {metric}: nothing to compare (run A has {x.size} samples, run B {y.size}).")
    ma, mb = float(np.median(x)), float(np.median(y))
    ratio = mb / ma if ma > 0 else float("inf")
    rng = np.random.default_rng(seed)
    ra, rb = bootstrap_medians(x, RATIO_RESAMPLES, rng), bootstrap_medians(y, RATIO_RESAMPLES, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = np.percentile(rb / ra, [2.5, 97.5])
    ua, ub = round_medians(x, rounds_a), round_medians(y, rounds_b)
    if paired and ua is not None and ub is not None and ua.size == ub.size and ua.size > 1 and np.all(ua > 0):
        from scipy.stats import ttest_1samp

        unit, tx, ty = "paired rounds", ua, ub
        logs = np.log(ub / ua)
        p = 0.0 if np.ptp(logs) == 0 and logs[0] != 0 else float(ttest_1samp(logs, 0.0).pvalue)
        p = 1.0 if not np.isfinite(p) else p
    else:
        unit, tx, ty = ("rounds", ua, ub) if ua is not None and ub is not None else ("frames", x, y)
        p = float(mannwhitneyu(tx, ty, alternative="two-sided").pvalue) if tx.size > 1 and ty.size > 1 else 1.0
    verdict = "no change"
    if p < alpha and ratio > 1 + threshold:
        verdict = "regression"
    elif p < alpha and ratio < 1 / (1 + threshold):
        verdict = "improvement"
    return Change(key, metric, ma, mb, ratio, float(low), float(high), p, verdict, int(x.size), int(y.size), unit,
                  int(tx.size), int(ty.size))


@dataclass(frozen=True)
class Comparison:
    """Two runs compared: every metric of every artifact key in both, and the keys in one only."""

    run_a: str
    run_b: str
    threshold: float
    alpha: float
    changes: list[Change]
    only_a: list[str]
    only_b: list[str]
    warnings: list[str]

    def counts(self) -> dict[str, int]:
        return {v: sum(c.verdict == v for c in self.changes) for v in VERDICTS}

    def to_dict(self) -> dict:
        return {
            "run_a": self.run_a, "run_b": self.run_b, "threshold": self.threshold, "alpha": self.alpha,
            "test": "runs of one session: a one-sample t-test on the logs of the per-round ratios of medians; else a "
                    "two-sided Mann-Whitney U on the medians of the runs' rounds (frames where a run has no round "
                    "boundaries); and the ratio of medians beyond the threshold",
            "counts": self.counts(), "changes": [c.to_dict() for c in self.changes], "only_a": self.only_a,
            "only_b": self.only_b, "warnings": self.warnings,
        }


def run_samples(document: dict) -> dict[str, dict[str, object]]:
    """{artifact key: {"e2e": samples, "model": samples, "load": samples, "rounds": frames per
    round or None}} of a results document."""
    out = {}
    for r in document["results"]:
        out[r["artifact"]["key"]] = {"e2e": r["e2e_ms"], "model": r["model_ms"], "load": r["load_ms"],
                                     "rounds": r.get("round_frames")}
    return out


def compare_runs(
    run_a: str, samples_a: dict[str, dict], run_b: str, samples_b: dict[str, dict],
    threshold: float = THRESHOLD, alpha: float = ALPHA, metrics: Sequence[str] = ("e2e", "model"),
    warnings: Sequence[str] = (), paired: bool = False,
) -> Comparison:
    """Compare runs given as :func:`run_samples`; artifacts are matched by key (bucket, kind,
    precision, state form), so a re-export of the same artifact compares with its predecessor.
    Load times are one per round, so they are tested as they are."""
    _check(threshold, alpha)
    changes = []
    frames_only = False
    for key in sorted(set(samples_a) & set(samples_b)):
        for metric in metrics:
            a, b = samples_a[key].get(metric) or [], samples_b[key].get(metric) or []
            if a and b:
                ra = samples_a[key].get("rounds") if metric != "load" else None
                rb = samples_b[key].get("rounds") if metric != "load" else None
                change = compare_samples(key, metric, a, b, threshold, alpha, rounds_a=ra, rounds_b=rb, paired=paired)
                frames_only |= metric != "load" and change.unit == "frames"
                changes.append(change)
    notes = list(warnings)
    if frames_only:
        notes.append("some results have no round boundaries (round_frames): their frames were tested as if independent, "
                     "so their p-values are optimistic.")
    return Comparison(
        run_a, run_b, threshold, alpha, changes, sorted(set(samples_a) - set(samples_b)),
        sorted(set(samples_b) - set(samples_a)), notes,
    )


def run_warnings(a: dict, b: dict, paired: bool) -> list[str]:
    """What a reader of a comparison of results documents ``a`` and ``b`` must know: other sessions,
    device tiers or protocols, or an emulated run."""
    da, db = a["run"]["device"], b["run"]["device"]
    out = []
    if not paired:
        out.append("the runs are of different sessions: a shared machine's speed can drift by tens of percent between "
                   "them with nothing changed, so only a change beyond that drift shows; for a fair A/B bench both "
                   "exports in one session (`backdrop bench --dist NEW --against OLD`).")
    if da["tier"] != db["tier"]:
        out.append(f"the runs are of different device tiers ({da['tier']} and {db['tier']}): a difference is the device's too.")
    if da["emulated"] or db["emulated"]:
        out.append("an emulated run: its timings are functional, not latency; a change says little about phones.")
    pa, pb = a["run"]["protocol"], b["run"]["protocol"]
    if {k: v for k, v in pa.items() if k != "frames"} != {k: v for k, v in pb.items() if k != "frames"}:
        out.append(f"the runs used different protocols ({pa['name']} and {pb['name']}, or other settings).")
    return out


def same_session(a: dict, b: dict) -> bool:
    """Whether two results documents were benched in one session (their rounds took turns)."""
    return bool(a["run"].get("session")) and a["run"].get("session") == b["run"].get("session")


def compare_documents(
    run_a: str, a: dict, run_b: str, b: dict, threshold: float = THRESHOLD, alpha: float = ALPHA,
    metrics: Sequence[str] = ("e2e", "model"),
) -> Comparison:
    """Compare two results documents (ids ``run_a``, ``run_b``) the way ``backdrop results
    compare`` does: round by round when they share a session, with :func:`run_warnings`. The
    dashboard marks exactly the changes this calls regressions and improvements."""
    paired = same_session(a, b)
    return compare_runs(run_a, run_samples(a), run_b, run_samples(b), threshold, alpha, metrics, run_warnings(a, b, paired),
                        paired=paired)


__all__ = [
    "ALPHA", "THRESHOLD", "VERDICTS", "Change", "Comparison", "compare_documents", "compare_runs", "compare_samples",
    "round_medians", "run_samples", "run_warnings", "same_session",
]
