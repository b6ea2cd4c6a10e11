"""`backdrop bench` and `backdrop results` through the command line, on real timings from this
host: a run stored with its context, listed, shown, exported and re-imported (nothing added), a
same-code rerun judged "no change" and a planted 20 % slowdown judged a regression."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from backdrop.orchestration.cli import app

# Measures time: `make test` runs this file alone, after the tests spread over the cores.
pytestmark = pytest.mark.timed

QUICK = ["--min-frames", "240", "--min-seconds", "1.6", "--rounds", "8", "--warmup", "3", "--no-peer"]


def _bench(dist, store, *extra):
    r = CliRunner().invoke(app, ["bench", "--dist", str(dist), "--store", str(store), *QUICK, *extra, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout.strip().splitlines()[-1])


def _run_id(doc):
    from backdrop.bench.document import document_id

    return document_id(doc)


def test_bench_stores_a_complete_run_and_compare_tells_noise_from_a_slowdown(small_dist, tmp_path):
    """An A/B of two exports of the same model (one session, rounds taking turns) is "no change";
    the same run with every frame 20 % slower is a regression; runs of separate sessions are
    compared over round medians, with a warning."""
    import shutil

    store = tmp_path / "results.db"
    old = tmp_path / "old-export"
    shutil.copytree(small_dist, old)
    r = CliRunner().invoke(app, ["bench", "--dist", str(small_dist), "--against", str(old), "--store", str(store), *QUICK,
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    new_run, old_run = json.loads(r.stdout.strip().splitlines()[-1])
    assert {r["artifact"]["key"] for r in new_run["results"]} == {"a/onnx-fp32-explicit", "a/ort-fp32-explicit"}
    for res in new_run["results"] + old_run["results"]:
        assert len(res["e2e_ms"]) == len(res["model_ms"]) >= 240 and len(res["load_ms"]) == 8
        assert sum(res["e2e_ms"]) >= 1600 and res["memory"]["peak_rss_mb"] > 0 and len(res["gate"]) == 8
        assert sum(res["round_frames"]) == len(res["e2e_ms"]) and len(res["round_frames"]) == 8
    assert new_run["run"]["device"]["tier"].startswith("host-") and new_run["run"]["protocol"]["name"] == "custom"
    id_new, id_old = _run_id(new_run), _run_id(old_run)

    listed = CliRunner().invoke(app, ["results", "list", "--store", str(store), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert {row["run_id"] for row in json.loads(listed.stdout)} == {id_new, id_old}

    same = CliRunner().invoke(app, ["results", "compare", id_old[:8], id_new[:8], "--store", str(store), "--format", "json"])
    assert same.exit_code == 0, same.output
    verdicts = json.loads(same.stdout)
    assert len(verdicts["changes"]) == 4 and {c["unit"] for c in verdicts["changes"]} == {"paired rounds"}
    assert verdicts["counts"]["regression"] == 0 and verdicts["counts"]["improvement"] == 0, verdicts["changes"]

    # The planted slowdown: the new run again, every frame 20 % slower (a real run's shape and
    # drift), judged against the run it was planted in (same session: round by round).
    planted = json.loads(json.dumps(new_run))
    planted["run"]["source"] = "test: the new run with every frame 20 % slower"
    for res in planted["results"]:
        res["e2e_ms"] = [v * 1.2 for v in res["e2e_ms"]]
        res["model_ms"] = [v * 1.2 for v in res["model_ms"]]
    path = tmp_path / "planted.json"
    path.write_text(json.dumps(planted))
    imported = CliRunner().invoke(app, ["results", "import", str(path), "--store", str(store)])
    assert imported.exit_code == 0 and "stored" in imported.output
    again = CliRunner().invoke(app, ["results", "import", str(path), "--store", str(store)])
    assert again.exit_code == 0 and "already stored, nothing added" in again.output
    slow = CliRunner().invoke(app, ["results", "compare", id_new, _run_id(planted), "--store", str(store),
                                    "--fail-on-regression"])
    assert slow.exit_code == 1, slow.output
    assert "4 regression(s), 0 improvement(s), 0 no change" in slow.output

    # A later session: compared over round medians, with the warning that sessions drift.
    later = _bench(small_dist, store)
    apart = CliRunner().invoke(app, ["results", "compare", id_new, _run_id(later), "--store", str(store)])
    assert apart.exit_code == 0 and "different sessions" in apart.output and "8v8 rounds" in apart.output

    shown = CliRunner().invoke(app, ["results", "show", id_new[:10], "--store", str(store)])
    assert shown.exit_code == 0 and "a/onnx-fp32-explicit" in shown.output and "e2e p50" in shown.output
    out = tmp_path / "exported.json"
    exported = CliRunner().invoke(app, ["results", "export", id_new[:10], "--out", str(out), "--store", str(store)])
    assert exported.exit_code == 0, exported.output
    assert json.loads(out.read_text()) == new_run
    assert "already stored" in CliRunner().invoke(app, ["results", "import", str(out), "--store", str(store)]).output


def _main(monkeypatch, capsys, *args):
    """The real entry point (cli.main), in-process: (exit status, stderr)."""
    import sys

    from backdrop.orchestration import cli

    monkeypatch.delenv("BACKDROP_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["backdrop", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code, capsys.readouterr().err


def test_bench_refuses_bad_input_before_any_work(small_dist, tmp_path, monkeypatch, capsys):
    store = str(tmp_path / "r.db")
    code, err = _main(monkeypatch, capsys, "bench", "--dist", str(small_dist), "--store", store, "--artifacts", "*.pte")
    assert code == 2 and "matches no artifact" in err and "its keys: a/onnx-fp32-explicit, a/ort-fp32-explicit" in err
    code, err = _main(monkeypatch, capsys, "bench", "--dist", str(small_dist), "--no-store")
    assert code == 2 and "go nowhere" in err
    code, err = _main(monkeypatch, capsys, "bench", "--dist", str(small_dist), "--protocol", "fastest", "--store", store)
    assert code == 2 and "known: quick, mlperf" in err
    code, err = _main(monkeypatch, capsys, "results", "compare", "abcdef", "012345", "--store", store)
    assert code == 2 and "abcdef" in err
    code, err = _main(monkeypatch, capsys, "results", "import", str(tmp_path / "missing.json"), "--store", store)
    assert code == 2 and "missing.json" in err
    r = CliRunner().invoke(app, ["results", "list", "--store", store])
    assert r.exit_code == 0 and "no runs in" in r.output


@pytest.mark.parametrize("protocol", ["quick"])
def test_a_failed_bench_stores_nothing(small_dist, tmp_path, monkeypatch, protocol):
    """The device failing mid-run (here: lost after the first rounds) leaves the store as it was."""
    from backdrop.device_tests.base import DeviceLostError
    from backdrop.device_tests.host import HostDevice
    from backdrop.results import open_store

    calls = []
    real = HostDevice.bench_round

    def flaky(self, artifact, golden, plan):
        calls.append(artifact.key)
        if len(calls) > 2:
            raise DeviceLostError("host: gone (test)")
        return real(self, artifact, golden, plan)

    monkeypatch.setattr(HostDevice, "bench_round", flaky)
    store = tmp_path / "r.db"
    r = CliRunner().invoke(app, ["bench", "--dist", str(small_dist), "--store", str(store), "--protocol", protocol,
                                 "--min-frames", "3", "--no-peer"])
    assert r.exit_code == 1 and "Nothing was stored" in r.output and len(calls) == 3
    with open_store(store) as db:
        assert db.runs() == []
