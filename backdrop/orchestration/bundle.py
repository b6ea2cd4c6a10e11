"""The bundle stage: what an app ships from an exported target, for its assets folder.

An exported target (``dist/<target>/``) holds every artifact of every bucket and a golden of
about 17 MB per bucket: too much for an app. :func:`make_bundle` copies the manifest, the
artifacts the app runs (chosen by format, precision and state form) and one short golden for
the app's start-up self-test into one folder, e.g. ``android_demo/app/src/main/assets/backdrop``
(``make android-demo``):

    OUT/manifest.json               the target's manifest trimmed to what was copied (schema-valid)
    OUT/<bucket>/model-....<ext>     each chosen artifact, at its manifest ``path``
    OUT/goldens/<bucket>.npz         the self-test golden: the first frames through the last reset

Every copied file is checked against the manifest's sha256 first; the bundle is built next to
OUT and moved into place, so a failed run leaves the previous bundle (or nothing), never half
of one.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backdrop.core.errors import BackdropError
from backdrop.core.fsutil import file_sha256
from backdrop.export.goldens import GoldenError, load_golden, save_golden
from backdrop.orchestration.manifest import check_integrity, load_manifest, validate_manifest, write_manifest


class BundleError(BackdropError):
    """The bundle cannot be made as asked (nothing matches, a bad bucket or frame count)."""


@dataclass(frozen=True)
class BundleRequest:
    """What to bundle.

    Attributes:
        dist: the exported target folder (holds manifest.json).
        out: the bundle folder; replaced as a whole.
        formats, precisions, state_forms: an artifact is copied when all three match; None
            matches every value the manifest has.
        golden_bucket: the bucket whose golden the self-test runs; None: the first bucket
            that has an artifact in the bundle.
        golden_frames: frames of that golden to keep; None: through its last reset (so the
            self-test checks the initial state, the carried state and a reset).
    """

    dist: Path
    out: Path
    formats: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    state_forms: tuple[str, ...] | None = None
    golden_bucket: str | None = None
    golden_frames: int | None = None


@dataclass(frozen=True)
class Bundle:
    """A written bundle: its folder, the artifact keys, the self-test golden, bytes in all."""

    out: Path
    artifacts: tuple[str, ...]
    golden_bucket: str
    golden_frames: int
    total_bytes: int


def _choose(manifest: dict, req: BundleRequest) -> list[dict]:
    def ok(value: str, wanted: tuple[str, ...] | None) -> bool:
        return wanted is None or value in wanted

    chosen = [a for a in manifest["artifacts"]
              if ok(a["format"], req.formats) and ok(a["precision"], req.precisions) and ok(a["state_form"], req.state_forms)]
    if not chosen:
        have = sorted({f"{a['format']}-{a['precision']}-{a['state_form']}" for a in manifest["artifacts"]})
        asked = ", ".join(f"{what} {','.join(v)}" for what, v in (("formats", req.formats), ("precisions", req.precisions),
                                                                   ("state forms", req.state_forms)) if v is not None)
        raise BundleError(f"No artifact of {req.dist} is one of {asked}. The target has: {', '.join(have)}.")
    return chosen


def _tree_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def make_bundle(req: BundleRequest) -> Bundle:
    """Copy what the app runs from ``req.dist`` into ``req.out`` (module docstring).

    Raises:
        ManifestError / IntegrityError: the target's manifest is invalid or a file differs from it.
        BundleError: no artifact matches, the golden bucket has no artifact in the bundle, or
            the frame count leaves out a reset.
    """
    dist, out = Path(req.dist), Path(req.out)
    manifest = load_manifest(dist / "manifest.json")
    chosen = _choose(manifest, req)
    bundled = copy.deepcopy(manifest)
    bundled["artifacts"] = chosen
    buckets = [b for b in manifest["buckets"] if any(a["bucket"] == b["name"] for a in chosen)]
    names = [b["name"] for b in buckets]
    bucket = req.golden_bucket or names[0]
    if bucket not in names:
        raise BundleError(f"--golden-bucket {bucket} has no artifact in the bundle; choose one of {', '.join(names)}.")
    if bucket not in manifest["goldens"]:
        raise BundleError(f"{dist}/manifest.json has no golden for bucket {bucket}; re-export the target.")
    # every file copied from dist (the chosen artifacts and this one golden) against the manifest, in one pass
    check_integrity(dist, bundled | {"goldens": {bucket: manifest["goldens"][bucket]}})
    golden = load_golden(dist / manifest["goldens"][bucket])
    frames = req.golden_frames if req.golden_frames is not None else int(golden.reset_indices[-1]) + 1
    try:
        short = golden.prefix(frames)
    except GoldenError as e:
        raise BundleError(f"--golden-frames: {e}") from e

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the bundle is an ordinary folder
    try:
        for a in chosen:
            src, dst = dist / a["path"], tmp / a["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
        golden_rel = f"goldens/{bucket}.npz"
        save_golden(short, tmp / golden_rel)
        bundled["buckets"] = buckets
        bundled["goldens"] = {bucket: golden_rel}
        bundled["golden_sha256"] = {bucket: file_sha256(tmp / golden_rel)}
        bundled["reports"] = {}  # the target's reports stay in dist/
        validate_manifest(bundled)
        write_manifest(bundled, tmp / "manifest.json")
        check_integrity(tmp, bundled)
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            if old.exists():
                old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(out=out, artifacts=tuple(a["key"] for a in chosen), golden_bucket=bucket, golden_frames=short.num_frames,
                  total_bytes=_tree_bytes(out))
