"""Option aliases shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
        "--checkpoint", "-c", help="Checkpoint file (config + weights), as `backdrop train` writes. Default: the bundled model.", dir_okay=False
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option("--format", help="Output format: text for people, json for machines.", case_sensitive=False),
]


def check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in ("text", "json"):
        raise typer.BadParameter(f"--format must be text or json, got {fmt!r}")
    return fmt
