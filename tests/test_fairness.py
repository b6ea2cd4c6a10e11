"""Per-class fairness scores and the bootstrap over videos (backdrop.core.fairness)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from backdrop.core.errors import ConfigError, InputError
from backdrop.core.fairness import (
    BootstrapConfig,
    FairnessConfig,
    bootstrap_mean_ci,
    fairness_report,
    load_metadata,
    video_score,
)

# IoU-like per-video scores: Beta(18, 1.5) has mean 0.923 and a long left tail.
A, B = 18.0, 1.5
TRUE_MEAN = A / (A + B)


def test_bootstrap_is_seeded_and_reproducible():
    x = np.random.default_rng(0).beta(A, B, size=12)
    c = BootstrapConfig(seed=5)
    assert bootstrap_mean_ci(x, c) == bootstrap_mean_ci(x, c)
    assert bootstrap_mean_ci(x, c) != bootstrap_mean_ci(x, BootstrapConfig(seed=6))
    iv = bootstrap_mean_ci(x, c)
    assert iv.low < iv.mean < iv.high
    assert iv.mean == pytest.approx(x.mean())


def test_intervals_widen_as_videos_are_fewer():
    # Evenly spread scores (the distribution's quantiles): same spread, only n changes. (Below 5
    # videos the bootstrap cannot reach beyond the sample's range: those classes are flagged.)
    widths = []
    for n in (40, 20, 10, 5):
        x = stats.beta.ppf((np.arange(n) + 0.5) / n, A, B)
        iv = bootstrap_mean_ci(x, BootstrapConfig(seed=0))
        widths.append(iv.high - iv.low)
    assert all(w1 < w2 for w1, w2 in zip(widths, widths[1:])), widths
    # And on random data sets, on average (one random subset can be luckier than a larger one).
    rng = np.random.default_rng(1)
    mean_widths = []
    for n in (40, 20, 10, 5):
        w = [bootstrap_mean_ci(rng.beta(A, B, size=n), BootstrapConfig(n_resamples=1000, seed=i)) for i in range(30)]
        mean_widths.append(np.mean([iv.high - iv.low for iv in w]))
    assert all(w1 < w2 for w1, w2 in zip(mean_widths, mean_widths[1:])), mean_widths


def coverage(method: str, n: int, datasets: int, resamples: int, seed: int = 2022) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(datasets):
        iv = bootstrap_mean_ci(rng.beta(A, B, size=n), BootstrapConfig(n_resamples=resamples, method=method, seed=i))
        hits += iv.low <= TRUE_MEAN <= iv.high
    return hits / datasets


# Stated band for 200 simulated data sets at nominal 95%: the expanded percentile interval's
# true coverage on this skewed distribution is about 0.93 at n=20 (1000-set runs, below); the
# binomial standard error over 200 sets is 0.018, so [0.88, 0.99] is about +-3 SE.
COVERAGE_BAND = (0.88, 0.99)


def test_bootstrap_coverage_on_simulated_data():
    cov = coverage("expanded", n=20, datasets=200, resamples=1000)
    print(f"expanded percentile, n=20, 200 data sets: coverage {cov:.3f}")
    assert COVERAGE_BAND[0] <= cov <= COVERAGE_BAND[1]


@pytest.mark.slow
def test_bootstrap_coverage_by_sample_size_and_method():
    rows = {}
    for n in (5, 10, 20, 40):
        for method in ("percentile", "expanded"):
            rows[(n, method)] = coverage(method, n=n, datasets=1000, resamples=2000)
            print(f"n={n:>2} {method:<10} coverage {rows[(n, method)]:.3f}")
    for n in (5, 10, 20, 40):
        assert rows[(n, "expanded")] >= rows[(n, "percentile")]
    assert rows[(40, "expanded")] >= 0.92 and rows[(20, "expanded")] >= 0.90


def test_video_level_interval_is_wider_than_a_frame_level_one():
    # Frames of a video share its quality: 10 videos x 100 frames, video effects dominate.
    rng = np.random.default_rng(4)
    video_means = rng.beta(A, B, size=10)
    frames = np.clip(video_means[:, None] + rng.normal(0, 0.01, size=(10, 100)), 0, 1)
    per_video = bootstrap_mean_ci(frames.mean(axis=1))
    per_frame = bootstrap_mean_ci(frames.ravel())  # the wrong unit
    ratio = (per_video.high - per_video.low) / (per_frame.high - per_frame.low)
    assert ratio > 5, ratio


def test_degenerate_inputs():
    one = bootstrap_mean_ci([0.9])
    assert one.mean == 0.9 and math.isnan(one.low) and math.isnan(one.high)
    same = bootstrap_mean_ci([0.8, 0.8, 0.8])
    assert same.low == same.mean == same.high == pytest.approx(0.8)
    with pytest.raises(ConfigError, match="non-empty 1-D list of finite scores"):
        bootstrap_mean_ci([])
    with pytest.raises(ConfigError, match="Unknown bootstrap method 'bca'. Valid: expanded, percentile"):
        BootstrapConfig(method="bca")
    with pytest.raises(ConfigError, match=r"Confidence level must be in \(0, 1\)"):
        BootstrapConfig(confidence=95)


def write_meta(tmp_path, data) -> object:
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_load_metadata_and_its_errors(tmp_path):
    path = write_meta(tmp_path, {"videos": {"a": {"skin_tone": "II", "age": 30}, "b": {}}})
    assert load_metadata(path) == {"a": {"skin_tone": "II", "age": "30"}, "b": {}}
    with pytest.raises(InputError, match=r"Metadata file not found: .*nope.json. Pass --meta"):
        load_metadata(tmp_path / "nope.json")
    with pytest.raises(InputError, match=r"meta.json is not valid JSON"):
        load_metadata(write_meta(tmp_path, "{videos:"))
    with pytest.raises(InputError, match=r'meta.json has no "videos" object'):
        load_metadata(write_meta(tmp_path, {"clips": {}}))
    with pytest.raises(InputError, match=r"video 'a', category 'x': the class must be a string"):
        load_metadata(write_meta(tmp_path, {"videos": {"a": {"x": [1]}}}))


def make_scores(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        iou = rng.beta(A, B, size=30)
        out[f"v{i:02d}"] = video_score(f"v{i:02d}", iou, iou - 0.2)
    return out


def test_fairness_report_per_class_counts_flags_and_seeding():
    scores = make_scores(12)
    meta = {f"v{i:02d}": {"skin_tone": ["I-II", "III-IV", "V-VI"][i % 3], "gender": "f" if i < 9 else "m"} for i in range(12)}
    meta["v00"]["lighting"] = "dim"
    rep = fairness_report(scores, meta, FairnessConfig(min_videos=5))
    by = {(c.category, c.name): c for c in rep.classes}
    assert set(by) == {("skin_tone", "I-II"), ("skin_tone", "III-IV"), ("skin_tone", "V-VI"), ("gender", "f"),
                       ("gender", "m"), ("lighting", "dim")}
    assert rep.categories == ("skin_tone", "gender", "lighting")
    assert by[("gender", "f")].n_videos == 9 and not by[("gender", "f")].few_videos
    assert by[("gender", "m")].n_videos == 3 and by[("gender", "m")].few_videos
    assert by[("skin_tone", "I-II")].n_videos == 4 and by[("skin_tone", "I-II")].few_videos
    dim = by[("lighting", "dim")]
    assert dim.n_videos == 1 and dim.few_videos and math.isnan(dim.iou.low)
    f = by[("gender", "f")]
    assert f.iou.mean == pytest.approx(np.mean([scores[v].iou for v in f.videos]))
    assert f.boundary_iou.mean == pytest.approx(f.iou.mean - 0.2)
    assert f.iou.low < f.iou.mean < f.iou.high
    d = rep.to_dict()
    assert d["bootstrap"]["unit"] == "video" and d["classes"][0]["n_videos"] == 4
    # Adding a category leaves the other classes' intervals unchanged (per-class random streams).
    meta2 = {k: {**v, "pose": "sitting"} for k, v in meta.items()}
    rep2 = fairness_report(scores, meta2, FairnessConfig(min_videos=5))
    by2 = {(c.category, c.name): c for c in rep2.classes}
    assert by2[("gender", "f")] == f


def test_fairness_report_unknown_and_unlabelled_videos():
    scores = make_scores(3)
    rep = fairness_report(scores, {"v00": {"g": "a"}, "v01": {"g": "a"}})
    assert rep.unlabelled_videos == ("v02",)
    with pytest.raises(ConfigError, match=r"lists 1 video\(s\) with no predictions/labels: v09"):
        fairness_report(scores, {"v09": {"g": "a"}})
