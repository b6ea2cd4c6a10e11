"""Where the results store lives: the URL forms it accepts, and the SQLAlchemy engine over them.

An embedded SQLite file (one user, one machine, CI artifacts) or a team's PostgreSQL server
(psycopg 3), one schema over both. SQLite runs in WAL mode (readers never wait for the writer)
with a busy timeout and foreign keys on; its write transactions begin with ``BEGIN IMMEDIATE``
so that concurrent writers queue for the lock instead of failing half-way.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from backdrop.core.errors import BackdropError

DEFAULT_PATH = Path("results") / "backdrop.db"
"""The store when none is named: relative to the current directory."""

BUSY_TIMEOUT_S = 30.0
"""How long an SQLite connection waits for another writer's lock before it gives up."""

CONNECT_TIMEOUT_S = 10
"""How long a PostgreSQL connection attempt waits for the server."""

URL_FORMS = (
    "a file path (an SQLite file, created if missing), sqlite:///path/to/file.db, "
    "or postgresql://user:password@host:port/database (postgres:// and postgresql+psycopg:// work too)"
)

_WRITE = "backdrop_write"  # execution option: this connection's transactions take the write lock at once (SQLite)


class StoreError(BackdropError):
    """The results store cannot be opened, read or written: an unsupported URL, a server that
    does not answer, a schema newer than this backdrop, a run id that matches no run or several."""


def resolve_url(url: str | os.PathLike | None) -> URL:
    """The SQLAlchemy URL of a store named by ``url`` (see :func:`backdrop.results.open_store`).

    Raises:
        StoreError: a URL of another kind; the message lists the forms that work.
    """
    if url is None:
        url = Path.cwd() / DEFAULT_PATH
    if isinstance(url, os.PathLike):
        return _sqlite_file(Path(url))
    if not isinstance(url, str) or not url.strip():
        raise StoreError(f"the results store {url!r} is not a URL or path; use {URL_FORMS}.")
    text = url.strip()
    if "://" not in text:
        return _sqlite_file(Path(text))
    scheme = text.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        text = "postgresql+psycopg://" + text.split("://", 1)[1]
    elif scheme not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise StoreError(f"the results store URL {mask(text)} is not one backdrop opens (scheme {scheme}://); use {URL_FORMS}.")
    try:
        return make_url(text)
    except sa.exc.ArgumentError as e:
        raise StoreError(f"the results store URL {mask(text)} cannot be parsed ({e}); use {URL_FORMS}.") from e


def _sqlite_file(path: Path) -> URL:
    path = path.expanduser()
    if path.is_dir():
        raise StoreError(f"the results store {path} is a folder; name an SQLite file, e.g. {path / DEFAULT_PATH.name}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the folder of the results store {path} ({e.strerror or e}).") from e
    return URL.create("sqlite+pysqlite", database=str(path.resolve()))


def mask(url: str | URL) -> str:
    """``url`` as text with its password replaced by ``***``."""
    try:
        return (url if isinstance(url, URL) else make_url(url)).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: URL) -> Engine:
    """An engine for ``url`` (from :func:`resolve_url`) with the store's connection settings."""
    if url.get_backend_name() == "sqlite":
        memory = url.database in (None, "", ":memory:")
        engine = sa.create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
            poolclass=StaticPool if memory else None,
        )
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, pool_pre_ping=True)


def _sqlite_connect(dbapi_connection, _record) -> None:
    # The driver's own transaction handling is off (it would not begin before DDL, and would
    # begin DEFERRED): SQLAlchemy's "begin" event emits BEGIN itself (_sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor) -> None:
    # Switching a file to WAL takes an exclusive lock, and SQLite answers SQLITE_BUSY at once,
    # without its busy handler, while another connection holds any lock (several processes
    # opening one fresh store; CI saw it under pytest-xdist). The mode is stored in the file, so
    # the switch succeeds once the others let go: retry it within the busy timeout.
    deadline, delay = time.monotonic() + BUSY_TIMEOUT_S, 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.25)


def _sqlite_begin(connection: Connection) -> None:
    # A writer takes the write lock when it begins, so that two writers queue on the busy timeout
    # instead of both reading first and one failing when it upgrades its lock (SQLITE_BUSY).
    immediate = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def write_connection(engine: Engine) -> Connection:
    """A connection whose transactions write: on SQLite they take the write lock at BEGIN."""
    return engine.connect().execution_options(**{_WRITE: True})


def driver_message(error: BaseException) -> str:
    """The driver's message of a database error on one line, without SQLAlchemy's wrapping."""
    orig = getattr(error, "orig", None) or error
    text = " ".join(line.strip() for line in str(orig).strip().splitlines() if line.strip())
    return text or type(orig).__name__


__all__ = ["DEFAULT_PATH", "StoreError", "URL_FORMS", "driver_message", "is_sqlite", "make_engine", "mask", "resolve_url",
           "write_connection"]
