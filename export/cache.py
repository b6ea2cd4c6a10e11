"""Content-addressed cache of exported artifacts and of int8 fallback decisions.

An export request is keyed by everything its bytes depend on: the model's weights and config
(hashed from the tensors the format receives, so the conv-BN fusion is inside the key), the
bucket, format, precision and state form, the units kept in float, the int8 calibration set's
sha256, the versions of the tools (Python, torch, every format's runtime packages) and a
digest of backdrop's own source files (a change to any exporter, wrapper or quantizer is a
different key). A hit copies the cached files into the request's folder and rebuilds the
:class:`~backdrop.export.artifact.Artifact` the format had described; the pipeline then
verifies it exactly as a fresh one (parity, the int8 budget): the cache saves the lowering,
never a check.

Golden sequences (the float reference over real frames, and the held-out clips the int8 budget
is checked on) are cached the same way, keyed by the model, bucket, camera format, frame
count, reset and the source file's sha256: a re-export does not run the float model again to
rebuild the references it verifies against.

An int8 fallback decision (which units stay in float for a bucket and format) is cached under
the same kind of key plus the budget and the parity floors, so a re-export goes straight to the
float units that met the budget last time, and still measures them against it.

Layout under the cache root (default ``.cache/backdrop-export/`` in the checkout,
``BACKDROP_EXPORT_CACHE`` to move it, ``backdrop export --no-cache`` to bypass it)::

    artifacts/<k[:2]>/<key>/entry.json   the key's material and the artifacts' descriptions
    artifacts/<k[:2]>/<key>/files/...    the exported files, as the format named them
    decisions/<key>.json                 one int8 fallback decision
    goldens/<key>.npz                    a golden or held-out check sequence (float reference)

Entries are built aside and renamed into place, so an interrupted store leaves nothing a later
run could read; an entry whose files no longer match their recorded sha256 is dropped and
rebuilt. The least recently used entries are removed past ``max_bytes``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from backdrop import __version__
from backdrop.core.fsutil import atomic_write, file_sha256
from backdrop.export.artifact import Artifact, artifact_from_manifest, tree_sha256
from backdrop.export.formats.base import ExportRequest
from backdrop.export.goldens import Golden, GoldenError, load_golden, save_golden

CACHE_SCHEMA = "backdrop-export-cache/1"
DEFAULT_MAX_BYTES = 4 << 30
_REPO = Path(__file__).resolve().parents[1]


def default_cache_dir() -> Path:
    """``BACKDROP_EXPORT_CACHE`` if set, else ``.cache/backdrop-export`` in the checkout."""
    env = os.environ.get("BACKDROP_EXPORT_CACHE")
    return Path(env) if env else _REPO / ".cache" / "backdrop-export"


def model_digest(model: torch.nn.Module) -> str:
    """sha256 over the model's class, config and every parameter and buffer (name, dtype,
    shape, bytes): the float model exactly as a format receives it."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 over backdrop's own Python sources (the package and its stage packages), path and
    bytes: an edited exporter, wrapper or quantizer never reuses an artifact it did not make."""
    import backdrop

    roots = {Path(backdrop.__file__).resolve().parent}
    for stage in ("export", "quantization", "models", "device_tests"):
        roots.add(Path(__import__(f"backdrop.{stage}", fromlist=["_"]).__file__).resolve().parent)
    h = hashlib.sha256(__version__.encode())
    for root in sorted(roots):
        for f in sorted(root.rglob("*.py")):
            h.update(f"{root.name}/{f.relative_to(root).as_posix()}".encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _digest(material: dict) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    dropped: int = 0


class ExportCache:
    """The cache (see the module docstring). ``tools``: the tool versions that make part of
    every key (the pipeline passes the manifest's ``tools``)."""

    def __init__(self, root: Path, tools: dict[str, str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.tools = dict(tools)
        self.max_bytes = max_bytes
        self.stats = CacheStats()

    # --- keys ----------------------------------------------------------------------------
    def _base(self, request: ExportRequest) -> dict:
        b = request.bucket
        material = {
            "schema": CACHE_SCHEMA,
            "model": model_digest(request.model),
            "bucket": {"name": b.name, "height": b.height, "width": b.width},
            "format": request.format,
            "code": code_digest(),
            "tools": self.tools,
        }
        if request.precision == "int8":
            from backdrop.quantization.calibration import cached_calibration_inputs

            material["calibration"] = cached_calibration_inputs(request.model, b).sha256
        return material

    def artifact_material(self, request: ExportRequest) -> dict:
        """What an artifact's bytes depend on (the key is its sha256)."""
        return {
            **self._base(request),
            "precision": request.precision,
            "state_form": request.state_form,
            "float_units": sorted(request.float_units),
        }

    def decision_material(self, request: ExportRequest, budget: dict, floors: dict) -> dict:
        """What an int8 fallback decision of a bucket and format depends on."""
        return {**self._base(request), "precision": "int8", "budget": budget, "floors": floors, "kind": "decision"}

    def _entry_dir(self, key: str) -> Path:
        return self.root / "artifacts" / key[:2] / key

    # --- artifacts -------------------------------------------------------------------------
    def fetch(self, request: ExportRequest) -> list[Artifact] | None:
        """The cached artifacts of ``request``, copied into ``request.out_dir``; None on a miss
        (or a damaged entry, which is removed)."""
        key = _digest(self.artifact_material(request))
        entry_dir = self._entry_dir(key)
        entry_file = entry_dir / "entry.json"
        if not entry_file.is_file():
            self.stats.misses += 1
            return None
        try:
            entry = json.loads(entry_file.read_text())
            files = entry_dir / "files"
            damaged = [a["path"] for a in entry["artifacts"] if tree_sha256(files / a["path"]) != a["sha256"]]
        except (OSError, ValueError, KeyError):
            damaged = ["entry.json"]
        if damaged:
            shutil.rmtree(entry_dir, ignore_errors=True)
            self.stats.dropped += 1
            self.stats.misses += 1
            return None
        request.out_dir.mkdir(parents=True, exist_ok=True)
        made = []
        for a in entry["artifacts"]:
            src, dst = files / a["path"], request.out_dir / a["path"]
            if dst.is_dir():
                shutil.rmtree(dst)
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copyfile(src, dst)
            made.append(artifact_from_manifest(a, request.out_dir, request.bucket))
        os.utime(entry_file)  # least recently used goes first when the cache is pruned
        self.stats.hits += 1
        return made

    def store(self, request: ExportRequest, artifacts: list[Artifact]) -> None:
        """Keep ``artifacts`` (just exported for ``request``) under the request's key."""
        material = self.artifact_material(request)
        key = _digest(material)
        final = self._entry_dir(key)
        if final.exists():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
        try:
            files = tmp / "files"
            files.mkdir()
            rows = []
            for art in artifacts:
                rel = art.path.relative_to(request.out_dir).as_posix()
                dst = files / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                if art.path.is_dir():
                    shutil.copytree(art.path, dst)
                else:
                    shutil.copyfile(art.path, dst)
                rows.append(_describe(art, rel))
            doc = {"schema": CACHE_SCHEMA, "key": key, "material": material, "artifacts": rows}
            (tmp / "entry.json").write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
            try:
                os.rename(tmp, final)
            except OSError:  # another worker stored the same key first
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.prune()

    def prune(self) -> None:
        """Remove the least recently used artifact entries while the cache is over ``max_bytes``."""
        entries = []
        for entry_file in (self.root / "artifacts").glob("*/*/entry.json"):
            d = entry_file.parent
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            entries.append((entry_file.stat().st_mtime, size, d))
        total = sum(e[1] for e in entries)
        for _, size, d in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            shutil.rmtree(d, ignore_errors=True)
            total -= size

    # --- golden sequences -------------------------------------------------------------------
    def golden(self, material: dict, make: Callable[[], Golden]) -> Golden:
        """The golden that ``make()`` builds, keyed by ``material`` (the model, bucket, camera
        format, frames, reset and source: :func:`golden_material`); built and stored on a miss or
        an unreadable entry."""
        path = self.root / "goldens" / f"{_digest({'schema': CACHE_SCHEMA, 'code': code_digest(), **material})}.npz"
        if path.is_file():
            try:
                golden = load_golden(path)
                os.utime(path)
                return golden
            except GoldenError:
                path.unlink(missing_ok=True)
        golden = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_golden(golden, path)
        return golden

    # --- int8 decisions --------------------------------------------------------------------
    def decision(self, request: ExportRequest, budget: dict, floors: dict) -> dict | None:
        """The cached fallback decision (``float_units``, ``fallback``, ``search``) or None."""
        path = self.root / "decisions" / f"{_digest(self.decision_material(request, budget, floors))}.json"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc.get("float_units"), list) else None

    def store_decision(self, request: ExportRequest, budget: dict, floors: dict, doc: dict) -> None:
        material = self.decision_material(request, budget, floors)
        path = self.root / "decisions" / f"{_digest(material)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as f:
            f.write(json.dumps({**doc, "material": material}, indent=1, sort_keys=True, default=str) + "\n")


def golden_material(model: torch.nn.Module, bucket, camera_format: str, num_frames: int, reset_at: int,
                    source: Path) -> dict:
    """What a golden sequence depends on (its cache key's material)."""
    return {"kind": "golden", "model": model_digest(model), "bucket": {"name": bucket.name, "height": bucket.height,
            "width": bucket.width}, "camera_format": camera_format, "frames": num_frames, "reset_at": reset_at,
            "source": {"name": Path(source).name, "sha256": file_sha256(source)}}


def _describe(art: Artifact, rel: str) -> dict:
    """What the format said about ``art`` (its manifest fields before any verification),
    the inverse of :func:`~backdrop.export.artifact.artifact_from_manifest`."""
    details = dict(art.details)
    if art.delegation is not None:
        details["delegation"] = art.delegation.to_dict()
    return json.loads(json.dumps({
        "path": rel,
        "format": art.format,
        "runtime": art.runtime,
        "precision": art.precision,
        "state_form": art.state_form,
        "inputs": [t.to_dict() for t in art.inputs],
        "outputs": [t.to_dict() for t in art.outputs],
        "states": [t.to_dict() for t in art.states],
        "min_os": art.min_os,
        "details": details,
        "sha256": art.sha256(),
    }, default=str))


__all__ = ["CACHE_SCHEMA", "ExportCache", "code_digest", "default_cache_dir", "model_digest"]
