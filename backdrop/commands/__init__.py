"""CLI commands, one module each; backdrop/cli.py only wires them into the typer app."""
