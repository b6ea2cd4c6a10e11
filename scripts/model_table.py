#!/usr/bin/env python3
"""Regenerate the variant table in docs/models.md (parameters and MACs at 144x256).

MACs are measured with torch.utils.flop_counter (FLOPs / 2) on one forward pass of a
(1, 4, 144, 256) input. Run `python scripts/model_table.py` after changing a variant;
`--check` exits 1 when the committed table is stale (the test suite runs it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "models.md"
BEGIN = "<!-- BEGIN GENERATED: scripts/model_table.py -->"
END = "<!-- END GENERATED -->"


def table() -> str:
    from backdrop.models.profile import profile_variants

    rows = [
        "| variant | encoder | output stride | parameters | fp32 size (MB) | MMACs @ 144x256 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for p in profile_variants((144, 256)):
        rows.append(
            f"| `{p.variant}` | {p.encoder} | {p.output_stride} | {p.params:,} | "
            f"{p.params * 4 / 2**20:.1f} | {p.macs / 1e6:.1f} |"
        )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if docs/models.md is stale instead of writing it")
    args = ap.parse_args()
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{table()}\n{END}{tail}"
    if args.check:
        if new != text:
            print(f"{DOC} is stale: run `python scripts/model_table.py`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
