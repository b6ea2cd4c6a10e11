"""The results store's schema revisions (Alembic, configured here in code: no alembic.ini).

:func:`ensure_schema` brings a store to this code's head revision when it is opened (creating
the schema in an empty database) and refuses one whose revision this code does not know (a
newer backdrop wrote it). A new revision for developers::

    python -m backdrop.results.migrations new "what changed" [--autogenerate]

writes backdrop/results/migrations/versions/NNNN_what_changed.py (with ``--autogenerate``, the
difference between backdrop/results/tables.py and the schema at head, to review and edit).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from backdrop import __version__
from backdrop.results.engine import StoreError, driver_message, make_engine, resolve_url, write_connection

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""The folder with env.py, script.py.mako and versions/."""

ATTEMPTS = 3
"""Tries at bringing the schema to head: another process may be creating it at the same moment
(on PostgreSQL the loser's CREATE fails once the winner commits; the next try finds it done)."""


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for the store's migrations; with ``connection``, env.py runs the
    migrations on it, inside its transaction."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    return [s.revision for s in reversed(list(script_directory().walk_revisions("base", "heads")))]


def head_revision() -> str:
    """This code's newest revision."""
    return script_directory().get_current_head()


def current_revision(connection: sa.Connection) -> str | None:
    """The revision a database is at; None for one without the store's schema."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: sa.Connection, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` on ``connection`` (inside its transaction)."""
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: sa.Connection, revision: str) -> None:
    """Run the migrations down to ``revision`` ("base": no schema) on ``connection``."""
    command.downgrade(alembic_config(connection), revision)


def ensure_schema(engine: sa.Engine, shown_url: str) -> str:
    """Bring the store behind ``engine`` to the head revision; return it.

    Raises:
        StoreError: the store is at a revision this code does not know (newer), or the
            migrations fail (the message has the database's reason).
    """
    head, known = head_revision(), set(revisions())
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with write_connection(engine) as connection, connection.begin():
                current = current_revision(connection)
                if current is not None and current not in known:
                    raise StoreError(
                        f"the results store {shown_url} has schema revision {current}, which this backdrop "
                        f"({__version__}, schema revisions up to {head}) does not know: a newer backdrop wrote it. "
                        "Upgrade backdrop to use this store, or open another one."
                    )
                if current != head:
                    upgrade(connection, "head")
            return head
        except (sa.exc.DBAPIError, CommandError) as e:
            if attempt == ATTEMPTS:
                why = driver_message(e) if isinstance(e, sa.exc.DBAPIError) else str(e)
                raise StoreError(
                    f"cannot bring the results store {shown_url} to schema revision {head}: {why}. Nothing was changed; "
                    "check that the database is backdrop's (or empty) and that its user may create tables."
                ) from e
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _next_revision_id() -> str:
    numbers = [int(r) for r in revisions() if r.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(message: str, autogenerate: bool = False) -> Path:
    """Write a new revision after head (see the module docstring); return its file."""
    rev_id = _next_revision_id()
    if not autogenerate:
        script = command.revision(alembic_config(), message, rev_id=rev_id)
        return Path(script.path)
    with tempfile.TemporaryDirectory(prefix="backdrop-migrate-") as tmp:
        engine = make_engine(resolve_url(Path(tmp) / "head.db"))
        try:
            with write_connection(engine) as connection, connection.begin():
                upgrade(connection, "head")
                script = command.revision(alembic_config(connection), message, rev_id=rev_id, autogenerate=True)
        finally:
            engine.dispose()
    return Path(script.path)


def main(argv: list[str] | None = None) -> None:
    """``python -m backdrop.results.migrations``: new revisions, and the list of them."""
    parser = argparse.ArgumentParser(prog="python -m backdrop.results.migrations", description="The store's schema revisions.")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="write a new revision after head")
    new.add_argument("message")
    new.add_argument("--autogenerate", action="store_true", help="fill it with the difference between tables.py and head")
    sub.add_parser("revisions", help="print the revisions, oldest first")
    args = parser.parse_args(argv)
    if args.command == "new":
        print(new_revision(args.message, args.autogenerate))
    else:
        print("\n".join(revisions()))


__all__ = ["MIGRATIONS", "alembic_config", "current_revision", "downgrade", "ensure_schema", "head_revision", "main",
           "new_revision", "revisions", "script_directory", "upgrade"]
