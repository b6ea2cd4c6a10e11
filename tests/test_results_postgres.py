"""The results store on PostgreSQL (the loopback server of scripts/postgres.sh, `make
test-postgres`): the round trip, four processes writing at once, an interrupted write, the schema
at head, the same document read back equal from SQLite and PostgreSQL, and a parity check.

The server is named by BACKDROP_TEST_PG_URL (`scripts/postgres.sh url`); each test creates a
database of its own through the server's `postgres` maintenance database and drops it after.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
from test_results_parity import make_parity_document
from test_results_store import (
    check_concurrent_outcome,
    check_read_back,
    expected_rows,
    make_document,
    run_writers,
    table_counts,
)

from backdrop.bench.document import document_id
from backdrop.results import migrate, open_store, tables
from backdrop.results import store as store_module
from backdrop.results.engine import mask, resolve_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url():
    """The URL of a fresh, empty database on the test server (dropped after the test)."""
    url = os.environ.get("BACKDROP_TEST_PG_URL")
    if not url:
        pytest.skip("BACKDROP_TEST_PG_URL is not set: `make test-postgres` starts the loopback server (scripts/postgres.sh) "
                    "and sets it")
    base = resolve_url(url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"backdrop_test_{uuid.uuid4().hex[:16]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as e:
        admin.dispose()
        pytest.fail(f"cannot reach the test server {mask(base)} (`make postgres` starts it): {e.orig}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_round_trip(pg_url):
    docs = [make_document(1), make_document(2, tier="phone-pixel8", device="adb:1A2B3C")]
    with open_store(pg_url) as store:
        assert store.schema_version() == migrate.head_revision()
        assert store.url.startswith("postgresql+psycopg://")
        outcomes = [store.write(d) for d in docs]
        assert [(o.run_id, o.added, o.results) for o in outcomes] == [(document_id(d), True, 4) for d in docs]
        for d in docs:
            check_read_back(store, d)
        assert not store.write(docs[0]).added  # idempotent
        assert [r.run_id for r in store.runs()] == [document_id(docs[1]), document_id(docs[0])]
        assert [r.run_id for r in store.runs(tier="host-x86_64")] == [document_id(docs[0])]
        assert store.document(document_id(docs[1])[:8]) == docs[1]
    assert table_counts(pg_url) == expected_rows(docs)


def test_schema_at_head_matches_tables(pg_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    open_store(pg_url).close()
    engine = sa.create_engine(resolve_url(pg_url))
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), tables.metadata) == []
    engine.dispose()


def test_four_processes_write_at_once(pg_url):
    """Four processes open the fresh database (its schema created once, whoever comes first) and
    write at the same moment: each its own two documents and one shared document."""
    own = [[make_document(20 + 2 * i, samples=40), make_document(21 + 2 * i, samples=40)] for i in range(4)]
    shared = make_document(98, samples=40)
    outcomes = run_writers(pg_url, [[shared, *docs] if i % 2 else [*docs, shared] for i, docs in enumerate(own)])
    check_concurrent_outcome(pg_url, own, shared, outcomes)


def test_interrupted_write_leaves_no_trace(pg_url, monkeypatch):
    with open_store(pg_url) as store:
        store.write(make_document(0))
        before = table_counts(pg_url)
        real, calls = store_module._insert_result, []

        def failing(*args, **kwargs):
            calls.append(args[2])
            if len(calls) == 3:
                raise RuntimeError("injected: the connection dropped mid-write")
            return real(*args, **kwargs)

        monkeypatch.setattr(store_module, "_insert_result", failing)
        doc = make_document(7)
        with pytest.raises(RuntimeError, match="injected"):
            store.write(doc)
        assert table_counts(pg_url) == before
        monkeypatch.setattr(store_module, "_insert_result", real)
        assert store.write(doc).added
    assert table_counts(pg_url) == expected_rows([make_document(0), doc])


def test_sqlite_and_postgres_read_back_equal(pg_url, tmp_path):
    doc = make_document(3)
    with open_store(tmp_path / "results.db") as lite, open_store(pg_url) as pg:
        assert lite.write(doc) == pg.write(doc)
        assert lite.document(document_id(doc)) == pg.document(document_id(doc)) == doc
        assert lite.results(document_id(doc)) == pg.results(document_id(doc))
        assert lite.runs() == pg.runs()
        assert lite.schema_version() == pg.schema_version()


def test_parity_round_trip(pg_url, tmp_path):
    doc = make_parity_document(1)
    with open_store(tmp_path / "results.db") as lite, open_store(pg_url) as pg:
        outcome = pg.write_parity(doc)
        assert (outcome.run_id, outcome.added, outcome.results) == (document_id(doc), True, 2)
        assert not pg.write_parity(doc).added  # idempotent
        [run] = pg.parity_runs(tier="phone-pixel8")
        assert (run.parity_id, run.checked, run.passed, run.frames_limit, run.device_name) == (
            outcome.run_id, 2, 1, 5, "adb:1A2B3C")
        rows = pg.parity_results(outcome.run_id[:10])
        assert [(r.key, r.passed, r.sha256) for r in rows] == [
            ("landscape_16x9/onnx-fp32-explicit", True, "ef" * 32), ("landscape_16x9/onnx-fp32-native", False, None)]
        assert rows[1].min_iou == 0.91 and pg.parity_document(outcome.run_id) == doc
        assert lite.write_parity(doc) == outcome
        assert lite.parity_runs() == pg.parity_runs() and lite.parity_results(outcome.run_id) == rows
    counts = table_counts(pg_url)
    assert (counts["parity_runs"], counts["parity_results"], counts["runs"]) == (1, 2, 0)
