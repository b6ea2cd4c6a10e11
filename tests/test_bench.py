"""`backdrop bench`: the statistics and the comparison on samples with known answers, the
protocol and the thermal gate on made-up readings, the rotation of rounds on a recording device,
and real runs on this host (the Python runtimes) through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backdrop.bench.compare import compare_runs, compare_samples
from backdrop.bench.document import ResultsFormatError, document_id, validate_document
from backdrop.bench.protocol import PROTOCOLS, Gate, gate_blockers, protocol_named, wait_for_gate
from backdrop.bench.stats import StatsError, median_interval, summarize, trimmed_mean
from backdrop.core.errors import ConfigError
from backdrop.device_tests.base import BenchPlan, DeviceError, DeviceLostError, RoundTimings

# Measures time: `make test` runs this file alone, after the tests spread over the cores.
pytestmark = pytest.mark.timed

# ---- statistics ------------------------------------------------------------------------------


def test_summary_of_one_to_ten():
    s = summarize(np.arange(1, 11, dtype=float))
    assert (s.n, s.p50, s.min, s.max, s.mean) == (10, 5.5, 1.0, 10.0, 5.5)
    assert s.p90 == pytest.approx(9.1) and s.p99 == pytest.approx(9.91)
    assert s.trimmed_mean == pytest.approx(5.5)  # 2..9 after cutting one from each end
    assert s.cv == pytest.approx(np.std(np.arange(1, 11), ddof=1) / 5.5)
    assert s.median_ci_low <= 5.5 <= s.median_ci_high and s.median_ci_low >= 1 and s.median_ci_high <= 10
    assert summarize(np.arange(1, 11, dtype=float)) == s  # the interval is seeded: same samples, same answer


def test_trimmed_mean_drops_the_outliers_the_mean_keeps():
    x = [10.0] * 18 + [1000.0, 0.0]
    assert trimmed_mean(x) == 10.0 and summarize(x).mean == pytest.approx(59.0)
    assert trimmed_mean([3.0, 4.0]) == 3.5  # nothing cut from two samples


def test_median_interval_narrows_with_more_samples():
    rng = np.random.default_rng(0)
    few, many = rng.normal(10, 1, 20), rng.normal(10, 1, 2000)
    lo_f, hi_f = median_interval(few)
    lo_m, hi_m = median_interval(many)
    assert hi_m - lo_m < (hi_f - lo_f) / 4 and lo_m < 10 < hi_m
    assert median_interval([4.0]) == (4.0, 4.0)


@pytest.mark.parametrize("bad", [[], [1.0, -1.0], [1.0, float("nan")], [float("inf")]])
def test_bad_samples_are_refused(bad):
    with pytest.raises(StatsError):
        summarize(bad)


# ---- comparison ------------------------------------------------------------------------------


def _timings(rng, n=200, median=10.0, spread=0.03):
    """Frame times shaped like real ones: log-normal around ``median`` with rare slow frames."""
    x = median * rng.lognormal(0.0, spread, n)
    x[rng.random(n) < 0.03] *= 1.5
    return x


def test_compare_calls_a_planted_slowdown_and_speed_up_and_not_the_noise():
    rng = np.random.default_rng(1)
    a, b = _timings(rng), _timings(rng)
    same = compare_samples("k", "e2e", a, b)
    assert same.verdict == "no change" and 0.97 < same.ratio < 1.03
    slow = compare_samples("k", "e2e", a, b * 1.2)
    assert slow.verdict == "regression" and slow.ratio == pytest.approx(1.2, rel=0.03) and slow.p_value < 1e-6
    assert slow.ratio_low < slow.ratio < slow.ratio_high
    fast = compare_samples("k", "e2e", a, b * 0.8)
    assert fast.verdict == "improvement"


def test_compare_needs_both_size_and_significance():
    rng = np.random.default_rng(2)
    # 3 % slower over 2000 quiet samples: significant, below the 5 % threshold -> no change
    a, b = _timings(rng, 2000, spread=0.01), _timings(rng, 2000, spread=0.01) * 1.03
    small = compare_samples("k", "model", a, b)
    assert small.p_value < 0.01 and small.verdict == "no change"
    # 20 % slower in three very noisy samples each: large, not significant -> no change
    noisy = compare_samples("k", "model", [5.0, 20.0, 9.0], [6.0, 24.0, 11.0])
    assert noisy.ratio > 1.05 and noisy.p_value >= 0.01 and noisy.verdict == "no change"
    assert compare_samples("k", "model", a, b, threshold=0.02).verdict == "regression"


def test_rounds_are_the_units_so_drift_between_rounds_is_not_a_change():
    """Two runs of five rounds whose rounds drift by +-20 % (a shared machine) but whose frames
    within a round barely vary: over frames the 8 % gap looks significant, over rounds it is not."""
    rng = np.random.default_rng(4)
    levels_a, levels_b = [10, 12, 8.5, 11, 9.5], [11, 9, 12.5, 10.5, 10.8]
    a = np.concatenate([_timings(rng, 40, lv, 0.01) for lv in levels_a])
    b = np.concatenate([_timings(rng, 40, lv, 0.01) for lv in levels_b])
    frames = compare_samples("k", "e2e", a, b)
    assert frames.unit == "frames" and frames.p_value < 0.01 and frames.verdict == "regression"
    rounds = compare_samples("k", "e2e", a, b, rounds_a=[40] * 5, rounds_b=[40] * 5)
    assert (rounds.unit, rounds.units_a, rounds.units_b) == ("rounds", 5, 5)
    assert rounds.p_value > 0.05 and rounds.verdict == "no change"
    # against that much drift five rounds cannot see 25 % (the rounds overlap), but do see 50 %
    assert compare_samples("k", "e2e", a, a * 1.25, rounds_a=[40] * 5, rounds_b=[40] * 5).verdict == "no change"
    slow = compare_samples("k", "e2e", a, a * 1.5, rounds_a=[40] * 5, rounds_b=[40] * 5)
    assert slow.verdict == "regression" and slow.p_value < 0.01
    # boundaries that do not add up to the samples are not used
    assert compare_samples("k", "e2e", a, b, rounds_a=[40] * 4, rounds_b=[40] * 5).unit == "frames"


def test_compare_runs_matches_by_key_and_lists_the_rest():
    rng = np.random.default_rng(3)
    a = {"x/onnx-fp32-explicit": {"e2e": list(_timings(rng)), "model": list(_timings(rng))}, "only-a": {"e2e": [1.0]}}
    b = {"x/onnx-fp32-explicit": {"e2e": list(_timings(rng) * 1.3), "model": []}, "only-b": {"e2e": [1.0]}}
    c = compare_runs("A", a, "B", b)
    assert [(ch.key, ch.metric, ch.verdict) for ch in c.changes] == [("x/onnx-fp32-explicit", "e2e", "regression")]
    assert c.only_a == ["only-a"] and c.only_b == ["only-b"] and c.counts()["regression"] == 1
    with pytest.raises(ConfigError, match="threshold"):
        compare_runs("A", a, "B", b, threshold=5)
    with pytest.raises(ConfigError, match="alpha"):
        compare_samples("k", "e2e", [1.0], [1.0], alpha=0)
    with pytest.raises(ConfigError, match="nothing to compare"):
        compare_samples("k", "e2e", [], [1.0])


# ---- protocol and gate -----------------------------------------------------------------------


def test_protocols_and_overrides():
    quick, mlperf = PROTOCOLS["quick"], PROTOCOLS["mlperf"]
    assert mlperf.min_frames >= 1024 and mlperf.min_seconds >= 60
    plan = quick.round_plan()
    assert plan.min_frames * quick.rounds >= quick.min_frames
    assert plan.min_seconds * quick.rounds == pytest.approx(quick.min_seconds)
    assert protocol_named("quick") is quick
    custom = protocol_named("quick", min_frames=7, rounds=None, max_temp_c=40.0)
    assert (custom.name, custom.min_frames, custom.rounds, custom.gate.max_temp_c) == ("custom", 7, quick.rounds, 40.0)
    with pytest.raises(ConfigError, match="known: quick, mlperf"):
        protocol_named("fastest")
    with pytest.raises(ConfigError, match="rounds >= 1"):
        protocol_named("quick", rounds=0)
    with pytest.raises(DeviceError, match="min_frames >= 1"):
        BenchPlan(min_frames=0)


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_gate_waits_for_the_zone_to_cool_and_records_what_it_read():
    clock = _Clock()
    temps = iter([52.0, 49.0, 44.0, 44.0])
    check = wait_for_gate(lambda: {"temp_c:cpu": next(temps)}, Gate(max_temp_c=45.0, timeout_s=60, poll_s=1), 2,
                          sleep=clock.sleep, clock=clock)
    assert (check.round, check.waited_s, check.timed_out, check.readings) == (2, 2.0, False, {"temp_c:cpu": 44.0})


def test_gate_times_out_on_a_hot_or_throttled_device_and_passes_with_no_readings():
    clock = _Clock()
    hot = wait_for_gate(lambda: {"temp_c:cpu": 70.0}, Gate(45.0, timeout_s=5, poll_s=2), 0, sleep=clock.sleep, clock=clock)
    assert hot.timed_out and hot.waited_s == pytest.approx(5.0)
    throttled = {"cap_mhz:cpu3": 1200.0, "max_mhz:cpu3": 2800.0, "temp_c:cpu": 30.0}
    assert gate_blockers(throttled, Gate()) == ["cpu3 capped at 1200 of 2800 MHz"]
    assert gate_blockers({"cap_mhz:cpu3": 2800.0, "max_mhz:cpu3": 2800.0, "temp_c:a": 45.0}, Gate(45.0)) == ["a 45.0 C"]
    free = wait_for_gate(dict, Gate(), 0, sleep=clock.sleep, clock=clock)
    assert not free.timed_out and free.readings == {} and free.waited_s == 0


# ---- the rotation over a recording device ----------------------------------------------------


class RecordingHost:
    """The host device, but it records the order of rounds and gate reads, and answers each
    round with timings that say which artifact ran (so the document can be checked)."""

    def __init__(self, fail: str | None = None, lose: bool = False):
        from backdrop.device_tests.host import HostDevice

        self._host = HostDevice()
        self.name, self.tier = "host", self._host.tier
        self.calls: list[str] = []
        self.gates = 0
        self.fail, self.lose = fail, lose

    def __getattr__(self, name):
        return getattr(self._host, name)

    def gate_readings(self):
        self.gates += 1
        return {"temp_c:zone0": 30.0 + self.gates}

    def bench_round(self, artifact, golden, plan):
        self.calls.append(artifact.key)
        if self.lose:
            raise DeviceLostError("the phone went away")
        if artifact.key == self.fail:
            raise DeviceError(f"{artifact.key}: the runtime crashed")
        n = plan.min_frames
        base = 2.0 if artifact.format == "onnx" else 3.0
        return RoundTimings(load_ms=5.0, model_ms=[base] * n, e2e_ms=[base + 1] * n, threads=2, cores={0: n},
                            peak_rss_mb=100.0 + len(self.calls), baseline_rss_mb=90.0, memory_kind="test")


def test_rounds_take_turns_in_alternating_order_through_the_gate(small_dist):
    from backdrop.bench.protocol import Protocol
    from backdrop.bench.run import BenchSpec, run_bench

    dev = RecordingHost()
    slept = []
    seen = []
    [doc] = run_bench(BenchSpec(small_dist, protocol=Protocol(rounds=4, min_frames=8, min_seconds=0, cooldown_s=0.5), peer=False),
                      dev, progress=lambda k, d, t: seen.append((d, t)), sleep=slept.append)
    onnx, ort = "a/onnx-fp32-explicit", "a/ort-fp32-explicit"
    assert dev.calls == [onnx, ort] + [onnx, ort, ort, onnx, onnx, ort, ort, onnx]  # one untimed priming round per kind
    assert dev.gates == 8 and slept.count(0.5) == 8 and seen[-1] == (8, 8)
    validate_document(doc)
    by_key = {r["artifact"]["key"]: r for r in doc["results"]}
    assert set(by_key) == {onnx, ort}
    r = by_key[onnx]
    assert r["model_ms"] == [2.0] * 8 and r["e2e_ms"] == [3.0] * 8 and r["load_ms"] == [5.0] * 4
    assert [g["readings"] for g in r["gate"]] == [{"temp_c:zone0": 31.0}, {"temp_c:zone0": 34.0},
                                                  {"temp_c:zone0": 35.0}, {"temp_c:zone0": 38.0}]
    assert r["cores"] == {"0": 8} and r["memory"]["peak_rss_mb"] == 110.0 and r["threads"] == 2
    assert r["round_frames"] == [2, 2, 2, 2]
    manifest = json.loads((small_dist / "manifest.json").read_text())
    entry = next(e for e in manifest["artifacts"] if e["path"] == r["artifact"]["file"])
    assert r["artifact"]["sha256"] == entry["sha256"]
    assert r["artifact"]["checkpoint_sha256"] == manifest["model"]["checkpoint_sha256"]
    run = doc["run"]
    assert run["device"]["name"] == "host" and run["target"] == "test-small" and run["protocol"]["rounds"] == 4
    assert run["git_commit"] is None or len(run["git_commit"].split("-")[0]) == 40
    assert len(run["session"]) == 32


def test_against_benches_two_exports_in_one_session_taking_turns(small_dist, tmp_path):
    """Two exports (here: the same one, copied) in one session: their artifacts alternate, and
    the two documents share a session id, so compare pairs their rounds."""
    import shutil

    from backdrop.bench.protocol import Protocol
    from backdrop.bench.run import BenchSpec, run_bench

    old = tmp_path / "old"
    shutil.copytree(small_dist, old)
    dev = RecordingHost()
    a, b = run_bench(BenchSpec(small_dist, "a/onnx-*", Protocol(rounds=2, min_frames=4, min_seconds=0), False, (old,)), dev)
    assert dev.calls == ["a/onnx-fp32-explicit"] * 5  # priming, then new, old, old, new
    assert a["run"]["session"] == b["run"]["session"] and a != b
    assert any("benched in one session with" in n and str(old) in n for n in a["run"]["notes"])
    assert [r["artifact"]["key"] for r in b["results"]] == ["a/onnx-fp32-explicit"]


def test_a_failing_artifact_is_noted_and_a_lost_device_stops_the_bench(small_dist):
    from backdrop.bench.protocol import Protocol
    from backdrop.bench.run import BenchError, BenchSpec, run_bench

    quick = Protocol(rounds=2, min_frames=3, min_seconds=0)
    dev = RecordingHost(fail="a/ort-fp32-explicit")
    [doc] = run_bench(BenchSpec(small_dist, protocol=quick, peer=False), dev)
    assert [r["artifact"]["key"] for r in doc["results"]] == ["a/onnx-fp32-explicit"]
    assert any(n.startswith("failed a/ort-fp32-explicit: a/ort-fp32-explicit: the runtime crashed") for n in doc["run"]["notes"])
    assert dev.calls.count("a/ort-fp32-explicit") == 2  # the priming round, then not retried after it failed
    with pytest.raises(DeviceLostError):
        run_bench(BenchSpec(small_dist, protocol=quick, peer=False), RecordingHost(lose=True))
    with pytest.raises(BenchError, match="matches no artifact .* its keys: a/onnx-fp32-explicit, a/ort-fp32-explicit"):
        run_bench(BenchSpec(small_dist, artifacts="*int8*", protocol=quick), RecordingHost())


def test_the_document_is_its_own_identity_and_is_checked(small_dist):
    from backdrop.bench.protocol import Protocol
    from backdrop.bench.run import BenchSpec, run_bench

    proto = Protocol(rounds=1, min_frames=2, min_seconds=0)
    [doc] = run_bench(BenchSpec(small_dist, protocol=proto, peer=False), RecordingHost())
    assert document_id(doc) == document_id(json.loads(json.dumps(doc))) and len(document_id(doc)) == 64
    broken = json.loads(json.dumps(doc))
    del broken["results"][0]["artifact"]["sha256"]
    with pytest.raises(ResultsFormatError, match="results/0/artifact: 'sha256' is a required property"):
        validate_document(broken)
    newer = dict(doc, format_version="2.0")
    with pytest.raises(ResultsFormatError, match="format_version 2.0 is not readable"):
        validate_document(newer)


# ---- real timings on this host ---------------------------------------------------------------


def test_host_round_times_real_frames_end_to_end(small_dist):
    """The Python host's own round on a real artifact: every timed frame has both numbers, the
    end-to-end one containing the model call; the loop wraps the 30-frame golden."""
    from backdrop.bench.run import select_artifacts
    from backdrop.device_tests.host import HostDevice
    from backdrop.export.goldens import load_golden

    manifest, chosen = select_artifacts(small_dist, "a/onnx-*")
    art = chosen[0][0]
    golden = load_golden(small_dist / manifest["goldens"]["a"])
    t = HostDevice().bench_round(art, golden, BenchPlan(warmup=2, min_frames=45, min_seconds=0.05))
    assert len(t.model_ms) == len(t.e2e_ms) >= 45 and t.load_ms > 0
    assert all(e >= m > 0 for e, m in zip(t.e2e_ms, t.model_ms))
    assert sum(t.cores.values()) == len(t.model_ms)
    assert t.peak_rss_mb is None or t.peak_rss_mb >= t.baseline_rss_mb > 0
    seconds = HostDevice().bench_round(art, golden, BenchPlan(warmup=0, min_frames=1, min_seconds=0.3, e2e=False))
    assert sum(seconds.model_ms) >= 300 and seconds.e2e_ms == []
