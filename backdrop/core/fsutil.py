"""File output: atomic writes (a failed or interrupted write leaves no half-written file behind)
and the up-front check that an output path can be written at all."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from backdrop.core.errors import OutputPathError

_FIX = "Pass a path in a folder you can write to."


def check_writable(path: str | os.PathLike, what: str, *, folder: bool = False, example: str | None = None) -> Path:
    """Check, before the expensive work starts, that ``path`` can be written later.

    Resolve-before-work for outputs: nothing is created. The nearest existing folder on the way
    to ``path`` must accept a new file (probed with a temporary file that is removed at once), so
    missing parents can be made later and :func:`atomic_write` can replace ``path``.

    Args:
        path: the output to be written: a file, or a folder when ``folder`` is True.
        what: how the user named it, e.g. ``"--out"``; it starts the message.
        folder: ``path`` is an output folder (created if missing) rather than a file.
        example: a file name to suggest when a file path is a folder, e.g. ``"masks.npz"``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputPathError: one line saying which path, why it cannot be written, and what to do.
    """
    path = Path(path)
    head = f"Cannot write {what} {path}"
    if folder and path.exists() and not path.is_dir():
        raise OutputPathError(f"{head}: it is a file, and {what} names a folder (created if missing). Pass a folder path.")
    if not folder and path.is_dir():
        hint = f"e.g. {what} {path / example}" if example else "inside it or elsewhere"
        raise OutputPathError(f"{head}: it is a folder, and {what} names a file. Pass a file path, {hint}.")
    start = path if folder else path.parent
    base = next((p for p in (start, *start.parents) if p.exists()), Path("."))
    if not base.is_dir():
        raise OutputPathError(f"{head}: {base} is a file, not a folder. {_FIX}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".backdrop-probe.", dir=base)
    except OSError as e:
        raise OutputPathError(f"{head}: files cannot be created in {base} ({e.strerror or e}). {_FIX}") from e
    os.close(fd)
    Path(probe).unlink(missing_ok=True)
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` (mode 0644).

    Usage::

        with atomic_write(path) as f:
            np.savez_compressed(f, **arrays)

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as f:
            yield f
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
