"""The results store: benchmark runs (``backdrop bench`` results documents) in an SQLite file
or a PostgreSQL database, one schema over both (SQLAlchemy), migrated by Alembic on open.

    with open_store("results/backdrop.db") as store:      # or postgresql://user@host/db
        outcome = store.import_file("bench.json")         # WriteOutcome(run_id, added, results)
        runs = store.runs(tier="host-x86_64", limit=10)   # newest first
        results = store.results(runs[0].run_id[:8])       # per artifact: stats and raw samples
        store.write_parity(parity_document(...))          # a `backdrop parity` check (backdrop/results/parity.py)
        checks = store.parity_runs(tier="phone-pixel8")   # newest first; store.parity_results(id) per artifact
"""

from backdrop.results.engine import DEFAULT_PATH, URL_FORMS, StoreError
from backdrop.results.parity import parity_document, validate_parity_document
from backdrop.results.store import (
    MIN_PREFIX,
    ParityRunSummary,
    RunSummary,
    Store,
    StoredParity,
    StoredResult,
    WriteOutcome,
    open_store,
)

__all__ = ["DEFAULT_PATH", "MIN_PREFIX", "URL_FORMS", "ParityRunSummary", "RunSummary", "Store", "StoreError", "StoredParity",
           "StoredResult", "WriteOutcome", "open_store", "parity_document", "validate_parity_document"]
