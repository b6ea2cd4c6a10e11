#!/usr/bin/env python
"""Check that a built dashboard shows what it must (CI, after `make dashboard`).

Usage: python scripts/check_site.py SITE --tier TIER [--tier TIER ...] [--parity TIER=STATUS ...]

Reads SITE/site.json (what the pages show) and fails (exit 1, saying what is missing) unless
every --tier has a card with a measured p50 for at least one bucket, and every --parity tier
has that parity status (verified, failed, not run). Prints each tier's cards.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("--tier", action="append", default=[], required=True)
    parser.add_argument("--parity", action="append", default=[], metavar="TIER=STATUS")
    args = parser.parse_args()
    path = args.site / "site.json"
    if not path.is_file():
        print(f"error: {path} does not exist: build the site first (make dashboard).", file=sys.stderr)
        return 2
    tiers = {t["tier"]: t for t in json.loads(path.read_text())["tiers"]}
    problems = []
    for name in args.tier:
        tier = tiers.get(name)
        if tier is None:
            problems.append(f"no {name} tier (tiers: {', '.join(tiers) or 'none'})")
            continue
        measured = [c for c in tier["latest"] if (c["e2e_p50_ms"] or c["model_p50_ms"] or 0) > 0]
        if not measured:
            problems.append(f"the {name} card has no measured latency")
        for c in tier["latest"]:
            print(f"{name}: {c['bucket']}: {c['artifact']} p50 e2e {c['e2e_p50_ms']} ms, model {c['model_p50_ms']} ms, "
                  f"peer {c['peer_e2e_p50_ms']} ms; parity {tier['parity']}")
    for item in args.parity:
        name, _, status = item.partition("=")
        got = tiers.get(name, {}).get("parity")
        if got != status:
            problems.append(f"the {name} tier's parity is {got!r}, not {status!r}")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
