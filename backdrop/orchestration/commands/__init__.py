"""CLI commands, one module each; backdrop/orchestration/cli.py only wires them into the typer app."""
