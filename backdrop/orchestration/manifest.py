"""``manifest.json``: the contract an app reads (schema: backdrop/schemas/manifest.schema.json,
documentation: docs/manifest.md). Every field is public API: add fields with a minor
``schema_version`` bump; never rename or remove one without a major bump."""

from __future__ import annotations

import json
import os
import platform
from importlib import resources
from pathlib import Path

from backdrop.core.errors import BackdropError
from backdrop.core.fsutil import atomic_write
from backdrop.export.artifact import tree_sha256
from backdrop.export.formats import FORMATS, package_versions

SCHEMA_VERSION = "1.3"

BUCKET_RULE = {
    "selection": (
        "bucket minimising max(a,b)/min(a,b) with a = frame_w*bucket_h, b = frame_h*bucket_w (exact integer compare); "
        "ties: earliest bucket"
    ),
    "max_aspect_factor": 2,
    "placement": (
        "limiting side = bucket side; other side = (2*side*bucket_side + limiting) div (2*limiting), "
        "clamped to [1, bucket side]; centred, odd pixel bottom/right"
    ),
    "resize": "bilinear, half-pixel centres, float32, no antialiasing, on Y/U/V / 255",
    "padding": "replicate (edge pixels repeated)",
    "mask_back": "crop the padding, bilinear half-pixel resize to the frame size",
    "spec": "docs/buckets.md",
}

_BASE_TOOLS = ("torch", "numpy", "opencv-python-headless")


class ManifestError(BackdropError):
    """A manifest does not satisfy its schema."""


def tool_versions() -> dict[str, str]:
    """Python, the base libraries and every registered format's runtime packages."""
    packages = list(_BASE_TOOLS)
    for name in FORMATS:
        packages += [p for p in FORMATS.get(name).runtime_packages if p not in packages]
    return {"python": platform.python_version(), **package_versions(packages)}


def schema_file() -> dict:
    """The schema as shipped to app developers (backdrop/schemas/manifest.schema.json); its
    artifact ``format`` enum lists the built-in formats' artifact kinds (a test holds it
    against the format registry)."""
    return json.loads(resources.files("backdrop").joinpath("schemas/manifest.schema.json").read_text())


def schema() -> dict:
    """The schema manifests are validated against: the shipped one, with the artifact
    ``format`` enum taken from the format registry, so a format registered by a plug-in
    module validates without editing the file."""
    s = schema_file()
    s["$defs"]["artifact"]["properties"]["format"]["enum"] = FORMATS.kind_names()
    return s


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


class IntegrityError(ManifestError):
    """A file of an exported target is missing or differs from what its manifest recorded."""


def check_integrity(dist: str | os.PathLike, manifest: dict) -> None:
    """Check every artifact and golden under ``dist`` against the manifest's sha256 before
    anything loads them (a modified file would otherwise fail deep inside a runtime).

    Raises:
        IntegrityError: names every missing or modified file and what to do.
    """
    root = Path(dist)
    problems = []
    files = [(a["path"], a["sha256"]) for a in manifest["artifacts"]]
    shas = manifest.get("golden_sha256", {})
    files += [(rel, shas.get(bucket)) for bucket, rel in manifest["goldens"].items()]
    for rel, want in files:
        path = root / rel
        if not path.exists():
            problems.append(f"{rel} is missing")
        elif want is not None and tree_sha256(path) != want:
            problems.append(
                f"{rel} was modified after export (sha256 {tree_sha256(path)[:12]}..., the manifest says {want[:12]}...)"
            )
    if problems:
        raise IntegrityError(
            f"{root}: {'; '.join(problems)}. Re-export the target (backdrop export) or restore the files; "
            "nothing was run."
        )


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
