#!/usr/bin/env python
"""Check that one run reads back the same from two results stores (e.g. the SQLite file and a
PostgreSQL server it was imported into): the document, every result row, every metric's
statistics and raw samples. Exit 1 naming the first difference.

    .venv/bin/python scripts/same_run_in_stores.py STORE_A STORE_B RUN_ID
"""

from __future__ import annotations

import sys

from backdrop.results import open_store


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    url_a, url_b, ref = argv
    with open_store(url_a) as a, open_store(url_b) as b:
        run = a.resolve(ref)
        if a.document(run) != b.document(run):
            print(f"run {run[:12]}: the documents differ between {a.url} and {b.url}", file=sys.stderr)
            return 1
        rows_a, rows_b = a.results(run), b.results(run)
        if len(rows_a) != len(rows_b):
            print(f"run {run[:12]}: {len(rows_a)} results in {a.url}, {len(rows_b)} in {b.url}", file=sys.stderr)
            return 1
        for ra, rb in zip(rows_a, rows_b):
            if ra != rb:
                print(f"run {run[:12]}: result {ra.key} differs between {a.url} and {b.url}", file=sys.stderr)
                return 1
        print(f"run {run[:12]}: the same {len(rows_a)} results (statistics and samples) in {a.url} and {b.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
