"""The ``backdrop`` command line. This module only wires commands; each lives in
backdrop/commands/ and calls the library."""

from __future__ import annotations

import os
import sys

import typer

from backdrop.commands.core import buckets_command, models_command, new_checkpoint_command, predict_command
from backdrop.commands.eval import eval_command
from backdrop.commands.export import export_command
from backdrop.commands.parity import parity_command
from backdrop.commands.train import labels_command, train_command
from backdrop.errors import BackdropError

app = typer.Typer(
    name="backdrop",
    help=(
        "Ship real-time person-segmentation models to phones: predict with the float reference, "
        "evaluate masks, train, export per-bucket artifacts. Run `backdrop COMMAND --help` for each."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("predict")(predict_command)
app.command("models")(models_command)
app.command("buckets")(buckets_command)
app.command("new-checkpoint")(new_checkpoint_command)
app.command("eval")(eval_command)
app.command("export")(export_command)
app.command("parity")(parity_command)
app.command("labels")(labels_command)
app.command("train")(train_command)


def main() -> None:
    """Entry point: known errors print one line and a hint; BACKDROP_DEBUG=1 shows the traceback."""
    try:
        app()
    except BackdropError as e:
        if os.environ.get("BACKDROP_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        print("(set BACKDROP_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
