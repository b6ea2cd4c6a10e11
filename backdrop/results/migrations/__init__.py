"""The results store's Alembic migrations: env.py (run by :mod:`backdrop.results.migrate`, no
alembic.ini), script.py.mako (the template of a new revision) and versions/ (one module per
revision, numbered 0001, 0002, ...)."""
