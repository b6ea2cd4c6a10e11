"""``manifest.json``: the contract an app reads (schema: backdrop/schemas/manifest.schema.json,
documentation: docs/manifest.md). Every field is public API: add fields with a minor
``schema_version`` bump; never rename or remove one without a major bump."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata, resources
from pathlib import Path

from backdrop.errors import BackdropError
from backdrop.fsutil import atomic_write

SCHEMA_VERSION = "1.1"

STATE_CONTRACT = {
    "explicit": (
        "Call forward(frame, prev_mask) -> (mask, next_mask). Pass all-zero prev_mask on the first frame and "
        "after a reset (scene cut, camera switch, bucket change); otherwise pass the previous call's next_mask "
        "unchanged (float, not thresholded)."
    ),
    "native": (
        "Call forward(frame, reset) -> mask. The runtime keeps the previous mask in the state tensor (starts at "
        "zeros). Pass reset=1.0 on the first frame and after a reset (scene cut, camera switch, bucket change), "
        "0.0 otherwise. One loaded model instance per camera stream: the state is per instance."
    ),
}

BUCKET_RULE = {
    "selection": "bucket minimising max(a,b)/min(a,b) with a = frame_w*bucket_h, b = frame_h*bucket_w (exact integer compare); ties: earliest bucket",
    "max_aspect_factor": 2,
    "placement": "limiting side = bucket side; other side = (2*side*bucket_side + limiting) div (2*limiting), clamped to [1, bucket side]; centred, odd pixel bottom/right",
    "resize": "bilinear, half-pixel centres, float32, no antialiasing, on Y/U/V / 255",
    "padding": "replicate (edge pixels repeated)",
    "mask_back": "crop the padding, bilinear half-pixel resize to the frame size",
    "spec": "docs/buckets.md",
}

_TOOLS = ("torch", "executorch", "onnx", "onnxruntime", "coremltools", "numpy", "opencv-python-headless")


class ManifestError(BackdropError):
    """A manifest does not satisfy its schema."""


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def schema() -> dict:
    return json.loads(resources.files("backdrop").joinpath("schemas/manifest.schema.json").read_text())


def validate_manifest(manifest: dict) -> None:
    """Raise ManifestError listing every schema violation (path: message)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:20]]
        raise ManifestError("manifest.json does not match its schema:\n  " + "\n  ".join(lines))


def write_manifest(manifest: dict, path: str | os.PathLike) -> Path:
    """Validate, then write atomically with sorted keys (same inputs, same bytes)."""
    validate_manifest(manifest)
    path = Path(path)
    with atomic_write(path, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    return path


def load_manifest(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"No manifest at {path}: run `backdrop export --target ...` first.") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path} is not valid JSON: {e}") from e
    validate_manifest(manifest)
    return manifest
