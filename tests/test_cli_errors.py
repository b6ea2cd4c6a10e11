"""Output paths that cannot be written end in one typed line, checked before any work starts.

`backdrop predict --out /proc/x.npz` used to load the model, run every frame and then die in a
FileNotFoundError traceback. Now each command checks its outputs first
(backdrop.core.fsutil.check_writable) and the CLI prints the error as one line plus the
BACKDROP_DEBUG hint, exit status 2, like every other bad input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backdrop.core.errors import BackdropError, ConfigError, OutputPathError
from backdrop.core.fsutil import check_writable
from backdrop.orchestration import cli

HINT = "(set BACKDROP_DEBUG=1 for the traceback)"
FIX = "Pass a path in a folder you can write to."
PROC = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")


@pytest.fixture
def no_work(monkeypatch):
    """Make the expensive part of predict and eval fail loudly if it is reached."""
    import backdrop.orchestration.evaluate as evaluate_mod
    import backdrop.orchestration.predict as predict_mod

    def started(*args, **kwargs):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(predict_mod, "load_checkpoint", started)
    monkeypatch.setattr(evaluate_mod, "_pair_videos", started)


def _main(monkeypatch, capsys, *args):
    """Run the real entry point (cli.main) in-process: (exit status, stderr lines)."""
    monkeypatch.delenv("BACKDROP_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["backdrop", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code, capsys.readouterr().err.splitlines()


def _predict(monkeypatch, capsys, tmp_path, *args):
    return _main(monkeypatch, capsys, "predict", "--input", str(tmp_path), *args)


def _eval(monkeypatch, capsys, tmp_path, *args):
    return _main(monkeypatch, capsys, "eval", "-p", str(tmp_path / "p.npz"), "-l", str(tmp_path / "l.npz"), *args)


def _file(tmp_path) -> Path:
    f = tmp_path / "notes.txt"
    f.write_text("a file, not a folder\n")
    return f


@PROC
def test_predict_out_in_proc(monkeypatch, capsys, tmp_path, no_work):
    code, err = _predict(monkeypatch, capsys, tmp_path, "--out", "/proc/x.npz")
    assert code == 2
    assert err == [
        f"error: Cannot write --out /proc/x.npz: files cannot be created in /proc (No such file or directory). {FIX}",
        HINT,
    ]


def test_predict_out_is_a_folder(monkeypatch, capsys, tmp_path, no_work):
    code, err = _predict(monkeypatch, capsys, tmp_path, "--out", str(tmp_path))
    assert code == 2
    assert err == [
        f"error: Cannot write --out {tmp_path}: it is a folder, and --out names a file. "
        f"Pass a file path, e.g. --out {tmp_path / 'masks.npz'}.",
        HINT,
    ]


def test_predict_out_under_a_file(monkeypatch, capsys, tmp_path, no_work):
    f = _file(tmp_path)
    out = f / "sub" / "masks.npz"  # its parents can never be created
    code, err = _predict(monkeypatch, capsys, tmp_path, "--out", str(out))
    assert code == 2
    assert err == [f"error: Cannot write --out {out}: {f} is a file, not a folder. {FIX}", HINT]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only folder")
def test_predict_out_in_a_read_only_folder(monkeypatch, capsys, tmp_path, no_work):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, err = _predict(monkeypatch, capsys, tmp_path, "--out", str(ro / "new" / "masks.npz"))
    finally:
        ro.chmod(0o755)
    assert code == 2
    assert err == [
        f"error: Cannot write --out {ro / 'new' / 'masks.npz'}: files cannot be created in {ro} (Permission denied). {FIX}",
        HINT,
    ]


@PROC
def test_predict_overlay_in_proc(monkeypatch, capsys, tmp_path, no_work):
    code, err = _predict(monkeypatch, capsys, tmp_path, "--out", str(tmp_path / "m.npz"), "--overlay", "/proc/sheet.png")
    assert code == 2
    assert err == [
        f"error: Cannot write --overlay /proc/sheet.png: files cannot be created in /proc (No such file or directory). {FIX}",
        HINT,
    ]


def test_predict_overlay_is_a_folder(monkeypatch, capsys, tmp_path, no_work):
    code, err = _predict(monkeypatch, capsys, tmp_path, "--out", str(tmp_path / "m.npz"), "--overlay", str(tmp_path))
    assert code == 2
    assert err == [
        f"error: Cannot write --overlay {tmp_path}: it is a folder, and --overlay names a file. "
        f"Pass a file path, e.g. --overlay {tmp_path / 'overlay.png'}.",
        HINT,
    ]


def test_predict_overlay_not_an_image_format(monkeypatch, capsys, tmp_path, no_work):
    sheet = tmp_path / "sheet.foo"
    code, err = _predict(monkeypatch, capsys, tmp_path, "--out", str(tmp_path / "m.npz"), "--overlay", str(sheet))
    assert code == 2
    assert err == [
        f"error: Cannot write --overlay {sheet}: .foo is not an image format OpenCV can write. "
        f"Use a .png path, e.g. --overlay {tmp_path / 'sheet.png'}.",
        HINT,
    ]


@PROC
def test_eval_out_in_proc(monkeypatch, capsys, tmp_path, no_work):
    code, err = _eval(monkeypatch, capsys, tmp_path, "--out", "/proc/eval")
    assert code == 2
    assert err == [
        f"error: Cannot write --out /proc/eval: files cannot be created in /proc (No such file or directory). {FIX}",
        HINT,
    ]


def test_eval_out_under_a_file(monkeypatch, capsys, tmp_path, no_work):
    f = _file(tmp_path)
    code, err = _eval(monkeypatch, capsys, tmp_path, "--out", str(f / "eval"))
    assert code == 2
    assert err == [f"error: Cannot write --out {f / 'eval'}: {f} is a file, not a folder. {FIX}", HINT]


@PROC
def test_debug_shows_the_typed_error(monkeypatch, tmp_path, no_work):
    monkeypatch.setenv("BACKDROP_DEBUG", "1")
    monkeypatch.setattr(sys, "argv", ["backdrop", "predict", "-i", str(tmp_path), "--out", "/proc/x.npz"])
    with pytest.raises(OutputPathError, match=r"^Cannot write --out /proc/x\.npz: "):
        cli.main()


@PROC
def test_predict_out_in_proc_end_to_end(tmp_path):
    """The reported case, as a user runs it: a real process, nothing mocked."""
    env = {k: v for k, v in os.environ.items() if k != "BACKDROP_DEBUG"}
    r = subprocess.run(
        [sys.executable, "-m", "backdrop.orchestration.cli", "predict", "-i", str(tmp_path), "--out", "/proc/x.npz"],
        capture_output=True, text=True, env=env,
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"error: Cannot write --out /proc/x.npz: files cannot be created in /proc (No such file or directory). {FIX}",
        HINT,
    ]
    assert r.stdout == ""


# --- check_writable itself -------------------------------------------------------------------


def test_check_writable_accepts_missing_parents_and_creates_nothing(tmp_path):
    out = tmp_path / "a" / "b" / "masks.npz"
    assert check_writable(str(out), "--out") == out
    assert check_writable(tmp_path / "new-folder", "--out", folder=True) == tmp_path / "new-folder"
    assert check_writable(tmp_path, "--out", folder=True) == tmp_path
    existing = _file(tmp_path)
    assert check_writable(existing, "--out") == existing  # replaced atomically later
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no probe file, no folders


def test_check_writable_folder_that_is_a_file(tmp_path):
    f = _file(tmp_path)
    with pytest.raises(OutputPathError) as e:
        check_writable(f, "--out", folder=True)
    assert str(e.value) == (
        f"Cannot write --out {f}: it is a file, and --out names a folder (created if missing). Pass a folder path."
    )


def test_output_path_error_is_a_typed_config_error():
    assert issubclass(OutputPathError, ConfigError) and issubclass(OutputPathError, BackdropError)
