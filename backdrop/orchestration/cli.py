"""The ``backdrop`` command line. This module only wires commands; each lives in
backdrop/orchestration/commands/ and calls the library."""

from __future__ import annotations

import os
import sys

import typer

from backdrop.core.errors import BackdropError
from backdrop.orchestration.commands import results as results_commands
from backdrop.orchestration.commands.bench import bench_command
from backdrop.orchestration.commands.bundle import bundle_command
from backdrop.orchestration.commands.conformance import conformance_command
from backdrop.orchestration.commands.core import buckets_command, models_command, new_checkpoint_command, predict_command
from backdrop.orchestration.commands.dashboard import dashboard_command
from backdrop.orchestration.commands.devices import devices_command
from backdrop.orchestration.commands.eval import eval_command
from backdrop.orchestration.commands.export import export_command
from backdrop.orchestration.commands.options import RegistryHelpCommand, reflow_help
from backdrop.orchestration.commands.parity import parity_command
from backdrop.orchestration.commands.train import data_command, labels_command, train_command

app = typer.Typer(
    name="backdrop",
    help=(
        "Ship real-time person-segmentation models to phones: predict with the float reference, "
        "evaluate masks, train, export per-bucket artifacts, benchmark them on devices. Run `backdrop COMMAND --help` for each."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# name -> command, in the order `backdrop --help` lists them. Each docstring is reflowed
# (reflow_help) so the help formatter wraps its paragraphs to the terminal, not to the source.
COMMANDS = {
    "predict": predict_command,
    "models": models_command,
    "buckets": buckets_command,
    "new-checkpoint": new_checkpoint_command,
    "eval": eval_command,
    "export": export_command,
    "parity": parity_command,
    "conformance": conformance_command,
    "bundle": bundle_command,
    "devices": devices_command,
    "bench": bench_command,
    "dashboard": dashboard_command,
    "data": data_command,
    "labels": labels_command,
    "train": train_command,
}
for _name, _command in COMMANDS.items():
    app.command(_name, help=reflow_help(_command.__doc__), cls=RegistryHelpCommand)(_command)
app.add_typer(results_commands.app, name="results")


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
