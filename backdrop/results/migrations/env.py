"""Alembic's environment for the results store.

:mod:`backdrop.results.migrate` runs it with a connection already inside a transaction
(``config.attributes["connection"]``): the migration commits or rolls back with that
transaction, and on SQLite that transaction holds the write lock, so two processes opening a
fresh store do not both create it. Without a connection (the ``alembic`` command line with a
``sqlalchemy.url``) it opens one itself through backdrop's engine settings; ``--sql`` prints
the SQL instead.
"""

from __future__ import annotations

from alembic import context

from backdrop.results.engine import make_engine, resolve_url, write_connection
from backdrop.results.tables import metadata

config = context.config


def _configure(**kwargs) -> None:
    context.configure(target_metadata=metadata, render_as_batch=True, compare_type=True, **kwargs)


def run_offline() -> None:
    _configure(url=resolve_url(config.get_main_option("sqlalchemy.url")), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(resolve_url(config.get_main_option("sqlalchemy.url")))
    try:
        with write_connection(engine) as connection, connection.begin():
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
