"""Option aliases and help-text helpers shared by several commands, defined once."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

BucketsOpt = Annotated[
    str | None,
    typer.Option(
        "--buckets",
        help="Bucket set: a JSON file, or 'name=HxW,name=HxW' (height x width). Default: the built-in five.",
        show_default=False,
    ),
]
CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        "-c",
        help="Checkpoint file (config + weights), as `backdrop train` writes. Default: the bundled model.",
        dir_okay=False,
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option("--format", help="Output format: text for people, json for machines.", case_sensitive=False),
]


def text_table(rows: list[tuple[str, ...]], numbers_right: bool = False, rule: bool = False) -> list[str]:
    """``rows`` (the first is the header) as aligned lines, columns two spaces apart: every column
    left-aligned, or with ``numbers_right`` all but the first right-aligned; ``rule`` puts a line
    of dashes under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        cells = (c.rjust(w) if numbers_right and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        lines.append("  ".join(cells).rstrip())
        if rule and k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in ("text", "json"):
        raise typer.BadParameter(f"--format must be text or json, got {fmt!r}")
    return fmt


# Lines that keep a line of their own in help text: an example, or a list item. An indented line
# continues the list item above it, or else is literal (kept as it is, never joined).
_EXAMPLE = re.compile(r"Examples?\b[^:]*:")
_ITEM = re.compile(r"([-*]|\d+[.)]) ")


def reflow_help(doc: str | None) -> str | None:
    """A command docstring as help text that the formatter can wrap to the terminal.

    Docstrings are hard-wrapped at ~95 columns in the source; typer's rich formatter keeps those
    newlines and wraps again at the terminal width, breaking lines mid-sentence. This joins the
    lines of each paragraph into one and keeps: blank-line paragraph breaks; lines that start
    with ``Example:`` (also ``Examples:``, ``Example (on a Mac):``); list items (``- ``, ``* ``,
    ``1. ``), each joined with its continuation lines; other indented lines, verbatim; paragraphs
    that start with click's ``\\b`` (no-rewrap) marker, verbatim; and everything from a ``\\f``
    line on (hidden from help), verbatim.
    """
    if doc is None:
        return None
    text, cut, hidden = inspect.cleandoc(doc).partition("\f")
    paragraphs = []
    for para in re.split(r"\n[ \t]*\n", text.strip("\n")):
        if para.startswith("\b"):
            paragraphs.append(para)
            continue
        lines: list[str] = []
        kind = ""  # of lines[-1]: "text", "item", "example" or "literal"
        for line in para.splitlines():
            indented = line[:1].isspace()
            if _ITEM.match(line):
                lines.append(line.rstrip())
                kind = "item"
            elif _EXAMPLE.match(line):
                lines.append(line.rstrip())
                kind = "example"
            elif indented and kind != "item":
                lines.append(line.rstrip())
                kind = "literal"
            elif lines and kind in ("text", "item"):
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line.strip())
                kind = "text"
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs) + (f"\n{cut}{hidden}" if cut else "")


def device_choices_help() -> str:
    """``--device`` help listing the registered devices (from the registry, not by hand)."""
    from backdrop.device_tests import DEVICES
    from backdrop.device_tests.base import device_summary

    return "Where to run: " + "; ".join(f"{n} ({device_summary(DEVICES.get(n)).rstrip('.')})" for n in DEVICES.names()) + "."


def target_choices_help() -> str:
    """``--target`` help listing the registered targets (from the registry, not by hand)."""
    from backdrop.export.targets import TARGETS

    return "The deployment target: " + "; ".join(f"{n} ({TARGETS.get(n).description})" for n in TARGETS.names()) + "."


def impl_choices_help() -> str:
    """``--impl`` help listing the registered preprocessing implementations (``backdrop conformance``)."""
    from backdrop.device_tests.conformance import implementation_summaries

    return "The implementation to check: " + "; ".join(f"{n} ({s})" for n, s in implementation_summaries().items()) + "."


REGISTRY_HELP = {"target": target_choices_help, "device": device_choices_help, "impl": impl_choices_help}
"""Options whose help lists a registry's entries. The registries import the runtimes (seconds),
so the list is filled in only when help is shown (:class:`RegistryHelpCommand`), never at
start-up."""


class RegistryHelpCommand(TyperCommand):
    """A command whose ``--target`` / ``--device`` help lists the registries when shown."""

    def format_help(self, ctx, formatter) -> None:
        for param in self.params:
            if param.name in REGISTRY_HELP and "{choices}" in (getattr(param, "help", None) or ""):
                lead = (param.help or "").split("{choices}")[0]
                param.help = lead + REGISTRY_HELP[param.name]()
        super().format_help(ctx, formatter)
