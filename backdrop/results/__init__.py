"""The results store: benchmark runs (``backdrop bench`` results documents) in an SQLite file
or a PostgreSQL database, one schema over both (SQLAlchemy), migrated by Alembic on open.

    with open_store("results/backdrop.db") as store:      # or postgresql://user@host/db
        outcome = store.import_file("bench.json")         # WriteOutcome(run_id, added, results)
        runs = store.runs(tier="host-x86_64", limit=10)   # newest first
        results = store.results(runs[0].run_id[:8])       # per artifact: stats and raw samples
"""

from backdrop.results.engine import DEFAULT_PATH, URL_FORMS, StoreError
from backdrop.results.store import MIN_PREFIX, RunSummary, Store, StoredResult, WriteOutcome, open_store

__all__ = ["DEFAULT_PATH", "MIN_PREFIX", "URL_FORMS", "RunSummary", "Store", "StoreError", "StoredResult", "WriteOutcome",
           "open_store"]
