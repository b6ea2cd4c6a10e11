"""The results store: benchmark runs (results documents) kept in SQLite or PostgreSQL, read back
by ``backdrop results compare`` and the dashboard.

A run is written whole or not at all (one transaction: the run, its results, their metrics),
and at most once: its id is the document's own (:func:`backdrop.bench.document.document_id`),
so importing the same file again, or several processes writing the same document at the same
moment, adds it once. Statistics are recomputed from the raw samples on write
(:func:`backdrop.bench.stats.summarize`); the samples are kept for the significance tests, and
the whole document as canonical JSON, so that nothing in it is lost.

Parity checks (``backdrop parity --store``, :mod:`backdrop.results.parity`) are kept the same way:
a parity document written once, whole or not at all, under the sha256 of its canonical JSON, with
a row per artifact checked (passed or not, its worst values).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from backdrop.bench.document import ResultsFormatError, canonical_json, document_id, validate_document
from backdrop.bench.stats import Stats, summarize
from backdrop.results import tables as t
from backdrop.results.engine import StoreError, driver_message, is_sqlite, make_engine, mask, resolve_url, write_connection
from backdrop.results.migrate import current_revision, ensure_schema
from backdrop.results.parity import WORST, validate_parity_document

MIN_PREFIX = 6
"""The shortest run (or parity run) id prefix a lookup accepts."""

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class WriteOutcome:
    """What :meth:`Store.write` (or :meth:`Store.write_parity`) did.

    Attributes:
        run_id: the run's id (sha256 of the document's canonical JSON); a parity run's parity_id.
        added: True when this call stored the run; False when it was stored already.
        results: the run's result rows (artifacts timed, or checked).
    """

    run_id: str
    added: bool
    results: int


@dataclass(frozen=True)
class RunSummary:
    """One stored run, as :meth:`Store.runs` lists it (times are UTC, timezone-aware).

    Attributes:
        results: how many artifacts the run timed.
    """

    run_id: str
    started_at: datetime
    finished_at: datetime
    source: str
    host: str
    device_name: str
    device_tier: str
    emulated: bool
    target: str
    git_commit: str | None
    results: int
    backdrop_version: str


@dataclass(frozen=True)
class StoredResult:
    """One artifact's result in a stored run.

    Attributes:
        run_id, position: the run, and the result's index in its document.
        key, bucket, format, precision, state_form, sha256, size_bytes, checkpoint_sha256,
            peer, file: the artifact, as the document describes it.
        threads: threads the runtime ran with (0: the device cannot say).
        memory: ``{"peak_rss_mb", "baseline_rss_mb", "kind"}``, or None when not measured.
        flags, runtime_versions, cores, gate: as in the document.
        stats: metric name ("load", "model", "e2e") -> :class:`Stats`; a metric measured with
            no samples is absent.
        samples: metric name -> the raw samples (ms); ``[]`` for a metric not measured.
    """

    run_id: str
    position: int
    key: str
    bucket: str
    format: str
    precision: str
    state_form: str
    sha256: str
    size_bytes: int
    checkpoint_sha256: str | None
    peer: bool
    file: str | None
    threads: int
    memory: dict | None
    flags: list[str]
    runtime_versions: dict[str, str]
    cores: dict[str, int]
    gate: list[dict]
    stats: dict[str, Stats]
    samples: dict[str, list[float]]


@dataclass(frozen=True)
class ParityRunSummary:
    """One stored parity check, as :meth:`Store.parity_runs` lists it (times are UTC,
    timezone-aware).

    Attributes:
        frames_limit: ``--frames`` of the check (None: whole goldens).
        checked, passed: artifacts checked, and how many of them passed.
        device: the document's ``run.device`` (the device's description).
    """

    parity_id: str
    started_at: datetime
    finished_at: datetime
    host: str
    device_name: str
    device_tier: str
    emulated: bool
    target: str
    git_commit: str | None
    manifest_sha256: str | None
    backdrop_version: str
    frames_limit: int | None
    checked: int
    passed: int
    device: dict


@dataclass(frozen=True)
class StoredParity:
    """One artifact's parity result in a stored parity check.

    Attributes:
        parity_id, position: the check, and the result's index in its document.
        key, bucket, format, precision, state_form, sha256: the artifact (sha256 of its file as
            the manifest gives it; None when the document did not say).
        passed: every frame met every threshold.
        frames: frames checked (the golden's, or its --frames prefix).
        min_iou, min_boundary_iou, max_abs_error: the worst values; None when the run failed.
        error: why the run itself failed, or "". message: the one-line verdict.
    """

    parity_id: str
    position: int
    key: str
    bucket: str
    format: str
    precision: str
    state_form: str
    sha256: str | None
    passed: bool
    frames: int | None
    min_iou: float | None
    min_boundary_iou: float | None
    max_abs_error: float | None
    error: str
    message: str


def open_store(url: str | os.PathLike | None = None) -> Store:
    """Open (and create, or migrate to this code's schema) the results store at ``url``.

    Args:
        url: None for ``results/backdrop.db`` under the current directory; a file path for
            an SQLite file (its folder is created); ``sqlite:///...``; ``postgresql://...`` or
            ``postgres://...`` (reached through psycopg 3).

    Raises:
        StoreError: a URL of another kind, a database that cannot be reached (the message has
            the URL, password masked, and what to check), or a schema newer than this backdrop.
    """
    engine = make_engine(resolve_url(url))
    shown = mask(engine.url)
    try:
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except sa.exc.DBAPIError as e:
            raise StoreError(_unreachable(engine, shown, e)) from e
        ensure_schema(engine, shown)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


def _unreachable(engine: sa.Engine, shown: str, error: sa.exc.DBAPIError) -> str:
    why = driver_message(error)
    if is_sqlite(engine):
        return (f"cannot open the results store {shown}: {why}. Check that the path names an SQLite file (or none yet) "
                "in a folder you can write to.")
    return (f"cannot connect to the results store {shown}: {why}. Check that the server runs and accepts connections "
            "at that host and port (`make postgres` starts a local one), and the user, password and database name.")


class Store:
    """An open results store (from :func:`open_store`); close it, or use it as a context manager."""

    def __init__(self, engine: sa.Engine):
        self._engine = engine

    @property
    def url(self) -> str:
        """The store's URL, password masked."""
        return mask(self._engine.url)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        try:
            with self._engine.connect() as connection, connection.begin():
                yield connection
        except sa.exc.DBAPIError as e:
            raise StoreError(f"cannot read the results store {self.url}: {driver_message(e)}.") from e

    def schema_version(self) -> str:
        """The schema's Alembic revision."""
        with self._reading() as connection:
            return current_revision(connection)

    # -- writing -----------------------------------------------------------------------------

    def write(self, document: dict, what: str = "results document") -> WriteOutcome:
        """Store a results document once; ``what`` names it in messages (e.g. its file).

        Raises:
            ResultsFormatError: the document does not satisfy the schema (or has a newer major
                format_version); nothing is written.
            StoreError: the database refused or failed the write (which is all or nothing).
        """
        validate_document(document, what)
        run_id = document_id(document)

        def prepare() -> tuple[int, Callable[[sa.Connection], None]]:
            run_row = _run_row(run_id, document, what)
            prepared = [(_result_row(result), _metric_rows(result)) for result in document["results"]]

            def insert(connection: sa.Connection) -> None:
                _insert_run(connection, run_row)
                for position, (row, metric_rows) in enumerate(prepared):
                    _insert_result(connection, run_id, position, row, metric_rows)

            return len(prepared), insert

        return self._write_once(run_id, what, _count_in, prepare)

    def write_parity(self, document: dict, what: str = "parity document") -> WriteOutcome:
        """Store a parity document (:func:`backdrop.results.parity.parity_document`) once, like
        :meth:`write`: whole or not at all, under its id (the sha256 of its canonical JSON).

        Raises:
            ResultsFormatError: the document is not a parity document this backdrop reads (the
                message names the field); nothing is written.
            StoreError: the database refused or failed the write (which is all or nothing).
        """
        validate_parity_document(document, what)
        parity_id = document_id(document)

        def prepare() -> tuple[int, Callable[[sa.Connection], None]]:
            run_row = _parity_run_row(parity_id, document, what)
            rows = [_parity_result_row(parity_id, position, result) for position, result in enumerate(document["results"])]

            def insert(connection: sa.Connection) -> None:
                _insert_parity(connection, run_row, rows)

            return len(rows), insert

        return self._write_once(parity_id, what, _parity_count_in, prepare)

    def _write_once(
        self, key: str, what: str, count_in: Callable[[sa.Connection, str], int | None],
        prepare: Callable[[], tuple[int, Callable[[sa.Connection], None]]],
    ) -> WriteOutcome:
        """Write the document ``key`` names unless it is stored (``count_in`` gives its rows, or
        None): ``prepare()`` -> (rows, insert), ``insert(connection)`` inside one transaction."""
        stored = self._stored(count_in, key)
        if stored is not None:
            return WriteOutcome(key, False, stored)
        rows, insert = prepare()
        try:
            with write_connection(self._engine) as connection, connection.begin():
                stored = count_in(connection, key)
                if stored is not None:
                    return WriteOutcome(key, False, stored)
                insert(connection)
        except sa.exc.IntegrityError as e:
            # Another writer stored the same run between our check and our insert: it is there.
            stored = self._stored(count_in, key)
            if stored is not None:
                return WriteOutcome(key, False, stored)
            raise self._not_written(what, e) from e
        except sa.exc.DBAPIError as e:
            raise self._not_written(what, e) from e
        return WriteOutcome(key, True, rows)

    def _not_written(self, what: str, error: sa.exc.DBAPIError) -> StoreError:
        return StoreError(
            f"cannot write {what} to the results store {self.url}: {driver_message(error)}. A write is all or nothing: "
            "write it again once the store works (a run already stored is not added twice)."
        )

    def import_file(self, path: str | os.PathLike) -> WriteOutcome:
        """Read a results document from a JSON file and :meth:`write` it.

        Raises:
            StoreError: the file is missing or unreadable.
            ResultsFormatError: it is not JSON (with the line and column), or not a results
                document this backdrop reads.
        """
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError as e:
            raise StoreError(f"results file {path} does not exist.") from e
        except IsADirectoryError as e:
            raise StoreError(f"results file {path} is a folder; name a JSON file (`backdrop bench --out` writes one).") from e
        except OSError as e:
            raise StoreError(f"cannot read results file {path}: {e.strerror or e}.") from e
        except UnicodeDecodeError as e:
            raise ResultsFormatError(f"results file {path} is not UTF-8 text (byte {e.start}); is it a results document?") from e
        try:
            document = json.loads(text)
        except json.JSONDecodeError as e:
            where = f"line {e.lineno}, column {e.colno}"
            raise ResultsFormatError(f"results file {path} is not valid JSON: {e.msg} at {where}.") from e
        return self.write(document, what=f"results file {path}")

    def _stored(self, count_in: Callable[[sa.Connection, str], int | None], key: str) -> int | None:
        with self._reading() as connection:
            return count_in(connection, key)

    # -- reading -----------------------------------------------------------------------------

    def runs(self, tier: str | None = None, device: str | None = None, limit: int | None = None) -> list[RunSummary]:
        """The stored runs, newest first (by ``started_at``); only those of device ``tier`` and/or
        device name ``device`` when given, at most ``limit``."""
        r = t.runs
        columns = (r.c.run_id, r.c.started_at, r.c.finished_at, r.c.source, r.c.host, r.c.device_name, r.c.device_tier,
                   r.c.emulated, r.c.target, r.c.git_commit, r.c.results_count, r.c.backdrop_version)
        rows = self._newest_first(r, r.c.run_id, columns, tier, device, limit, "runs")
        return [
            RunSummary(
                run_id=row.run_id, started_at=_aware(row.started_at), finished_at=_aware(row.finished_at), source=row.source,
                host=row.host, device_name=row.device_name, device_tier=row.device_tier, emulated=bool(row.emulated),
                target=row.target, git_commit=row.git_commit, results=row.results_count, backdrop_version=row.backdrop_version,
            )
            for row in rows
        ]

    def resolve(self, run_ref: str) -> str:
        """The full id of the run that ``run_ref`` (a full id or a unique prefix of at least 6
        hex characters) names.

        Raises:
            StoreError: a malformed reference, none matched, or several did (they are named).
        """
        return self._resolve(run_ref, t.runs, t.runs.c.run_id, "run")

    def _resolve(self, ref_text: str, table: sa.Table, id_column: sa.Column, noun: str) -> str:
        ref = ref_text.strip().lower() if isinstance(ref_text, str) else ""
        if len(ref) < MIN_PREFIX or len(ref) > 64 or not set(ref) <= _HEX:
            raise StoreError(
                f"{noun} {ref_text!r} is not a {noun} id: give the 64 hex characters of one, or a unique prefix of at least "
                f"{MIN_PREFIX}."
            )
        query = sa.select(id_column.label("id"), table.c.started_at, table.c.device_name)
        query = query.where(id_column == ref) if len(ref) == 64 else query.where(id_column.startswith(ref))
        with self._reading() as connection:
            rows = connection.execute(query.order_by(table.c.started_at.desc(), id_column).limit(11)).all()
        if not rows:
            raise StoreError(
                f"no {noun} in the results store {self.url} has an id starting with {ref}; list the {noun}s for theirs."
            )
        if len(rows) > 1:
            shown = ", ".join(f"{r.id[:12]} ({_aware(r.started_at):%Y-%m-%d %H:%M} on {r.device_name})" for r in rows[:10])
            more = " and more" if len(rows) > 10 else ""
            raise StoreError(f"{noun} prefix {ref} is ambiguous: it matches {shown}{more}. Give more characters.")
        return rows[0].id

    def document(self, run_ref: str) -> dict:
        """The stored results document of a run (full id or unique prefix, see :meth:`resolve`)."""
        run_id = self.resolve(run_ref)
        with self._reading() as connection:
            text = connection.execute(sa.select(t.runs.c.document).where(t.runs.c.run_id == run_id)).scalar_one()
        return json.loads(text)

    def results(self, run_ref: str) -> list[StoredResult]:
        """Every artifact's result of a run (full id or unique prefix), in document order, with
        each metric's statistics and raw samples."""
        run_id = self.resolve(run_ref)
        res, met = t.results, t.metrics
        with self._reading() as connection:
            rows = connection.execute(sa.select(res).where(res.c.run_id == run_id).order_by(res.c.position)).all()
            metric_rows = connection.execute(
                sa.select(met).join(res, met.c.result_id == res.c.id).where(res.c.run_id == run_id)
            ).all()
        by_result: dict[int, dict[str, sa.Row]] = {}
        for m in metric_rows:
            by_result.setdefault(m.result_id, {})[m.metric] = m
        return [_stored_result(row, by_result.get(row.id, {})) for row in rows]

    # -- parity checks -------------------------------------------------------------------------

    def _newest_first(self, table: sa.Table, id_column, columns, tier: str | None, device: str | None, limit: int | None,
                      what: str) -> list[sa.Row]:
        """Rows of ``table`` (``columns``), newest first by ``started_at`` then id, filtered by
        device tier and name, at most ``limit``."""
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise StoreError(f"limit must be a positive number of {what}; got {limit!r}.")
        query = sa.select(*columns).order_by(table.c.started_at.desc(), id_column)
        if tier is not None:
            query = query.where(table.c.device_tier == tier)
        if device is not None:
            query = query.where(table.c.device_name == device)
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as connection:
            return connection.execute(query).all()

    def parity_runs(self, tier: str | None = None, device: str | None = None, limit: int | None = None) -> list[ParityRunSummary]:
        """The stored parity checks, newest first (by ``started_at``); only those of device
        ``tier`` and/or device name ``device`` when given, at most ``limit``."""
        p = t.parity_runs
        rows = self._newest_first(p, p.c.parity_id, (p,), tier, device, limit, "parity runs")
        return [
            ParityRunSummary(
                parity_id=row.parity_id, started_at=_aware(row.started_at), finished_at=_aware(row.finished_at), host=row.host,
                device_name=row.device_name, device_tier=row.device_tier, emulated=bool(row.emulated), target=row.target,
                git_commit=row.git_commit, manifest_sha256=row.manifest_sha256, backdrop_version=row.backdrop_version,
                frames_limit=row.frames_limit, checked=row.checked_count, passed=row.passed_count,
                device=json.loads(row.document)["run"]["device"],
            )
            for row in rows
        ]

    def resolve_parity(self, parity_ref: str) -> str:
        """The full id of the parity run that ``parity_ref`` (a full id or a unique prefix of at
        least 6 hex characters) names; raises StoreError like :meth:`resolve`."""
        return self._resolve(parity_ref, t.parity_runs, t.parity_runs.c.parity_id, "parity run")

    def parity_document(self, parity_ref: str) -> dict:
        """The stored parity document of a parity run (full id or unique prefix)."""
        parity_id = self.resolve_parity(parity_ref)
        p = t.parity_runs
        with self._reading() as connection:
            text = connection.execute(sa.select(p.c.document).where(p.c.parity_id == parity_id)).scalar_one()
        return json.loads(text)

    def parity_results(self, parity_ref: str) -> list[StoredParity]:
        """Every artifact's result of a parity run (full id or unique prefix), in document order."""
        parity_id = self.resolve_parity(parity_ref)
        r = t.parity_results
        with self._reading() as connection:
            rows = connection.execute(sa.select(r).where(r.c.parity_id == parity_id).order_by(r.c.position)).all()
        return [
            StoredParity(
                parity_id=row.parity_id, position=row.position, key=row.artifact_key, bucket=row.bucket, format=row.format,
                precision=row.precision, state_form=row.state_form, sha256=row.sha256, passed=bool(row.passed),
                frames=row.frames, min_iou=row.min_iou, min_boundary_iou=row.min_boundary_iou,
                max_abs_error=row.max_abs_error, error=row.error, message=row.message,
            )
            for row in rows
        ]


# -- rows ------------------------------------------------------------------------------------
# Module-level so that a test can interrupt a write between them (tests/test_results_store.py).


def _count_in(connection: sa.Connection, run_id: str) -> int | None:
    return connection.execute(sa.select(t.runs.c.results_count).where(t.runs.c.run_id == run_id)).scalar_one_or_none()


def _insert_run(connection: sa.Connection, row: dict) -> None:
    connection.execute(sa.insert(t.runs).values(**row))


def _insert_result(connection: sa.Connection, run_id: str, position: int, row: dict, metric_rows: list[dict]) -> None:
    result_id = connection.execute(sa.insert(t.results).values(run_id=run_id, position=position, **row)).inserted_primary_key[0]
    if metric_rows:
        connection.execute(sa.insert(t.metrics), [{"result_id": result_id, **m} for m in metric_rows])


def _parity_count_in(connection: sa.Connection, parity_id: str) -> int | None:
    p = t.parity_runs
    return connection.execute(sa.select(p.c.checked_count).where(p.c.parity_id == parity_id)).scalar_one_or_none()


def _insert_parity(connection: sa.Connection, run_row: dict, result_rows: list[dict]) -> None:
    connection.execute(sa.insert(t.parity_runs).values(**run_row))
    if result_rows:
        connection.execute(sa.insert(t.parity_results), result_rows)


def _utc(value: str, field: str, what: str) -> datetime:
    """An ISO 8601 date-time from the document as a naive UTC datetime (no offset: UTC)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise ResultsFormatError(
            f"{what}: run/{field} {value!r} is not an ISO 8601 date-time (e.g. 2026-12-01T09:30:00.000000Z)."
        ) from e
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _run_row(run_id: str, document: dict, what: str) -> dict:
    run, device = document["run"], document["run"]["device"]
    return {
        "run_id": run_id, "format_version": document["format_version"],
        "started_at": _utc(run["started_at"], "started_at", what), "finished_at": _utc(run["finished_at"], "finished_at", what),
        "source": run["source"], "host": run["host"], "backdrop_version": run["backdrop_version"],
        "git_commit": run["git_commit"], "target": run["target"], "manifest_sha256": run.get("manifest_sha256"),
        "protocol": run["protocol"]["name"], "device_name": device["name"], "device_tier": device["tier"],
        "emulated": device["emulated"], "results_count": len(document["results"]),
        "imported_at": datetime.now(UTC).replace(tzinfo=None), "document": canonical_json(document),
    }


def _result_row(result: dict) -> dict:
    artifact, memory = result["artifact"], result["memory"] or {}
    return {
        "artifact_key": artifact["key"], "bucket": artifact["bucket"], "format": artifact["format"],
        "precision": artifact["precision"], "state_form": artifact["state_form"], "sha256": artifact["sha256"],
        "size_bytes": artifact["size_bytes"], "checkpoint_sha256": artifact["checkpoint_sha256"], "peer": artifact["peer"],
        "file": artifact.get("file"), "threads": result["threads"], "peak_rss_mb": memory.get("peak_rss_mb"),
        "baseline_rss_mb": memory.get("baseline_rss_mb"), "memory_kind": memory.get("kind"),
        "flags": result["flags"], "runtime_versions": result["runtime_versions"], "cores": result["cores"],
        "gate": result["gate"],
    }


def _parity_run_row(parity_id: str, document: dict, what: str) -> dict:
    run, device = document["run"], document["run"]["device"]
    return {
        "parity_id": parity_id,
        "started_at": _utc(run["started_at"], "started_at", what), "finished_at": _utc(run["finished_at"], "finished_at", what),
        "host": run["host"], "backdrop_version": run["backdrop_version"], "git_commit": run["git_commit"],
        "target": run["target"], "manifest_sha256": run["manifest_sha256"], "device_name": device["name"],
        "device_tier": device["tier"], "emulated": device["emulated"], "frames_limit": run["frames_limit"],
        "checked_count": len(document["results"]), "passed_count": sum(1 for r in document["results"] if r["passed"]),
        "imported_at": datetime.now(UTC).replace(tzinfo=None), "document": canonical_json(document),
    }


def _parity_result_row(parity_id: str, position: int, result: dict) -> dict:
    artifact, worst = result["artifact"], result["worst"]
    return {
        "parity_id": parity_id, "position": position, "artifact_key": artifact["key"], "bucket": artifact["bucket"],
        "format": artifact["format"], "precision": artifact["precision"], "state_form": artifact["state_form"],
        "sha256": artifact["sha256"], "passed": result["passed"], "frames": result["frames"],
        **{k: None if worst[k] is None else float(worst[k]) for k in WORST},
        "error": result["error"], "message": result["message"],
    }


def _metric_rows(result: dict) -> list[dict]:
    rows = []
    for metric in t.METRICS:
        samples = [float(v) for v in result[f"{metric}_ms"]]
        if samples:
            rows.append({"metric": metric, **summarize(samples).to_dict(), "samples": samples})
    return rows


def _stored_result(row: sa.Row, metric_rows: dict[str, sa.Row]) -> StoredResult:
    memory = None
    if row.peak_rss_mb is not None:
        memory = {"peak_rss_mb": row.peak_rss_mb, "baseline_rss_mb": row.baseline_rss_mb, "kind": row.memory_kind}
    stats = {
        name: Stats(**{c: getattr(m, c) for c in t.STATS_COLUMNS})
        for name in t.METRICS if (m := metric_rows.get(name)) is not None
    }
    samples = {name: [float(v) for v in metric_rows[name].samples] if name in metric_rows else [] for name in t.METRICS}
    return StoredResult(
        run_id=row.run_id, position=row.position, key=row.artifact_key, bucket=row.bucket, format=row.format,
        precision=row.precision, state_form=row.state_form, sha256=row.sha256, size_bytes=row.size_bytes,
        checkpoint_sha256=row.checkpoint_sha256, peer=bool(row.peer), file=row.file, threads=row.threads, memory=memory,
        flags=list(row.flags), runtime_versions=dict(row.runtime_versions), cores=dict(row.cores), gate=list(row.gate),
        stats=stats, samples=samples,
    )


__all__ = ["MIN_PREFIX", "ParityRunSummary", "RunSummary", "Store", "StoreError", "StoredParity", "StoredResult", "WriteOutcome",
           "open_store"]
