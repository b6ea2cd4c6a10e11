"""Parity checks in the results store (schema revision 0002): the parity document built from
real parity records (this host's ONNX Runtime over the small export's golden), `backdrop parity
--store` end to end through the real entry point, read back per run and per artifact, written
once, bad documents refused with nothing written, and a store at revision 0001 with benchmark
runs in it upgraded to head with those runs kept.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from test_results_store import _write_at_first_revision, check_read_back, make_document, table_counts

from backdrop.bench.document import ResultsFormatError, document_id
from backdrop.core.fsutil import file_sha256
from backdrop.results import StoreError, migrate, open_store, parity_document, validate_parity_document
from backdrop.results.engine import make_engine, resolve_url, write_connection

STARTED = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
NOTHING = {"runs": 0, "results": 0, "metrics": 0, "parity_runs": 0, "parity_results": 0}


class _RunFails:
    """The host device, except that every run fails as a runtime rejecting the file would."""

    def __init__(self, device):
        self._device = device

    def __getattr__(self, name):
        return getattr(self._device, name)

    def run_sequence(self, artifact, golden):
        from backdrop.device_tests.base import DeviceError

        raise DeviceError("injected: the runtime rejected the file")


@pytest.fixture(scope="module")
def checked(small_dist):
    """Real parity records on this host over the small export: each artifact as exported
    (passes), the first against inverted reference masks (fails at frame 0 on max abs error),
    and the first again with the run itself failing. Returns (records, manifest, device)."""
    from backdrop.core.buckets import Bucket
    from backdrop.device_tests.base import get_device
    from backdrop.device_tests.parity import check_parity
    from backdrop.export.artifact import artifact_from_manifest
    from backdrop.export.goldens import load_golden
    from backdrop.orchestration.manifest import load_manifest

    manifest = load_manifest(small_dist / "manifest.json")
    device = get_device("host")
    buckets = {b["name"]: Bucket(b["name"], b["height"], b["width"]) for b in manifest["buckets"]}
    arts = [artifact_from_manifest(e, small_dist, buckets[e["bucket"]]) for e in manifest["artifacts"]]
    golden = load_golden(small_dist / manifest["goldens"][arts[0].bucket.name])
    records = [check_parity(a, golden, device) for a in arts]
    inverted = dataclasses.replace(golden, expected_masks=1.0 - golden.expected_masks)
    records.append(check_parity(arts[0], inverted, device))
    records.append(check_parity(arts[0], golden, _RunFails(device)))
    return records, manifest, device


def make_parity_document(variant: int = 0) -> dict:
    """A parity document of hand-made records (no runtime needed; shared with
    tests/test_results_postgres.py): two artifacts, the second failing at frame 3."""
    from backdrop.device_tests.parity import ParityRecord

    records = []
    for i, (form, iou) in enumerate([("explicit", 0.998), ("native", 0.91)]):
        key = f"landscape_16x9/onnx-fp32-{form}"
        ious = [1.0, 0.999, 0.9995, iou, 0.999]
        rec = ParityRecord(
            artifact=key, artifact_info={"path": f"onnx-fp32-{form}.onnx", "format": "onnx", "runtime": "onnxruntime",
                                         "precision": "fp32", "state_form": form, "bucket": "landscape_16x9"},
            device="adb:1A2B3C", tier="phone-pixel8", golden={"source": "carphone", "num_frames": 5, "resets": [0, 2]},
            thresholds={"min_iou": 0.99, "min_boundary_iou": 0.97, "max_abs_error": 1e-3},
            runtime_versions={"onnxruntime": "1.32.0"}, max_abs_error=[1e-5 * (k + variant + 1) for k in range(5)],
            iou=ious, boundary_iou=[min(1.0, v + 0.001) for v in ious], passed=i == 0,
            first_failure=None if i == 0 else {"frame": 3, "frame_name": "f3", "metric": "iou", "value": iou, "threshold": 0.99},
            message="Parity passed: ..." if i == 0 else "Parity failed: ... frame 3 iou = 0.9100",
        )
        records.append(rec)
    device = {"name": "adb:1A2B3C", "tier": "phone-pixel8", "emulated": False, "machine": "aarch64", "cpu": "Tensor G3",
              "os": "Android 14", "runtime_versions": {"onnxruntime": "1.32.0"}, "label": "",
              "details": {"ro.product.model": "Pixel 8"}}
    started = STARTED + timedelta(hours=variant)
    return parity_document(
        records, device, "android-arm64", "cd" * 32, started, started + timedelta(seconds=40), 5, None, "0.1.0", "lab-host",
        artifact_sha256={records[0].artifact: "ef" * 32},
    )


def _document(checked, minutes: int = 0, tier: str | None = None, **changes) -> dict:
    records, manifest, device = checked
    description = device.describe().to_dict()
    if tier is not None:
        description["tier"] = tier
    kwargs = dict(
        records=records, device_description=description, target=manifest["target"]["name"],
        manifest_sha256="ab" * 32, started_at=STARTED + timedelta(minutes=minutes),
        finished_at=STARTED + timedelta(minutes=minutes, seconds=12.5), frames_limit=None, git_commit="9dba0a2",
        backdrop_version="0.1.0", host="ci-runner-7",
        artifact_sha256={e["key"]: e["sha256"] for e in manifest["artifacts"]},
        skipped=[{"artifact": "a/executorch-fp32-native", "why": "no ExecuTorch here (test)"}],
    )
    kwargs.update(changes)
    return parity_document(**kwargs)


def test_document_from_real_records(checked):
    records, manifest, device = checked
    doc = _document(checked)
    validate_parity_document(doc)
    assert (doc["format"], doc["format_version"]) == ("backdrop-parity-run", "1.0")
    run = doc["run"]
    assert (run["started_at"], run["finished_at"]) == ("2026-12-03T14:00:00.000000Z", "2026-12-03T14:00:12.500000Z")
    assert run["device"]["name"] == "host" and run["device"]["tier"] == device.tier and run["frames_limit"] is None
    assert run["skipped"] == [{"artifact": "a/executorch-fp32-native", "why": "no ExecuTorch here (test)"}]
    sha = {e["key"]: e["sha256"] for e in manifest["artifacts"]}
    keys = [e["key"] for e in manifest["artifacts"]]
    assert [r["artifact"]["key"] for r in doc["results"]] == [*keys, keys[0], keys[0]]
    assert all(r["artifact"]["sha256"] == sha[r["artifact"]["key"]] for r in doc["results"])
    assert [r["passed"] for r in doc["results"]] == [True] * len(keys) + [False, False]
    for r, rec in zip(doc["results"][:-1], records[:-1], strict=True):  # the runs that ran: the records' worst frames
        assert r["worst"] == {"min_iou": min(rec.iou), "min_boundary_iou": min(rec.boundary_iou),
                              "max_abs_error": max(rec.max_abs_error)}
        assert r["frames"] == 30 and r["thresholds"] == rec.thresholds and r["message"] == rec.message
    inverted, failed_run = doc["results"][-2:]
    assert inverted["first_failure"]["frame"] == 0 and inverted["first_failure"]["metric"] == "max_abs_error"
    assert inverted["message"].startswith("Parity failed") and inverted["error"] == ""
    assert failed_run["worst"] == {"min_iou": None, "min_boundary_iou": None, "max_abs_error": None}
    assert "injected" in failed_run["error"] and "the run failed" in failed_run["message"]
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc  # strict JSON: no NaN anywhere


def test_write_read_back_and_write_once(checked, tmp_path):
    db = tmp_path / "results.db"
    doc = _document(checked)
    with open_store(db) as store:
        outcome = store.write_parity(doc)
        assert (outcome.run_id, outcome.added, outcome.results) == (document_id(doc), True, 4)
        again = store.write_parity(json.loads(json.dumps(doc)))  # the same document, read from a file
        assert (again.run_id, again.added, again.results) == (outcome.run_id, False, 4)
        [run] = store.parity_runs()
        assert (run.parity_id, run.checked, run.passed, run.host, run.git_commit, run.backdrop_version) == (
            outcome.run_id, 4, 2, "ci-runner-7", "9dba0a2", "0.1.0")
        assert (run.started_at, run.finished_at) == (STARTED, STARTED + timedelta(seconds=12.5))
        assert run.device == doc["run"]["device"] and run.device_name == "host" and not run.emulated
        assert store.parity_document(outcome.run_id[:8]) == doc
        stored = store.parity_results(outcome.run_id[:8])
        assert [s.position for s in stored] == [0, 1, 2, 3]
        for s, want in zip(stored, doc["results"], strict=True):
            a = want["artifact"]
            assert (s.parity_id, s.key, s.bucket, s.format, s.precision, s.state_form, s.sha256) == (
                outcome.run_id, a["key"], a["bucket"], a["format"], a["precision"], a["state_form"], a["sha256"])
            assert (s.passed, s.frames, s.error, s.message) == (want["passed"], want["frames"], want["error"], want["message"])
            assert (s.min_iou, s.min_boundary_iou, s.max_abs_error) == tuple(want["worst"].values())
        assert store.runs() == []  # a parity check is not a benchmark run
    assert table_counts(db) == {**NOTHING, "parity_runs": 1, "parity_results": 4}


def test_parity_runs_filter_order_and_lookup(checked, tmp_path):
    docs = [_document(checked, 0), _document(checked, 30, tier="phone-pixel8"), _document(checked, 60)]
    ids = [document_id(d) for d in docs]
    with open_store(tmp_path / "results.db") as store:
        for d in docs:
            store.write_parity(d)
        host_tier = docs[0]["run"]["device"]["tier"]
        assert [r.parity_id for r in store.parity_runs()] == [ids[2], ids[1], ids[0]]
        assert [r.parity_id for r in store.parity_runs(tier=host_tier)] == [ids[2], ids[0]]
        assert [r.parity_id for r in store.parity_runs(tier="phone-pixel8", device="host")] == [ids[1]]
        assert [r.parity_id for r in store.parity_runs(limit=1)] == [ids[2]]
        assert store.parity_runs(device="adb:1A2B") == []
        with pytest.raises(StoreError, match="limit must be a positive"):
            store.parity_runs(limit=0)
        with pytest.raises(StoreError, match="no parity run in the results store .* starting with 000000"):
            store.parity_results("000000")
        with pytest.raises(StoreError, match="is not a parity run id"):
            store.parity_results("xyz")
        with pytest.raises(StoreError, match="no run in the results store"):  # the ids of parity runs are not runs'
            store.results(ids[0])


def _bad(checked, change):
    doc = _document(checked)
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d.pop("results"), r"parity document: results must be a list, and is missing\."),
        (lambda d: d.update(format="backdrop-results"), r"format must be 'backdrop-parity-run' \(is it a parity document\?\)"),
        (lambda d: d.update(format_version="2.0"), r"format_version 2.0 is not readable by this backdrop"),
        (lambda d: d["run"].update(started_at="yesterday"), r"run/started_at must be an ISO 8601 .*\(got 'yesterday'\)"),
        (lambda d: d["run"].update(finished_at="2026-12-03T13:00:00Z"), r"run/finished_at must be no earlier than"),
        (lambda d: d["run"]["device"].pop("tier"), r"run/device/tier must be a non-empty string, and is missing"),
        (lambda d: d["run"].update(frames_limit=0), r"run/frames_limit must be a positive integer or null \(got 0\)"),
        (lambda d: d["results"][1].update(passed="yes"), r"results/1/passed must be true or false \(got 'yes'\)"),
        (lambda d: d["results"][0]["artifact"].update(sha256="abc"), r"results/0/artifact/sha256 must be 64 lowercase hex"),
        (lambda d: d["results"][2]["worst"].update(min_iou=float("nan")), r"results/2/worst/min_iou must be a finite number"),
    ],
    ids=["no-results", "not-parity", "newer-major", "bad-time", "ends-before-start", "no-tier", "zero-frames", "passed-text",
         "short-sha", "nan"],
)
def test_bad_documents_write_nothing(checked, tmp_path, change, error):
    db = tmp_path / "results.db"
    with open_store(db) as store:
        with pytest.raises(ResultsFormatError, match=error):
            store.write_parity(_bad(checked, change))
        with pytest.raises(ResultsFormatError, match=r"^parity file p\.json: the document must be a JSON object"):
            store.write_parity([], what="parity file p.json")
    assert table_counts(db) == NOTHING


def test_upgrade_from_0001_keeps_the_bench_runs(checked, tmp_path):
    db = tmp_path / "results.db"
    bench = make_document(5)
    engine = make_engine(resolve_url(db))
    with write_connection(engine) as connection, connection.begin():
        migrate.upgrade(connection, "0001")
        run_id = _write_at_first_revision(connection, bench)
    engine.dispose()
    with open_store(db) as store:  # migrated to head on open
        assert store.schema_version() == migrate.head_revision() == "0002"
        check_read_back(store, bench)
        assert [r.run_id for r in store.runs()] == [run_id] and store.parity_runs() == []
        assert store.write_parity(_document(checked)).added
    assert table_counts(db) == {"runs": 1, "results": 4, "metrics": 11, "parity_runs": 1, "parity_results": 4}
    engine = make_engine(resolve_url(db))
    with write_connection(engine) as connection, connection.begin():  # and back: the parity tables go, the runs stay
        migrate.downgrade(connection, "0001")
    with engine.connect() as connection:
        assert migrate.current_revision(connection) == "0001"
        assert set(sa.inspect(connection).get_table_names()) == {"alembic_version", "runs", "results", "metrics"}
    engine.dispose()
    with open_store(db) as store:
        check_read_back(store, bench)
        assert store.parity_runs() == []


# -- `backdrop parity --store` ---------------------------------------------------------------


def _main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """The real entry point (cli.main), in-process: (exit status, stdout, stderr)."""
    from backdrop.orchestration import cli

    monkeypatch.delenv("BACKDROP_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["backdrop", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.fixture
def dist(small_dist, tmp_path):
    """A copy of the small export (the command writes its reports into it)."""
    return shutil.copytree(small_dist, tmp_path / "dist")


def test_parity_command_stores_the_check(dist, tmp_path, monkeypatch, capsys):
    from backdrop.orchestration.manifest import load_manifest

    db = tmp_path / "store" / "results.db"
    code, out, err = _main(monkeypatch, capsys, "parity", "--dist", str(dist), "--device", "host", "--store", str(db))
    assert code == 0, err
    with open_store(db) as store:
        [run] = store.parity_runs()
        rows = store.parity_results(run.parity_id)
        document = store.parity_document(run.parity_id)
    assert f"stored parity run {run.parity_id[:12]} in sqlite+pysqlite:///{db}" in out
    manifest = load_manifest(dist / "manifest.json")
    assert (run.checked, run.passed, run.target, run.frames_limit) == (2, 2, manifest["target"]["name"], None)
    assert run.manifest_sha256 == file_sha256(dist / "manifest.json") and run.device_name == "host"
    assert run.device_tier.startswith("host-") and run.device["runtime_versions"]["onnxruntime"]
    assert run.started_at <= run.finished_at <= datetime.now(UTC)
    assert [(r.key, r.sha256) for r in rows] == [(e["key"], e["sha256"]) for e in manifest["artifacts"]]
    assert all(r.passed and r.frames == 30 and r.min_iou >= 0.99 and r.error == "" for r in rows)
    report = json.loads((dist / "reports" / "parity-host.json").read_text())  # the same check as the report
    assert [min(rec["iou"]) for rec in report["records"]] == [r.min_iou for r in rows]
    assert document["run"]["skipped"] == []

    # --frames is recorded; JSON output says where the check went
    code, out, err = _main(monkeypatch, capsys, "parity", "--dist", str(dist), "--store", str(db), "--frames", "20",
                           "--format", "json")
    assert code == 0, err
    stored = json.loads(out)["stored"]
    with open_store(db) as store:
        newest = store.parity_runs(limit=1)[0]
        assert (stored["parity_id"], stored["added"]) == (newest.parity_id, True) and stored["store"] == store.url
        assert newest.frames_limit == 20 and {r.frames for r in store.parity_results(newest.parity_id)} == {20}
        assert len(store.parity_runs()) == 2


def test_parity_command_bad_store_and_lost_device(dist, tmp_path, monkeypatch, capsys):
    from backdrop.device_tests import parity as parity_module
    from backdrop.device_tests.base import DeviceLostError

    code, out, err = _main(monkeypatch, capsys, "parity", "--dist", str(dist), "--store", "ftp://lab/results")
    assert code == 2 and "the results store URL ftp://lab/results is not one backdrop opens" in err
    assert not (dist / "reports" / "parity-host.json").exists()  # refused before anything ran

    def lost(*args, **kwargs):
        raise DeviceLostError("injected: the device went away.")

    monkeypatch.setattr(parity_module, "check_parity", lost)
    db = tmp_path / "results.db"
    code, out, err = _main(monkeypatch, capsys, "parity", "--dist", str(dist), "--store", str(db))
    assert code == 1 and "No report was written and nothing was stored." in err
    assert table_counts(db) == NOTHING
