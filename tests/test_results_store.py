"""The results store on SQLite (files in tmp_path, no server): write and read back, statistics
recomputed from the samples, idempotent imports, all-or-nothing writes, bad documents refused
with nothing written, migrations from the first revision to head, a newer schema refused, run
id prefixes, and three processes writing at once.

The document builder and the row counting here are shared with tests/test_results_postgres.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from backdrop.bench.document import ResultsFormatError, canonical_json, document_id
from backdrop.bench.stats import summarize
from backdrop.results import StoreError, migrate, open_store, tables
from backdrop.results import store as store_module
from backdrop.results.engine import make_engine, resolve_url, write_connection

# -- documents -------------------------------------------------------------------------------

_ARTIFACTS = (  # bucket, kind, precision, state form, typical model ms on a laptop core
    ("landscape_16x9", "executorch", "fp32", "explicit", 9.2),
    ("landscape_16x9", "executorch", "int8", "explicit", 6.1),
    ("landscape_16x9", "ort", "fp32", "native", 7.7),
    ("portrait_9x16", "onnx", "int8", "explicit", 5.4),
)
ROUNDS = 3


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_document(
    variant: int = 0, *, artifacts: int = 3, samples: int = 50, peer: bool = True, tier: str = "host-x86_64",
    device: str = "host",
) -> dict:
    """A valid results document like ``backdrop bench`` writes: ``artifacts`` backdrop artifacts
    with ``samples`` model and end-to-end frames each (+ one load per round), and the MediaPipe
    peer (end to end only: no model samples). ``variant`` changes the samples and the start
    time, so each variant is a distinct run."""
    rng = random.Random(variant)
    started = datetime(2026, 12, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=11 * variant)
    results = []
    for bucket, kind, precision, form, base in _ARTIFACTS[:artifacts]:
        model = [round(rng.lognormvariate(math.log(base), 0.07), 4) for _ in range(samples)]
        runtime = {"executorch": "1.5.1"} if kind == "executorch" else {"onnxruntime": "1.23.2"}
        results.append({
            "artifact": {
                "key": f"{bucket}/{kind}/{precision}/{form}", "bucket": bucket, "format": kind, "precision": precision,
                "state_form": form, "sha256": _sha(f"{bucket}{kind}{precision}{form}"),
                "size_bytes": 5_214_336 if precision == "fp32" else 1_493_120, "checkpoint_sha256": _sha("default_model.pt"),
                "file": f"{bucket}/{kind}-{precision}-{form}.{'pte' if kind == 'executorch' else kind}", "peer": False,
            },
            "runtime_versions": runtime,
            "threads": 4,
            "cores": {"0": samples // 2, "3": samples - samples // 2},
            "memory": {"peak_rss_mb": round(rng.uniform(180, 240), 3), "baseline_rss_mb": 171.5, "kind": "rss"},
            "gate": [
                {"round": r, "waited_s": round(rng.uniform(0, 2), 3), "timed_out": False,
                 "readings": {"temp_c:x86_pkg_temp": round(rng.uniform(45, 60), 1), "freq_mhz:cpu0": 2800.0}}
                for r in range(ROUNDS)
            ],
            "flags": [],
            "load_ms": [round(rng.uniform(35, 60), 4) for _ in range(ROUNDS)],
            "model_ms": model,
            "e2e_ms": [round(m + rng.uniform(0.9, 1.8), 4) for m in model],
        })
    if peer:
        results.append({
            "artifact": {
                "key": "landscape_16x9/peer-mediapipe-selfie-landscape", "bucket": "landscape_16x9", "format": "mediapipe",
                "precision": "fp32", "state_form": "none", "sha256": _sha("selfie_segmenter_landscape.tflite"),
                "size_bytes": 249_514, "checkpoint_sha256": None, "file": "selfie_segmenter_landscape.tflite", "peer": True,
            },
            "runtime_versions": {"mediapipe": "0.10.21"},
            "threads": 0,
            "cores": {},
            "memory": None,
            "gate": [{"round": r, "waited_s": 0.0, "timed_out": False, "readings": {}} for r in range(ROUNDS)],
            "flags": ["gate-unavailable", "peer"],
            "load_ms": [round(rng.uniform(20, 30), 4) for _ in range(ROUNDS)],
            "model_ms": [],
            "e2e_ms": [round(rng.lognormvariate(math.log(11.0), 0.08), 4) for _ in range(samples)],
        })
    return {
        "format": "backdrop-results",
        "format_version": "1.0",
        "run": {
            "started_at": started.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "finished_at": (started + timedelta(seconds=94.5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "source": "backdrop bench",
            "host": "ci-runner-7",
            "backdrop_version": "0.1.0",
            "git_commit": "9dba0a2",
            "target": "android-arm64",
            "manifest_sha256": _sha("manifest.json"),
            "protocol": {
                "name": "quick", "warmup": 10, "min_frames": samples, "min_seconds": 0, "rounds": ROUNDS, "cooldown_s": 0,
                "gate": {"max_temp_c": 80, "timeout_s": 60}, "threads": 0, "frames": "carphone clip, 176x144, mask carried",
            },
            "device": {
                "name": device, "tier": tier, "emulated": False, "machine": "x86_64", "cpu": "AMD EPYC 7B13 (4 cores)",
                "os": "Linux 6.1.0-28-amd64", "runtime_versions": {"executorch": "1.5.1", "onnxruntime": "1.23.2"},
            },
            "notes": [],
        },
        "results": results,
    }


def expected_rows(documents: list[dict]) -> dict[str, int]:
    """Rows per table that ``documents`` (distinct runs) make: a metric row per non-empty metric,
    and none in the parity tables."""
    results = [r for d in documents for r in d["results"]]
    return {
        "runs": len(documents), "results": len(results),
        "metrics": sum(1 for r in results for m in tables.METRICS if r[f"{m}_ms"]),
        "parity_runs": 0, "parity_results": 0,
    }


def table_counts(url) -> dict[str, int]:
    """Rows in each of the store's tables (0 for a table not created yet)."""
    engine = sa.create_engine(resolve_url(url))
    try:
        with engine.connect() as connection:
            present = set(sa.inspect(connection).get_table_names())
            return {
                table.name: connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                if table.name in present else 0
                for table in tables.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def check_read_back(store, document: dict) -> None:
    """The store returns ``document`` as written: the document itself, every result's fields,
    the raw samples, and statistics equal to summarize() of them."""
    run_id = document_id(document)
    assert store.document(run_id) == document
    assert document_id(store.document(run_id)) == run_id
    stored = store.results(run_id)
    assert [r.position for r in stored] == list(range(len(document["results"])))
    for got, want in zip(stored, document["results"], strict=True):
        art = want["artifact"]
        assert (got.run_id, got.key, got.bucket, got.format, got.precision, got.state_form) == (
            run_id, art["key"], art["bucket"], art["format"], art["precision"], art["state_form"])
        assert (got.sha256, got.size_bytes, got.checkpoint_sha256, got.peer, got.file) == (
            art["sha256"], art["size_bytes"], art["checkpoint_sha256"], art["peer"], art["file"])
        assert (got.threads, got.memory, got.flags) == (want["threads"], want["memory"], want["flags"])
        assert (got.runtime_versions, got.cores, got.gate) == (want["runtime_versions"], want["cores"], want["gate"])
        for metric in tables.METRICS:
            samples = [float(v) for v in want[f"{metric}_ms"]]
            assert got.samples[metric] == samples
            if samples:
                assert got.stats[metric] == summarize(samples)
            else:
                assert metric not in got.stats


def write_worker(url: str, documents: list[dict], barrier, queue) -> None:
    """One writer process: open the store, wait for the others, write ``documents`` in order,
    report [(run_id, added, results)]."""
    with open_store(url) as store:
        barrier.wait(timeout=60)
        queue.put([(o.run_id, o.added, o.results) for o in (store.write(d) for d in documents)])


def run_writers(url: str, per_process: list[list[dict]]) -> list[tuple[str, bool, int]]:
    """Start one spawned process per list of documents, together (a barrier), each opening the
    store itself; return every outcome once all have exited cleanly."""
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(len(per_process)), context.Queue()
    processes = [context.Process(target=write_worker, args=(url, docs, barrier, queue)) for docs in per_process]
    for p in processes:
        p.start()
    try:
        outcomes = [o for _ in processes for o in queue.get(timeout=120)]
    finally:
        for p in processes:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in processes] == [0] * len(processes)
    return outcomes


def check_concurrent_outcome(url: str, own: list[list[dict]], shared: dict, outcomes) -> None:
    distinct = [d for docs in own for d in docs] + [shared]
    assert len({document_id(d) for d in distinct}) == len(distinct)
    shared_id = document_id(shared)
    assert sorted(added for run_id, added, _ in outcomes if run_id == shared_id) == [False] * (len(own) - 1) + [True]
    assert all(added for run_id, added, _ in outcomes if run_id != shared_id)
    assert table_counts(url) == expected_rows(distinct)
    with open_store(url) as store:
        assert sorted(r.run_id for r in store.runs()) == sorted(document_id(d) for d in distinct)
        for d in distinct:
            check_read_back(store, d)


# -- tests -----------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "store" / "results.db"


def test_write_and_read_back(db):
    doc = make_document(1)
    with open_store(db) as store:
        assert store.schema_version() == migrate.head_revision()
        outcome = store.write(doc)
        assert (outcome.run_id, outcome.added, outcome.results) == (document_id(doc), True, 4)
        check_read_back(store, doc)
        [run] = store.runs()
        assert (run.run_id, run.source, run.host, run.device_name, run.device_tier, run.emulated) == (
            outcome.run_id, "backdrop bench", "ci-runner-7", "host", "host-x86_64", False)
        assert (run.target, run.git_commit, run.results, run.backdrop_version) == ("android-arm64", "9dba0a2", 4, "0.1.0")
        assert run.started_at == datetime(2026, 12, 1, 9, 11, tzinfo=UTC)
        assert run.finished_at == datetime(2026, 12, 1, 9, 12, 34, 500000, tzinfo=UTC)
        assert store.url.startswith("sqlite+pysqlite:///") and store.url.endswith("results.db")
    # 3 artifacts x (load, model, e2e) + the peer's load and e2e (its model list is empty)
    assert table_counts(db) == {"runs": 1, "results": 4, "metrics": 11, "parity_runs": 0, "parity_results": 0}
    with open_store(db) as store:  # reopened: nothing to migrate, everything still there
        check_read_back(store, doc)
    engine = make_engine(resolve_url(db))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    engine.dispose()


def test_reimport_adds_nothing(db, tmp_path):
    doc = make_document(2)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc, indent=2))
    with open_store(db) as store:
        first = store.import_file(path)
        counts = table_counts(db)
        again = store.import_file(path)
        reordered = store.write(json.loads(json.dumps(doc, sort_keys=True)))  # same content, other key order
        assert first.added and not again.added and not reordered.added
        assert first.run_id == again.run_id == reordered.run_id == document_id(doc)
        assert again.results == reordered.results == 4
        assert table_counts(db) == counts == expected_rows([doc])
        with store._engine.connect() as connection:  # the whole document, canonical, in the run row
            assert connection.execute(sa.select(tables.runs.c.document)).scalar_one() == canonical_json(doc)


def test_runs_filter_and_order(db):
    docs = [make_document(0), make_document(3, tier="phone-pixel8", device="adb:1A2B3C"), make_document(2), make_document(1)]
    with open_store(db) as store:
        for d in docs:
            store.write(d)
        ids = [document_id(d) for d in docs]
        assert [r.run_id for r in store.runs()] == [ids[1], ids[2], ids[3], ids[0]]  # newest first
        assert [r.run_id for r in store.runs(tier="host-x86_64")] == [ids[2], ids[3], ids[0]]
        assert [r.run_id for r in store.runs(device="adb:1A2B3C")] == [ids[1]]
        assert [r.run_id for r in store.runs(tier="host-x86_64", limit=2)] == [ids[2], ids[3]]
        assert store.runs(tier="emulated-arm64") == []
        with pytest.raises(StoreError, match="limit must be a positive"):
            store.runs(limit=0)


def test_interrupted_write_leaves_no_trace(db, monkeypatch):
    with open_store(db) as store:
        store.write(make_document(0))
        before = table_counts(db)
        real, calls = store_module._insert_result, []

        def failing(*args, **kwargs):
            calls.append(args[2])
            if len(calls) == 3:  # the run row and two results (with their metrics) are in
                raise RuntimeError("injected: the process died mid-write")
            return real(*args, **kwargs)

        monkeypatch.setattr(store_module, "_insert_result", failing)
        doc = make_document(7)
        with pytest.raises(RuntimeError, match="injected"):
            store.write(doc)
        assert calls == [0, 1, 2]
        assert table_counts(db) == before
        with pytest.raises(StoreError, match="no run"):
            store.document(document_id(doc))
        monkeypatch.setattr(store_module, "_insert_result", real)
        assert store.write(doc).added  # nothing half-written stands in the way
        assert table_counts(db) == expected_rows([make_document(0), doc])


def test_lost_race_is_no_error(db, monkeypatch):
    """A writer whose checks missed the same run committed by another (the race a unique-key
    violation settles): its insert fails on the run id, it rolls back, finds the run, added=False."""
    doc = make_document(8)
    with open_store(db) as store:
        store.write(doc)
        counts = table_counts(db)
        real, blind = store_module._count_in, iter([None, None])  # the check before, and inside, the transaction
        monkeypatch.setattr(store_module, "_count_in", lambda connection, run_id: next(blind, real(connection, run_id)))
        outcome = store.write(doc)
        assert (outcome.run_id, outcome.added, outcome.results) == (document_id(doc), False, 4)
        assert next(blind, "used") == "used"
    assert table_counts(db) == counts


def _bad(doc_change):
    doc = make_document(4)
    doc_change(doc)
    return doc


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (_bad(lambda d: d.pop("results")), r"does not match .*results.schema.json:\n  \(root\): 'results' is a required"),
        (_bad(lambda d: d["results"][0]["model_ms"].__setitem__(5, -1.0)), r"results/0/model_ms/5: -1.0 is less than"),
        (_bad(lambda d: d["results"][1].pop("load_ms")), r"results/1: 'load_ms' is a required property"),
        (_bad(lambda d: d.update(format_version="2.0")), r"format_version 2.0 is not readable by this backdrop .*upgrade"),
        (_bad(lambda d: d["run"].update(started_at="yesterday")), r"run/started_at: 'yesterday' is not a 'date-time'"),
    ],
    ids=["no-results", "negative-sample", "no-load", "newer-major", "bad-time"],
)
def test_bad_documents_write_nothing(db, document, error):
    with open_store(db) as store:
        with pytest.raises(ResultsFormatError, match=error):
            store.write(document)
    assert table_counts(db) == expected_rows([])


def test_bad_files_write_nothing(db, tmp_path):
    broken = tmp_path / "broken.json"
    lines = json.dumps(make_document(4), indent=2).splitlines()
    broken.write_text("\n".join([*lines[:12], "    ]],", *lines[12:]]))  # a stray bracket on line 13
    with open_store(db) as store:
        with pytest.raises(ResultsFormatError, match=rf"results file {broken} is not valid JSON: .* at line 13, column 5\."):
            store.import_file(broken)
        with pytest.raises(StoreError, match=r"results file .*missing.json does not exist"):
            store.import_file(tmp_path / "missing.json")
        with pytest.raises(StoreError, match="is a folder"):
            store.import_file(tmp_path)
        invalid = tmp_path / "invalid.json"
        invalid.write_text(json.dumps({"format": "backdrop-results", "format_version": "1.0"}))
        with pytest.raises(ResultsFormatError, match=rf"results file {invalid} does not match"):
            store.import_file(invalid)
        nan = tmp_path / "nan.json"
        nan.write_text(json.dumps(make_document(4)).replace('"e2e_ms": [', '"e2e_ms": [NaN, ', 1))
        with pytest.raises(ResultsFormatError, match="finite numbers only"):
            store.import_file(nan)
    assert table_counts(db) == expected_rows([])


def test_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_store() as store:
        assert store.url == f"sqlite+pysqlite:///{tmp_path / 'results' / 'backdrop.db'}"
    assert (tmp_path / "results" / "backdrop.db").is_file()
    with open_store(f"sqlite:///{tmp_path / 'url.db'}") as store:
        assert store.schema_version() == migrate.head_revision()
    with open_store(str(tmp_path / "deep" / "er" / "plain.db")) as store:
        store.write(make_document(0))
    for bad in ("mysql://u:pw@host/db", "oracle+cx_oracle://x", "  "):
        with pytest.raises(StoreError, match=r"(sqlite:///path/to/file.db, or postgresql://)") as info:
            open_store(bad)
        assert "pw" not in str(info.value)
    with pytest.raises(StoreError, match="is a folder"):
        open_store(tmp_path)
    (tmp_path / "garbage.db").write_bytes(b"this is not an SQLite database, just text" * 100)
    with pytest.raises(StoreError, match=r"cannot open the results store .*garbage.db: .*not a database"):
        open_store(tmp_path / "garbage.db")
    # a server that does not answer: the URL with its password masked, and what to check
    with pytest.raises(StoreError) as info:
        open_store("postgres://backdrop:s3cret@127.0.0.1:9/results")
    message = str(info.value)
    assert "postgresql+psycopg://backdrop:***@127.0.0.1:9/results" in message and "s3cret" not in message
    assert "make postgres" in message and "user, password and database name" in message


# -- migrations ------------------------------------------------------------------------------

EXPECTED_SCHEMA = {
    # revision -> {table: (columns, indexes, unique constraints)}; a new revision adds its entry.
    "0001": {
        "runs": (
            ["run_id", "format_version", "started_at", "finished_at", "source", "host", "backdrop_version", "git_commit",
             "target", "manifest_sha256", "protocol", "device_name", "device_tier", "emulated", "results_count",
             "imported_at", "document"],
            ["ix_runs_device_name", "ix_runs_device_tier_started_at", "ix_runs_started_at", "ix_runs_target"],
            [],
        ),
        "results": (
            ["id", "run_id", "position", "artifact_key", "bucket", "format", "precision", "state_form", "sha256", "size_bytes",
             "checkpoint_sha256", "peer", "file", "threads", "peak_rss_mb", "baseline_rss_mb", "memory_kind", "flags",
             "runtime_versions", "cores", "gate"],
            ["ix_results_artifact_key", "ix_results_sha256"],
            ["uq_results_run_id_position"],
        ),
        "metrics": (
            ["result_id", "metric", "n", "p50", "p90", "p99", "trimmed_mean", "min", "max", "mean", "cv", "median_ci_low",
             "median_ci_high", "samples"],
            [],
            [],
        ),
    },
}
EXPECTED_SCHEMA["0002"] = {
    **EXPECTED_SCHEMA["0001"],
    "parity_runs": (
        ["parity_id", "started_at", "finished_at", "host", "backdrop_version", "git_commit", "target", "manifest_sha256",
         "device_name", "device_tier", "emulated", "frames_limit", "checked_count", "passed_count", "imported_at", "document"],
        ["ix_parity_runs_device_tier_started_at", "ix_parity_runs_started_at"],
        [],
    ),
    "parity_results": (
        ["id", "parity_id", "position", "artifact_key", "bucket", "format", "precision", "state_form", "sha256", "passed",
         "frames", "min_iou", "min_boundary_iou", "max_abs_error", "error", "message"],
        ["ix_parity_results_artifact_key", "ix_parity_results_sha256"],
        ["uq_parity_results_parity_id_position"],
    ),
}


def _schema(connection) -> dict:
    inspector = sa.inspect(connection)
    return {
        name: (
            [c["name"] for c in inspector.get_columns(name)],
            sorted(i["name"] for i in inspector.get_indexes(name) if not i.get("unique")),
            sorted(u["name"] for u in inspector.get_unique_constraints(name)),
        )
        for name in inspector.get_table_names() if name != "alembic_version"
    }


def _write_at_first_revision(connection, document: dict) -> str:
    """Store ``document`` in revision 0001's layout, as the code of that revision did (the
    tables reflected from the database, not today's definitions)."""
    meta = sa.MetaData()
    meta.reflect(connection, only=["runs", "results", "metrics"])
    run, device = document["run"], document["run"]["device"]
    run_id = document_id(document)

    def utc(text):
        return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)

    connection.execute(meta.tables["runs"].insert().values(
        run_id=run_id, format_version=document["format_version"], started_at=utc(run["started_at"]),
        finished_at=utc(run["finished_at"]), source=run["source"], host=run["host"], backdrop_version=run["backdrop_version"],
        git_commit=run["git_commit"], target=run["target"], manifest_sha256=run["manifest_sha256"],
        protocol=run["protocol"]["name"], device_name=device["name"], device_tier=device["tier"], emulated=device["emulated"],
        results_count=len(document["results"]), imported_at=datetime(2026, 12, 2), document=canonical_json(document),
    ))
    for position, r in enumerate(document["results"]):
        a, memory = r["artifact"], r["memory"] or {}
        result_id = connection.execute(meta.tables["results"].insert().values(
            run_id=run_id, position=position, artifact_key=a["key"], bucket=a["bucket"], format=a["format"],
            precision=a["precision"], state_form=a["state_form"], sha256=a["sha256"], size_bytes=a["size_bytes"],
            checkpoint_sha256=a["checkpoint_sha256"], peer=a["peer"], file=a.get("file"), threads=r["threads"],
            peak_rss_mb=memory.get("peak_rss_mb"), baseline_rss_mb=memory.get("baseline_rss_mb"),
            memory_kind=memory.get("kind"), flags=r["flags"], runtime_versions=r["runtime_versions"], cores=r["cores"],
            gate=r["gate"],
        )).inserted_primary_key[0]
        for metric in tables.METRICS:
            if r[f"{metric}_ms"]:
                connection.execute(meta.tables["metrics"].insert().values(
                    result_id=result_id, metric=metric, **summarize(r[f"{metric}_ms"]).to_dict(),
                    samples=r[f"{metric}_ms"],
                ))
    return run_id


def test_migrations_from_the_first_revision(db):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    revisions = migrate.revisions()
    assert revisions[0] == "0001" and revisions[-1] == migrate.head_revision()
    assert list(EXPECTED_SCHEMA) == revisions, "add each new revision's expected schema to EXPECTED_SCHEMA"
    doc = make_document(5)
    engine = make_engine(resolve_url(db))
    with engine.connect() as connection:
        assert migrate.current_revision(connection) is None and _schema(connection) == {}
    for step, revision in enumerate(revisions):  # base -> 0001 -> ... -> head, one revision at a time
        with write_connection(engine) as connection, connection.begin():
            migrate.upgrade(connection, revision)
        with engine.connect() as connection:
            assert migrate.current_revision(connection) == revision
            assert _schema(connection) == EXPECTED_SCHEMA[revision]
        if step == 0:
            with write_connection(engine) as connection, connection.begin():
                run_id = _write_at_first_revision(connection, doc)
    with engine.connect() as connection:  # the schema at head is the one tables.py describes
        assert compare_metadata(MigrationContext.configure(connection), tables.metadata) == []
    engine.dispose()
    with open_store(db) as store:  # the run written at the first revision reads back at head
        assert store.schema_version() == revisions[-1]
        check_read_back(store, doc)
        assert [r.run_id for r in store.runs()] == [run_id]
    engine = make_engine(resolve_url(db))
    with write_connection(engine) as connection, connection.begin():
        migrate.downgrade(connection, "base")
    with engine.connect() as connection:
        assert _schema(connection) == {} and migrate.current_revision(connection) is None
    engine.dispose()


def test_newer_schema_is_refused(db):
    with open_store(db) as store:
        store.write(make_document(0))
    engine = make_engine(resolve_url(db))
    with write_connection(engine) as connection, connection.begin():
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"has schema revision 0999, which this backdrop .* does not know: a newer backdrop "
                       r"wrote it\. Upgrade backdrop"):
        open_store(db)
    assert table_counts(db) == expected_rows([make_document(0)])  # untouched


# -- run ids ---------------------------------------------------------------------------------


def test_run_prefix_lookup(db, monkeypatch):
    ids = iter(["abcdef01" + "0" * 56, "abcdef02" + "1" * 56, "123456ab" + "2" * 56])
    monkeypatch.setattr(store_module, "document_id", lambda document: next(ids))
    docs = [make_document(v, artifacts=1, samples=5) for v in range(3)]
    with open_store(db) as store:
        a, b, c = (store.write(d).run_id for d in docs)
        assert store.document("abcdef01") == docs[0]
        assert store.document(b) == docs[1]
        assert store.document("123456") == docs[2]
        assert store.resolve("ABCDEF02") == b
        assert [r.key for r in store.results(c[:10])] == [r["artifact"]["key"] for r in docs[2]["results"]]
        candidate = r"abcdef0[12]\w* \(2026-12-01 \d\d:\d\d on host\)"
        ambiguous = rf"run prefix abcdef is ambiguous: it matches {candidate}, {candidate}\. Give more characters"
        with pytest.raises(StoreError, match=ambiguous):
            store.document("abcdef")
        with pytest.raises(StoreError, match="no run in the results store .* has an id starting with fedcba98"):
            store.results("fedcba98")
        for bad in ("abc", "abcdefg", "", "a" * 65):
            with pytest.raises(StoreError, match="is not a run id: give the 64 hex characters of one, or a unique prefix of at "
                               "least 6"):
                store.document(bad)


# -- concurrency -----------------------------------------------------------------------------


def test_three_processes_write_at_once(db):
    """Three processes open a fresh store (its schema created once) and write at the same moment:
    each its own two documents and one shared document: every run stored once, none lost."""
    own = [[make_document(10 + 2 * i, samples=30), make_document(11 + 2 * i, samples=30)] for i in range(3)]
    shared = make_document(99, samples=30)
    outcomes = run_writers(str(db), [[shared, *docs] if i % 2 else [*docs, shared] for i, docs in enumerate(own)])
    check_concurrent_outcome(str(db), own, shared, outcomes)
    with open_store(db) as store:
        assert store.schema_version() == migrate.head_revision()


def test_opening_a_fresh_store_waits_for_a_lock_held_elsewhere(tmp_path):
    """SQLite refuses the switch to WAL at once ("database is locked", no busy handler) while
    another connection holds a lock on a fresh file: the store's connect waits for it instead."""
    import sqlite3
    import threading

    path = tmp_path / "results.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE held (a)")
    threading.Timer(0.3, holder.execute, args=("COMMIT",)).start()
    engine = make_engine(resolve_url(path))
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("SELECT count(*) FROM held").scalar() == 0
    finally:
        engine.dispose()
        holder.close()
