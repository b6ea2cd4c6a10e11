#!/usr/bin/env python3
"""Regenerate the registry tables in the docs: formats (docs/formats.md), targets
(docs/export.md) and devices (docs/devices.md).

Every row comes from the registries (``FORMATS``, ``TARGETS``, ``DEVICES``), never from a list
written here, so a new format, target or device shows up once its module is registered. Each
table sits between ``<!-- BEGIN generated: NAME (scripts/registry_tables.py) -->`` and
``<!-- END generated: NAME -->``; the rest of the doc is left as it is.

The devices table asks each device, built here, whether it can run a stand-in artifact of every
artifact kind and state form, so it depends on the machine: it is written and checked only on
the reference platform (Linux x86_64, what CI runs); elsewhere it is skipped with a note.

Run `python scripts/registry_tables.py` (or `make docs-tables`) after adding a format, target or
device; `--check` exits 1 naming the stale doc(s) instead of writing (the test suite runs it).
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

DOCS = Path(__file__).resolve().parents[1] / "docs"
REFERENCE_PLATFORM = ("Linux", "x86_64")
"""(platform.system(), platform.machine()) the devices table is generated on."""


def begin_marker(name: str) -> str:
    return f"<!-- BEGIN generated: {name} (scripts/registry_tables.py) -->"


def end_marker(name: str) -> str:
    return f"<!-- END generated: {name} -->"


def _cell(text: str) -> str:
    """``text`` fit for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(items: Sequence[str]) -> str:
    return ", ".join(f"`{i}`" for i in items)


def formats_table() -> str:
    """One row per registered format: summary, artifact kinds, state forms, precisions."""
    from backdrop.export.formats import FORMATS

    rows = [
        "| format | summary | artifact kinds (suffix, runtime) | state forms | precisions |",
        "|---|---|---|---|---|",
    ]
    for name in FORMATS:
        fmt = FORMATS.get(name)
        kinds = "; ".join(f"`{k.name}` (`{k.suffix}`, `{k.runtime}`)" for k in fmt.kinds)
        rows.append(
            f"| `{name}` | {_cell(fmt.summary)} | {_cell(kinds)} | {_code(fmt.state_forms)} | {_code(fmt.precisions)} |"
        )
    return "\n".join(rows)


def _entries_text(entries) -> tuple[str, int]:
    """A target's entries as "`format` precision, precision (state forms) -> suffixes" groups,
    and the number of files they make per bucket."""
    from backdrop.export.formats import FORMATS

    groups: list[tuple[str, tuple[str, ...], list[str]]] = []
    files = 0
    for e in entries:
        kinds = FORMATS.get(e.format).kinds if e.format in FORMATS else ()
        files += len(e.state_forms) * max(len(kinds), 1)
        if groups and groups[-1][0] == e.format and groups[-1][1] == tuple(e.state_forms):
            groups[-1][2].append(e.precision)
        else:
            groups.append((e.format, tuple(e.state_forms), [e.precision]))
    parts = []
    for fmt, forms, precisions in groups:
        kinds = FORMATS.get(fmt).kinds if fmt in FORMATS else ()
        suffixes = f" -> {_code([k.suffix for k in kinds])}" if kinds else ""
        parts.append(f"`{fmt}` {', '.join(precisions)} ({', '.join(forms)}){suffixes}")
    return "; ".join(parts), files


def targets_table() -> str:
    """One row per registered target: platform, camera format, description, artifacts."""
    from backdrop.export.targets import TARGETS

    rows = [
        "| target | platform | camera format | description | "
        "artifacts: format precisions (state forms) -> files | files per bucket |",
        "|---|---|---|---|---|---:|",
    ]
    for name in TARGETS:
        t = TARGETS.get(name)
        artifacts, files = _entries_text(t.entries)
        rows.append(
            f"| `{name}` | {_cell(t.platform)} | {_cell(t.camera_format.upper())} | {_cell(t.description)} | "
            f"{_cell(artifacts)} | {files} |"
        )
    return "\n".join(rows)


def devices_table() -> str:
    """One row per (device, artifact kind): "yes" or the device's reason, as seen here."""
    from backdrop.device_tests import DEVICES
    from backdrop.device_tests.base import capabilities, device_summary
    from backdrop.export.formats import FORMATS

    rows = [
        "| device | summary | artifact kind (state forms) | runs it here |",
        "|---|---|---|---|",
    ]
    for name in DEVICES:
        cls = DEVICES.get(name)
        try:
            device = cls()
            built = ""
        except Exception as e:  # a device that needs arguments or hardware says why in the table
            device, built = None, f"not built here: {type(e).__name__}: {e}"
        answers = [(k, built) for f in FORMATS for k in FORMATS.get(f).kinds] if device is None else capabilities(device)
        for i, (kind, answer) in enumerate(answers):
            head = f"`{name}` | {_cell(device_summary(cls))}" if i == 0 else " | "
            rows.append(f"| {head} | `{kind.name}` (`{kind.suffix}`; {', '.join(kind.state_forms)}) | {_cell(answer)} |")
    system, machine = REFERENCE_PLATFORM
    rows.append("")
    rows.append(
        f"Generated on {system} {machine} (what CI runs), so the answers are that machine's: "
        "`coreml-mac` runs on macOS (where `host` runs Core ML packages too)."
    )
    return "\n".join(rows)


class Table(NamedTuple):
    """One generated table: its marker name, its doc (under docs/), its generator."""

    name: str
    doc: str
    make: Callable[[], str]
    platform_bound: bool = False


TABLES = (
    Table("formats", "formats.md", formats_table),
    Table("targets", "export.md", targets_table),
    Table("devices", "devices.md", devices_table, platform_bound=True),
)


def on_reference_platform() -> bool:
    return (platform.system(), platform.machine()) == REFERENCE_PLATFORM


def replace_block(text: str, name: str, body: str, doc: Path) -> str:
    """``text`` with the block between ``name``'s markers replaced by ``body``.

    Raises:
        SystemExit: a marker is missing (the message says which and where).
    """
    begin, end = begin_marker(name), end_marker(name)
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"{doc}: needs exactly one {begin!r} followed by one {end!r}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def main(argv: Sequence[str] | None = None, docs: Path = DOCS) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 naming the stale doc(s) instead of writing them")
    args = ap.parse_args(argv)
    here = f"{platform.system()} {platform.machine()}"
    stale = []
    for table in TABLES:
        path = docs / table.doc
        if table.platform_bound and not on_reference_platform():
            print(f"skipped the {table.name} table in {path}: it is generated on "
                  f"{' '.join(REFERENCE_PLATFORM)}, this is {here}", file=sys.stderr)
            continue
        text = path.read_text()
        new = replace_block(text, table.name, table.make(), path)
        if new == text:
            continue
        if args.check:
            stale.append(f"{path} is stale: the {table.name} table differs from the registry")
        else:
            path.write_text(new)
            print(f"wrote the {table.name} table in {path}")
    if stale:
        print("\n".join(stale) + "\nrun `python scripts/registry_tables.py` (make docs-tables)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
