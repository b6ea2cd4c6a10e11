"""Single-file checkpoints: architecture config + weights (+ free-form metadata).

A checkpoint is a ``torch.save`` archive of plain data::

    {"backdrop_checkpoint": 1,            # format version
     "config": SegmenterConfig.to_dict(), # the architecture, so nothing else is needed
     "state_dict": {name: tensor},        # float weights and BatchNorm buffers
     "meta": {...}}                       # e.g. training config, data, metrics

Loading uses ``torch.load(weights_only=True)``: no pickled code is ever executed.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from backdrop.core.errors import CheckpointError, ConfigError
from backdrop.core.fsutil import atomic_write, file_sha256
from backdrop.models.segmenter import Segmenter, SegmenterConfig

CHECKPOINT_VERSION = 1
_KEY = "backdrop_checkpoint"
DEFAULT_CHECKPOINT_NAME = "default_model.pt"


def default_checkpoint_path() -> Path:
    """The bundled default model (backdrop/data/default_model.pt; see docs/model-card.md)."""
    from importlib import resources

    path = Path(str(resources.files("backdrop").joinpath("data", DEFAULT_CHECKPOINT_NAME)))
    if not path.is_file():
        raise CheckpointError(
            f"The bundled default model is missing ({path}). Reinstall backdrop, or pass --checkpoint."
        )
    return path


@dataclass
class Checkpoint:
    """A loaded checkpoint: the built model (eval mode, float32) and where it came from."""

    model: Segmenter
    config: SegmenterConfig
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    sha256: str = ""


def save_checkpoint(model: Segmenter, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write ``model`` (config + weights + ``meta``) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        _KEY: CHECKPOINT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def _read(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"Checkpoint not found: {path}. Check the path, or omit --checkpoint to use the default.")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint path {path} is a directory, not a file.")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise CheckpointError(
            f"{path} is not a backdrop checkpoint: not a torch.save archive "
            f"(starts with {magic!r}). Checkpoints are written by `backdrop train` or save_checkpoint()."
        )
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is truncated or corrupt: the archive has no central directory "
            f"({path.stat().st_size} bytes). Copy the file again."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError/UnpicklingError/EOFError for damaged data
        raise CheckpointError(f"{path} is truncated or corrupt and could not be read: {e}") from e
    if not isinstance(obj, dict) or _KEY not in obj:
        what = "a bare state_dict" if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path} is a torch file but not a backdrop checkpoint (it holds {what}, "
            f"without the '{_KEY}' marker, config and state_dict). Wrap weights with save_checkpoint()."
        )
    if obj[_KEY] != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {obj[_KEY]}; this backdrop reads version {CHECKPOINT_VERSION}."
        )
    for k in ("config", "state_dict"):
        if not isinstance(obj.get(k), dict):
            raise CheckpointError(f"{path} is a damaged backdrop checkpoint: its '{k}' entry is missing.")
    return obj


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint file into an eval-mode float32 :class:`Segmenter`.

    Raises:
        CheckpointError: missing file, not a checkpoint, truncated/corrupt file, unknown
            architecture, missing or unexpected weights (named), shape mismatches (named).
    """
    path = Path(path)
    obj = _read(path)
    try:
        config = SegmenterConfig.from_dict(obj["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from e
    except TypeError as e:
        raise CheckpointError(f"{path}: invalid model config {obj['config']!r} ({e})") from e
    model = Segmenter(config)
    expected = model.state_dict()
    got: dict[str, torch.Tensor] = obj["state_dict"]
    problems: list[str] = []
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    shapes = [
        f"{k} is {tuple(got[k].shape)} in the file, {tuple(v.shape)} in {config.encoder}"
        for k, v in expected.items()
        if k in got and tuple(got[k].shape) != tuple(v.shape)
    ]
    if shapes:
        problems.append(f"shape mismatches: {_names(shapes)}")
    if problems:
        raise CheckpointError(
            f"{path} does not match its architecture ({config.encoder}): " + "; ".join(problems)
            + ". Was the file edited, or saved from a different model?"
        )
    model.load_state_dict(got, strict=True)
    model.float().eval()
    return Checkpoint(model=model, config=config, meta=dict(obj.get("meta", {})), path=path, sha256=file_sha256(path))


def _names(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")
