#!/usr/bin/env python
"""Print one stored bench run as the markdown table of docs/benchmarking.md: per bucket, every
artifact's model-only and end-to-end medians (with the median's 95 % interval), p90, load time,
int8's speed-up over its fp32 twin in the same run, and the MediaPipe peer's row.

    .venv/bin/python scripts/benchmark_table.py RUN_ID [--store URL]
"""

from __future__ import annotations

import argparse
import sys

from backdrop.bench.stats import summarize
from backdrop.results import open_store


def _cell(samples) -> str:
    if not samples:
        return "-"
    s = summarize(samples)
    return f"{s.p50:.2f} [{s.median_ci_low:.2f}, {s.median_ci_high:.2f}]"


def table(doc: dict) -> str:
    run, dev = doc["run"], doc["run"]["device"]
    lines = [
        f"Run `{run['started_at'][:19]}Z` on **{dev['name']}** ({dev['tier']}; {dev['cpu']}; {dev['os']})"
        + (" — EMULATED: functional timings, not latency" if dev["emulated"] else "")
        + f", protocol {run['protocol']['name']} ({run['protocol']['rounds']} rounds, >= {run['protocol']['min_frames']} frames"
        f" and >= {run['protocol']['min_seconds']} s per artifact), commit `{(run['git_commit'] or '-')[:12]}`.",
        "",
        "| bucket | artifact | model p50 ms [95% CI] | e2e p50 ms [95% CI] | e2e p90 | load ms | int8 e2e speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    by_key = {r["artifact"]["key"]: r for r in doc["results"]}
    for r in doc["results"]:
        a = r["artifact"]
        speedup = ""
        if a["precision"] == "int8":
            twin = by_key.get(a["key"].replace("-int8-", "-fp32-"))
            if twin and twin["e2e_ms"] and r["e2e_ms"]:
                speedup = f"{summarize(twin['e2e_ms']).p50 / summarize(r['e2e_ms']).p50:.2f}x"
        name = a["key"].split("/", 1)[1] + (" (peer)" if a["peer"] else "")
        p90 = f"{summarize(r['e2e_ms']).p90:.2f}" if r["e2e_ms"] else "-"
        lines.append(f"| {a['bucket']} | {name} | {_cell(r['model_ms'])} | {_cell(r['e2e_ms'])} | {p90} | "
                     f"{summarize(r['load_ms']).p50:.0f} | {speedup} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--store", default=None)
    args = parser.parse_args(argv)
    with open_store(args.store) as db:
        print(table(db.document(db.resolve(args.run))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
