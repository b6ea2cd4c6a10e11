"""What an exporter returns: an :class:`Artifact` that describes itself.

Every field here ends up in ``manifest.json`` (docs/manifest.md), the contract app code reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from backdrop.buckets import Bucket
from backdrop.export.wrappers import STATE_NAME


@dataclass(frozen=True)
class TensorSpec:
    """One input, output or state tensor of an artifact.

    Attributes:
        name: the exact name the runtime uses (ONNX/Core ML feature names; for ExecuTorch and
            PyTorch Lite, which bind by position, the documented name of that position).
        shape: static shape.
        dtype: "float32" or "float16".
        layout: "NCHW" for images, "C" for the reset flag.
        value_range: (low, high) of valid values.
        meaning: what the app puts in or gets out.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    layout: str
    value_range: tuple[float, float]
    meaning: str

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
            "range": list(self.value_range),
            "meaning": self.meaning,
        }


def io_specs(state_form: str, height: int, width: int, dtype: str = "float32"):
    """(inputs, outputs, states) of a wrapper (export/wrappers.py) at one bucket size."""
    frame = TensorSpec(
        "frame", (1, 3, height, width), dtype, "NCHW", (0.0, 1.0),
        "Y, U, V planes of the frame after the bucket resize and replicate padding, BT.601 full range, uint8 / 255",
    )
    mask = TensorSpec(
        "mask", (1, 1, height, width), dtype, "NCHW", (0.0, 1.0),
        "person probability at bucket size; binary mask = mask >= 0.5; crop the padding and resize to the frame",
    )
    if state_form == "explicit":
        prev = TensorSpec(
            "prev_mask", (1, 1, height, width), dtype, "NCHW", (0.0, 1.0),
            "the previous call's next_mask; all zeros on the first frame and after a reset",
        )
        nxt = TensorSpec("next_mask", (1, 1, height, width), dtype, "NCHW", (0.0, 1.0), "state to pass as prev_mask next call")
        return (frame, prev), (mask, nxt), ()
    reset = TensorSpec(
        "reset", (1,), dtype, "C", (0.0, 1.0),
        "1.0 on the first frame, after a scene cut or camera switch (clears the state); else 0.0",
    )
    state = TensorSpec(STATE_NAME, (1, 1, height, width), dtype, "NCHW", (0.0, 1.0), "previous mask kept by the runtime; starts at zeros")
    return (frame, reset), (mask,), (state,)


@dataclass
class Artifact:
    """One exported file for one bucket, format, precision and state form.

    ``path`` is absolute while exporting; the manifest stores it relative to the target folder.
    ``verified`` is None until parity runs, then True/False; formats no runtime here can run
    stay None ("unverified") with ``verification_note`` saying what was checked instead.
    """

    path: Path
    format: str
    runtime: str
    precision: str
    state_form: str
    bucket: Bucket
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    states: tuple[TensorSpec, ...]
    min_os: str = ""
    details: dict = field(default_factory=dict)
    verified: bool | None = None
    verification_note: str = ""

    @property
    def key(self) -> str:
        """Unique id within a target, e.g. ``landscape_16x9/executorch-fp32-native``."""
        return f"{self.bucket.name}/{self.format}-{self.precision}-{self.state_form}"

    def sha256(self) -> str:
        return tree_sha256(self.path)

    def size_bytes(self) -> int:
        p = self.path
        return sum(f.stat().st_size for f in sorted(p.rglob("*")) if f.is_file()) if p.is_dir() else p.stat().st_size


def tree_sha256(path: Path) -> str:
    """sha256 of a file, or of a directory (.mlpackage) as the hash of its sorted relative
    paths and file contents."""
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    else:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def artifact_from_manifest(entry: dict, root: Path, bucket: Bucket) -> Artifact:
    """Rebuild an :class:`Artifact` from its manifest entry (the inverse of the pipeline's
    manifest writer), with ``path`` absolute under ``root``."""

    def specs(items: list[dict]) -> tuple[TensorSpec, ...]:
        return tuple(
            TensorSpec(t["name"], tuple(t["shape"]), t["dtype"], t["layout"], tuple(t["range"]), t["meaning"]) for t in items
        )

    return Artifact(
        path=root / entry["path"],
        format=entry["format"],
        runtime=entry["runtime"],
        precision=entry["precision"],
        state_form=entry["state_form"],
        bucket=bucket,
        inputs=specs(entry["inputs"]),
        outputs=specs(entry["outputs"]),
        states=specs(entry["states"]),
        min_os=entry["min_os"],
        details=dict(entry["details"]),
        verified=entry["verified"],
    )
