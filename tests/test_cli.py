"""The CLI a newcomer meets: help texts, one-line errors, the commands end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from backdrop.cli import app

runner = CliRunner()


def _run(*args):
    return subprocess.run([sys.executable, "-m", "backdrop.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("command", [[], ["predict"], ["models"], ["buckets"], ["new-checkpoint"], ["eval"]])
def test_help_exists_for_every_command(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_known_error_is_one_line_with_hint(tmp_path):
    r = _run("predict", "--checkpoint", str(tmp_path / "none.pt"), "--input", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.splitlines()[0].startswith("error: Checkpoint not found:")
    assert "BACKDROP_DEBUG=1" in r.stderr
    assert "Traceback" not in r.stderr


def test_predict_json_and_buckets(lite_checkpoint, carphone_path, tmp_path):
    out = tmp_path / "m.npz"
    result = runner.invoke(
        app, ["predict", "-c", str(lite_checkpoint), "-i", str(carphone_path), "-o", str(out), "--max-frames", "2", "--format", "json"]
    )
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
