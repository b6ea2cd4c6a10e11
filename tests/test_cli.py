"""The CLI a newcomer meets: help texts, one-line errors, the commands end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from backdrop.orchestration.cli import COMMANDS, app
from backdrop.orchestration.commands.options import reflow_help

runner = CliRunner()


def _run(*args):
    return subprocess.run([sys.executable, "-m", "backdrop.orchestration.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("command", [[], ["predict"], ["models"], ["buckets"], ["new-checkpoint"], ["eval"]])
def test_help_exists_for_every_command(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


# --- help text is wrapped by the formatter at the terminal width, never at the source's -------
#
# A line of a help paragraph is broken early when the first word of the line after it would
# have fitted on it: the formatter wraps greedily, so that only happens where a newline came in
# from the source. Lines that start a line of their own on purpose are exempt.

REGISTERED = sorted(typer.main.get_command(app).commands)
OWN_LINE = re.compile(r"(Examples?\b[^:]*:|[-*] |\d+[.)] )")


@pytest.fixture(autouse=True)
def _width_from_columns(monkeypatch):
    """typer reads TERMINAL_WIDTH once, at import; let COLUMNS decide in these tests."""
    monkeypatch.setattr("typer.rich_utils.MAX_WIDTH", None)


def _help(args, width):
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(width), "TERMINAL_WIDTH": None})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) == width, "the help was not rendered at COLUMNS"
    return lines


def _early_breaks(rows, room):
    """(line, next line) pairs of ``rows`` (one paragraph or table cell, in order) where the next
    line's first word would have fitted in ``room`` columns."""
    bad = []
    for line, nxt in zip(rows, rows[1:], strict=False):
        if nxt and not OWN_LINE.match(nxt) and len(line) + 1 + len(nxt.split()[0]) <= room:
            bad.append((line, nxt))
    return bad


def _description_paragraphs(lines):
    """Paragraphs of the description: between the Usage line and the first panel, less rich's
    one-column padding."""
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:")) + 1
    end = next((i for i, line in enumerate(lines) if line.lstrip().startswith("╭")), len(lines))
    text = "\n".join(line[1:].rstrip() for line in lines[start:end]).strip("\n")
    return [p.splitlines() for p in re.split(r"\n\s*\n", text) if p.strip()]


def test_every_command_is_registered_with_help():
    from backdrop.orchestration.commands import results

    assert set(REGISTERED) == set(COMMANDS) | {"results"}
    for name, command in typer.main.get_command(app).commands.items():
        if name == "results":  # a group: each of its commands has its docstring as help
            assert command.help and set(command.commands) == {"import", "list", "show", "export", "compare"}
            for sub, subcommand in command.commands.items():
                assert subcommand.help == reflow_help(getattr(results, f"{sub}_command").__doc__), sub
            continue
        assert command.help and command.help == reflow_help(COMMANDS[name].__doc__), name


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("command", REGISTERED)
def test_help_paragraphs_are_wrapped_at_the_terminal_width(command, width):
    lines = _help([command], width)
    paragraphs = _description_paragraphs(lines)
    assert len(paragraphs) >= 1
    bad = [pair for p in paragraphs for pair in _early_breaks(p, width - 2)]
    assert not bad, f"`backdrop {command} --help` at {width} columns breaks lines early: {bad}"


@pytest.mark.parametrize("width", [80, 120])
def test_command_list_is_wrapped_at_the_terminal_width(width):
    lines = _help([], width)
    assert not [p for p in _description_paragraphs(lines) for pair in _early_breaks(p, width - 2)]
    start = next(i for i, line in enumerate(lines) if "Commands" in line and line.lstrip().startswith("╭"))
    cells: list[list[str]] = []  # each command's description cell, its lines in order
    column = None
    for line in lines[start + 1 :]:
        if line.lstrip().startswith("╰"):
            break
        inner = line.strip()[1:-1]  # inside the box's borders
        name = inner[1:].split(" ", 1)[0]
        if name:
            column = inner.index(inner[1 + len(name) :].lstrip(), 1 + len(name))
            cells.append([])
        cells[-1].append(inner[column:].rstrip())
    assert {c[0].split()[0] for c in cells}  # parsed something
    room = width - 2 - column - 1  # the box's borders, the name column, the cell's right padding
    bad = [pair for cell in cells for pair in _early_breaks(cell, room)]
    assert not bad, f"`backdrop --help` at {width} columns breaks command descriptions early: {bad}"


def test_no_option_help_has_a_hard_line_break():
    for name, command in typer.main.get_command(app).commands.items():
        for param in command.params:
            assert "\n" not in (getattr(param, "help", None) or ""), f"{name} {param.opts}"


def test_reflow_help_joins_paragraph_lines_and_keeps_structure():
    doc = """First line of the
        summary.

        A paragraph wrapped
        in the source.
        Example: backdrop x --y
        Examples (on a Mac):
        - an item wrapped
          onto two lines
        - another item
        1. numbered

            literal = 1
            kept = 2

        \b
        no
        rewrap
        \f
        hidden
        text
        """
    assert reflow_help(doc) == (
        "First line of the summary.\n\n"
        "A paragraph wrapped in the source.\nExample: backdrop x --y\nExamples (on a Mac):\n"
        "- an item wrapped onto two lines\n- another item\n1. numbered\n\n"
        "    literal = 1\n    kept = 2\n\n"
        "\b\nno\nrewrap\n\f\nhidden\ntext"
    )
    assert reflow_help(None) is None


def test_known_error_is_one_line_with_hint(tmp_path):
    r = _run("predict", "--checkpoint", str(tmp_path / "none.pt"), "--input", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.splitlines()[0].startswith("error: Checkpoint not found:")
    assert "BACKDROP_DEBUG=1" in r.stderr
    assert "Traceback" not in r.stderr


def test_predict_json_and_buckets(lite_checkpoint, carphone_path, tmp_path):
    out = tmp_path / "m.npz"
    args = ["-c", str(lite_checkpoint), "-i", str(carphone_path), "-o", str(out), "--max-frames", "2", "--format", "json"]
    result = runner.invoke(app, ["predict", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_frames"] == 2

    result = runner.invoke(app, ["buckets", "--frame", "1080x1920", "--format", "json"])
    assert json.loads(result.stdout)["bucket"] == "landscape_16x9"
    result = runner.invoke(app, ["buckets", "--buckets", "a=10x20"])
    assert result.stdout.startswith("a ")


def test_new_checkpoint_then_models(tmp_path):
    result = runner.invoke(app, ["new-checkpoint", "--variant", "lite", "--out", str(tmp_path / "l.pt")])
    assert result.exit_code == 0 and "untrained lite" in result.stdout
    r = _run("new-checkpoint", "--variant", "lit", "--out", str(tmp_path / "x.pt"))
    assert r.returncode == 2 and "Did you mean 'lite'?" in r.stderr
    result = runner.invoke(app, ["models", "--format", "json"])
    rows = json.loads(result.stdout)
    assert {r["variant"] for r in rows} >= {"fbnetv3_a", "fbnetv3_b", "fbnetv3_d", "fbnetv3_g", "lite"}


def test_option_help_lists_the_registries():
    from backdrop.device_tests import DEVICES
    from backdrop.export.targets import TARGETS

    def flat(args):  # the help as one line: box borders and wrapping removed
        out = CliRunner().invoke(app, args, env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"}).output
        return re.sub(r"[\s│]+", " ", out)

    export_help, parity_help = flat(["export", "--help"]), flat(["parity", "--help"])
    assert "{choices}" not in export_help + parity_help
    for name in TARGETS.names():
        assert f"{name} (" in export_help
    for name in DEVICES.names():
        assert f"{name} (" in parity_help and f"{name} (" in export_help


def test_cli_start_up_imports_no_runtime():
    """`backdrop --help` and every command's module load without torch or a runtime: the
    registries (which import them) are read only when a help text or a command needs them."""
    runtimes = "('torch', 'onnxruntime', 'executorch', 'coremltools')"
    code = f"import sys, backdrop.orchestration.cli; print(sorted(m for m in {runtimes} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
