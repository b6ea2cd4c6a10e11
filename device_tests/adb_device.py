"""``adb`` / ``adb:<serial>``: backdrop-runner on whatever adb reaches (a phone, an Android
emulator, an arm64 Linux board, or this machine's own adbd on loopback).

Every run pushes what the runner needs to a content-addressed folder under
``/data/local/tmp/backdrop/`` (:data:`REMOTE_ROOT`):

    bundle-<hash>/        the aarch64 bundle (``make native-runner-arm64``: the runner, the
                          runtimes' libraries, glibc's loader and libraries), plus qemu-aarch64
                          when the device is not arm64; <hash> covers every file's sha256
    blobs/<sha256><sfx>   artifacts, by their own sha256
    runs/<id>/            one run's sequence file and the runner's out/ folder

A file already there with the right sha256 is not pushed again; every pushed file is hashed on
the device and compared, and the results pulled back are compared with the device's hashes of
them. ``runs/<id>`` goes after each run; :meth:`AdbDevice.close` removes what this session
pushed (unless ``keep``). The device describes itself from ``getprop`` (Android) or
``/proc/cpuinfo`` and ``uname`` (Linux), with CPU frequencies and governors, thermal zones and
the battery temperature where present. A device whose CPU is not arm64 (an x86_64 adbd, as in
CI) runs the bundle through the pushed qemu and is labelled "emulated arm64 over adb" in every
report: its timings are never latency.

The adb client is ``adbutils`` (it talks to the adb server, starting one with its bundled adb
when none runs; ``ADBUTILS_ADB_PATH`` or an ``adb`` on PATH take precedence).
"""

from __future__ import annotations

import hashlib
import re
import shlex
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from backdrop.core.fsutil import file_sha256
from backdrop.device_tests.base import DEVICES, GATE_SHELL, DeviceDescription, DeviceError, DeviceLostError, parse_gate_dump
from backdrop.device_tests.host_native import RUNTIMES, HostNativeDevice
from backdrop.device_tests.qemu_arm64 import QEMU_CPU, default_bundle, default_qemu
from backdrop.export.artifact import Artifact
from backdrop.export.formats import FORMATS, package_versions

REMOTE_ROOT = "/data/local/tmp/backdrop"
"""Where the device keeps what is pushed (the usual home of command-line tools on Android)."""

LOADER = "ld-linux-aarch64.so.1"
ARM64_MACHINES = ("aarch64", "arm64", "armv8l")
SHELL_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 1800.0
_RC_MARK = "__backdrop_rc="


@dataclass
class _Remote:
    """What this session knows of the device: its shell, arch, and what it pushed."""

    machine: str = ""
    android: bool = False
    shell_v2: bool = False
    bundle_dir: str = ""
    pushed: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    description: DeviceDescription | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


@DEVICES.register("adb")
class AdbDevice(HostNativeDevice):
    """The aarch64 runner bundle on a device over adb (`adb:<serial>`; `adb` = the only one attached).

    Args:
        serial: the device's adb serial (``adb devices``); ``host:port`` serials are
            ``adb connect``-ed first. None: the only attached device.
        keep: leave the pushed files on the device (a later run reuses them by hash).
        threads: intra-op threads for ONNX Runtime (0 = its default).
        bundle: the aarch64 bundle folder; None for ``make native-runner-arm64``'s.
        qemu: qemu-aarch64 to push to a device that is not arm64; None for the built one.
    """

    name = "adb"
    takes_argument = True
    emulated = False

    def __init__(self, serial: str | None = None, keep: bool = False, threads: int = 0,
                 bundle: Path | None = None, qemu: Path | None = None) -> None:
        self.bundle = Path(bundle) if bundle is not None else default_bundle()
        self.qemu = Path(qemu) if qemu is not None else default_qemu()
        super().__init__(threads, runner=self.bundle / "backdrop-runner")
        self.serial = serial
        self.keep = keep
        self.name = f"adb:{serial}" if serial else "adb"
        self.tier = "adb"
        self._remote: _Remote | None = None
        self._device = None

    # -- connection ------------------------------------------------------------------------
    def _client(self):
        import adbutils

        return adbutils.adb

    def _connect(self):
        """The adbutils device for ``serial`` (or the only one), connecting ``host:port``."""
        from adbutils import AdbError

        adb = self._client()
        try:
            listed = {d.serial: d.state for d in adb.list()}
            if self.serial and self.serial not in listed and re.fullmatch(r"[\w.\-]+:\d+", self.serial):
                adb.connect(self.serial, timeout=10)
                listed = {d.serial: d.state for d in adb.list()}
        except (AdbError, OSError, EOFError) as e:
            raise DeviceError(f"{self.name}: cannot reach the adb server ({e}); start it with `adb start-server`.") from e
        attached = [s for s, state in listed.items() if state == "device"]
        if self.serial is None:
            if len(attached) != 1:
                what = f"{len(attached)} devices are attached ({', '.join(attached)})" if attached else "no device is attached"
                raise DeviceError(f"adb: {what}; name one as --device adb:SERIAL (serials from `adb devices`).")
            serial = attached[0]
        else:
            serial = self.serial
            if listed.get(serial) != "device":
                state = listed.get(serial, "not attached")
                known = ", ".join(f"{s} ({st})" for s, st in listed.items()) or "none"
                raise DeviceError(f"{self.name}: the device is {state} (adb sees: {known}); check the cable or "
                                  "`adb connect HOST:PORT`, and accept the debugging prompt on the phone.")
        return adb.device(serial)

    def _state(self) -> str:
        try:
            for d in self._client().list():
                if d.serial == self._device.serial:
                    return d.state
        except Exception:  # the server itself is gone
            return "gone (no adb server)"
        return "gone"

    @contextmanager
    def _adb(self, what: str):
        """Turn adb failures into DeviceError, or DeviceLostError when the device is gone."""
        from adbutils import AdbError

        try:
            yield
        except (AdbError, OSError, EOFError) as e:
            state = self._state()
            if state != "device":
                raise DeviceLostError(
                    f"{self.name}: the device disappeared during {what} (now {state}: {e}); reconnect it "
                    "(`adb devices`) and run again. Files already pushed stay under "
                    f"{REMOTE_ROOT} on it."
                ) from e
            raise DeviceError(f"{self.name}: adb failed during {what}: {e}") from e

    def _shell(self, cmd: str, what: str, timeout: float = SHELL_TIMEOUT_S) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of ``cmd`` in the device's shell."""
        if self._device is None:
            self._open()
        with self._adb(what):
            if self._remote is not None and not self._remote.shell_v2:
                r = self._device.shell2(f"({cmd}) 2>&1; echo {_RC_MARK}$?", timeout=timeout)
                out, _, rc = r.output.rpartition(_RC_MARK)
                if not rc.strip().isdigit():
                    raise DeviceError(f"{self.name}: no exit status in the output of {what}: {r.output[-200:]!r}")
                return int(rc.strip()), out, out
            r = self._device.shell2(cmd, timeout=timeout, v2=True)
            return r.returncode, r.stdout, r.stderr

    def _check(self, cmd: str, what: str, timeout: float = SHELL_TIMEOUT_S) -> str:
        rc, out, err = self._shell(cmd, what, timeout)
        if rc != 0:
            last = (err.strip().splitlines() or out.strip().splitlines() or [f"exit status {rc}"])[-1]
            raise DeviceError(f"{self.name}: {what} failed on the device: {last}")
        return out

    # -- the device interface --------------------------------------------------------------
    def ready(self) -> str:
        for what, path in (("aarch64 runner bundle", self.runner), ("aarch64 loader", self.bundle / LOADER)):
            if not path.is_file():
                return f"no {what} at {path}: build it with `make native-runner-arm64`."
        try:
            self._open()
        except DeviceError as e:
            return str(e)
        if self._remote.machine not in ARM64_MACHINES and not self.qemu.is_file():
            return (f"the device is {self._remote.machine}, not arm64, and there is no qemu-aarch64 at {self.qemu} "
                    "to push (make native-runner-arm64).")
        return ""

    def _open(self) -> _Remote:
        """Connect and learn what the device is (once a session)."""
        if self._remote is not None:
            return self._remote
        self._device = self._connect()
        self.name = f"adb:{self._device.serial}"
        with self._adb("reading its features"):
            features = set(self._device.get_features().split(","))
        remote = _Remote(shell_v2="shell_v2" in features)
        self._remote = remote
        probe = self._check("uname -m; getprop ro.build.version.sdk 2>/dev/null || true", "uname")
        lines = probe.split()
        remote.machine = lines[0] if lines else "unknown"
        remote.android = len(lines) > 1 and lines[1].isdigit()
        remote.description = self._read_description(remote)
        self.tier = remote.description.tier
        self.emulated = remote.description.emulated
        if remote.machine not in ARM64_MACHINES:
            self.memory_kind = "peak RSS of the pushed qemu-aarch64 running the runner, the emulator's own memory included"
        return remote

    def _read_description(self, remote: _Remote) -> DeviceDescription:
        script = (
            "echo '== uname'; uname -a; "
            "echo '== cpuinfo'; cat /proc/cpuinfo 2>/dev/null | head -n 40; "
            "echo '== nproc'; (nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo); "
            "echo '== cpufreq'; for c in /sys/devices/system/cpu/cpu[0-9]*/cpufreq; do [ -d \"$c\" ] && "
            "echo \"$(basename $(dirname $c)) $(cat $c/scaling_cur_freq 2>/dev/null) $(cat $c/cpuinfo_max_freq 2>/dev/null) "
            "$(cat $c/scaling_governor 2>/dev/null)\"; done; "
            "echo '== thermal'; for z in /sys/class/thermal/thermal_zone*; do [ -d \"$z\" ] && "
            "echo \"$(cat $z/type 2>/dev/null) $(cat $z/temp 2>/dev/null)\"; done; "
            "echo '== battery'; cat /sys/class/power_supply/battery/temp 2>/dev/null || true"
        )
        if remote.android:
            props = ("ro.product.manufacturer", "ro.product.model", "ro.soc.manufacturer", "ro.soc.model",
                     "ro.board.platform", "ro.hardware", "ro.product.cpu.abi", "ro.build.version.sdk",
                     "ro.build.version.release", "ro.kernel.qemu", "ro.boot.qemu")
            script += "; echo '== getprop'; " + "; ".join(f"echo \"{p}=$(getprop {p})\"" for p in props)
        sections: dict[str, list[str]] = {}
        current = None
        for line in self._check(script, "reading what the device is").splitlines():
            if line.startswith("== "):
                current = sections.setdefault(line[3:].strip(), [])
            elif current is not None and line.strip():
                current.append(line.strip())
        details: dict[str, str] = {}
        props = dict(line.split("=", 1) for line in sections.get("getprop", []) if "=" in line)
        details.update({k: v for k, v in props.items() if v})
        cpu = ""
        for line in sections.get("cpuinfo", []):
            key, _, value = line.partition(":")
            if key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
                cpu = value.strip()
                break
        parts = sorted({line.partition(":")[2].strip() for line in sections.get("cpuinfo", [])
                        if line.lower().startswith("cpu part")})
        if not cpu and parts:
            cpu = "Arm CPU parts " + ", ".join(parts)
        if sections.get("nproc"):
            details["cores"] = sections["nproc"][0]
        for line in sections.get("cpufreq", []):
            name, *rest = line.split()
            details[f"cpufreq.{name}"] = " ".join(rest)  # current kHz, max kHz, governor
        for i, line in enumerate(sections.get("thermal", [])):
            details[f"thermal.{i}"] = line  # type, millidegrees C
        if sections.get("battery"):
            details["battery_temp_decidegC"] = sections["battery"][0]
        uname = " ".join(sections.get("uname", [])) or "unknown"
        emulated_cpu = remote.machine not in ARM64_MACHINES
        android_emulator = bool(props.get("ro.kernel.qemu") == "1" or props.get("ro.boot.qemu") == "1")
        if remote.android:
            model = " ".join(v for v in (props.get("ro.product.manufacturer"), props.get("ro.product.model")) if v)
            soc = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware") or "unknown"
            os_name = (f"Android {props.get('ro.build.version.release', '?')} (SDK {props.get('ro.build.version.sdk', '?')}, "
                       f"ABI {props.get('ro.product.cpu.abi', '?')})")
            tier = f"android-{_slug(soc)}"
            label = f"{model or 'Android device'} ({soc}) over adb"
        else:
            soc = ""
            os_name = f"Linux (not Android): {uname}"
            tier = f"linux-{_slug(remote.machine)}"
            label = f"{remote.machine} Linux over adb"
        if emulated_cpu:
            tier, label = "emulated-arm64-adb", "emulated arm64 over adb"
            cpu = f"{QEMU_CPU} (emulated by the pushed qemu-aarch64 on {cpu or remote.machine})"
        elif android_emulator:
            tier, label = "emulator-arm64", "Android emulator (arm64) over adb"
        versions = {"runner": "backdrop-runner (aarch64 bundle)",
                    "machine": "aarch64 (emulated)" if emulated_cpu else remote.machine}
        formats = [f for f in (FORMATS.get(n) for n in FORMATS) if any(k.runtime in RUNTIMES for k in f.kinds)]
        packages: list[str] = []
        for fmt in formats:
            packages += [p for p in fmt.runtime_packages if p not in packages]
        versions.update(package_versions(packages))
        return DeviceDescription(
            name=self.name, tier=tier, emulated=emulated_cpu or android_emulator, machine="aarch64",
            cpu=cpu or "unknown", os=os_name, runtime_versions=versions, label=label, details=details,
        )

    def describe(self) -> DeviceDescription:
        return self._open().description

    def runtime_versions(self, artifact: Artifact) -> dict[str, str]:
        d = self.describe()
        versions = {"runner": d.runtime_versions["runner"], "machine": d.runtime_versions["machine"]}
        versions.update(package_versions(FORMATS.for_kind(artifact.format).runtime_packages))
        return versions

    # -- pushing and running -----------------------------------------------------------------
    def _remote_hashes(self, paths: list[str], what: str) -> dict[str, str]:
        """sha256 of each existing remote path (missing ones left out)."""
        if not paths:
            return {}
        _, out, _ = self._shell("sha256sum " + " ".join(shlex.quote(p) for p in paths) + " 2>/dev/null", what)
        got = {}
        for line in out.splitlines():
            digest, _, path = line.strip().partition(" ")
            got[path.strip().lstrip("*")] = digest
        return got

    def _push(self, files: dict[str, Path], what: str, track: bool = True) -> None:
        """Push local files to remote paths unless there with the same sha256; then check the
        device's sha256 of each against the local one. ``track``: :meth:`close` removes them
        (a run's own files go with its folder instead)."""
        want = {remote: file_sha256(local) for remote, local in files.items()}
        have = self._remote_hashes(list(files), f"hashing {what} on the device")
        dirs = sorted({str(Path(r).parent) for r in files})
        self._check("mkdir -p " + " ".join(shlex.quote(d) for d in dirs), f"creating folders for {what}")
        for remote, local in files.items():
            if have.get(remote) == want[remote]:
                continue
            with self._adb(f"pushing {local.name}"):
                self._device.sync.push(local, remote, mode=0o755 if local.stat().st_mode & 0o111 else 0o644)
            if track:
                self._remote.pushed.append(remote)
        got = self._remote_hashes(list(files), f"hashing {what} on the device")
        for remote, local in files.items():
            if got.get(remote) != want[remote]:
                raise DeviceError(f"{self.name}: {local} arrived different on the device ({remote}: sha256 "
                                  f"{got.get(remote, 'missing')}, sent {want[remote]}); the transfer or the storage "
                                  "is unreliable.")

    def _ensure_bundle(self) -> str:
        remote = self._open()
        if remote.bundle_dir:
            return remote.bundle_dir
        files = {p.name: p for p in sorted(self.bundle.iterdir()) if p.is_file()}
        if remote.machine not in ARM64_MACHINES:
            files["qemu-aarch64"] = self.qemu
        digest = hashlib.sha256("".join(f"{n} {file_sha256(p)}\n" for n, p in files.items()).encode()).hexdigest()[:16]
        folder = f"{REMOTE_ROOT}/bundle-{digest}"
        self._push({f"{folder}/{n}": p for n, p in files.items()}, "the runner bundle")
        remote.bundle_dir = folder
        return folder

    def runner_on_device(self) -> str:
        """The command line that starts the runner in the bundle folder."""
        remote = self._open()
        start = f"./{LOADER} --library-path . ./backdrop-runner"
        return f"./qemu-aarch64 -cpu {QEMU_CPU} {start}" if remote.machine not in ARM64_MACHINES else start

    def gate_readings(self) -> dict[str, float]:
        """The device's thermal zones and CPU clocks (:data:`GATE_SHELL` in its shell); {} when
        it cannot be read.

        Raises:
            DeviceLostError: the device went away.
        """
        try:
            rc, out, _ = self._shell(GATE_SHELL, "reading its temperatures and clocks")
        except DeviceLostError:
            raise
        except DeviceError:
            return {}
        return parse_gate_dump(out) if rc == 0 else {}

    def _execute(self, artifact: Artifact, sequence: Path, out: Path, warmup: int, extra: tuple[str, ...] = ()) -> None:
        bundle = self._ensure_bundle()
        art_path = Path(artifact.path)
        blob = f"{REMOTE_ROOT}/blobs/{file_sha256(art_path)}{art_path.suffix}"
        run = f"{REMOTE_ROOT}/runs/{uuid.uuid4().hex[:12]}"
        self._push({blob: art_path}, artifact.key)
        self._remote.runs.append(run)
        try:
            self._push({f"{run}/sequence.bdsq": sequence}, f"the sequence for {artifact.key}", track=False)
            args = self.runner_args(artifact, blob, f"{run}/sequence.bdsq", f"{run}/out", warmup, extra)
            cmd = f"cd {shlex.quote(bundle)} && {self.runner_on_device()} " + " ".join(shlex.quote(a) for a in args)
            rc, _, err = self._shell(cmd, f"the run of {artifact.key}", timeout=RUN_TIMEOUT_S)
            if rc != 0:
                last = (err.strip().splitlines() or [f"exit status {rc}"])[-1]
                raise DeviceError(f"{artifact.key} on {self.name}: the runner failed: {last}")
            results = [f"{run}/out/masks.f32", f"{run}/out/report.json"]
            hashes = self._remote_hashes(results, f"hashing the results of {artifact.key}")
            out.mkdir(parents=True, exist_ok=True)
            for remote in results:
                local = out / Path(remote).name
                if remote not in hashes:
                    raise DeviceError(f"{artifact.key} on {self.name}: the runner wrote no {local.name}.")
                with self._adb(f"pulling {local.name} of {artifact.key}"):
                    self._device.sync.pull(remote, local)
                if file_sha256(local) != hashes[remote]:
                    raise DeviceError(f"{artifact.key} on {self.name}: {local.name} arrived different from the "
                                      f"device's copy (sha256 {file_sha256(local)}, device {hashes[remote]}).")
        finally:
            if not self.keep and self._state() == "device":
                self._shell(f"rm -rf {shlex.quote(run)}", "removing the run folder")
                self._remote.runs.remove(run)

    def close(self) -> None:
        """Remove what this session pushed (unless ``keep``), then the empty folders."""
        remote = self._remote
        if remote is None or self.keep or self._state() != "device":
            return
        runs = " ".join(shlex.quote(r) for r in remote.runs)
        paths = " ".join(shlex.quote(p) for p in remote.pushed)
        folders = [remote.bundle_dir] if remote.bundle_dir else []
        cmd = (f"rm -rf {runs}; " if runs else "") + (f"rm -f {paths}; " if paths else "") + " ".join(
            f"rmdir {shlex.quote(d)} 2>/dev/null;" for d in [*folders, f"{REMOTE_ROOT}/blobs", f"{REMOTE_ROOT}/runs", REMOTE_ROOT]
        ) + " true"
        self._shell(cmd, "cleaning up")
        remote.pushed.clear()
        remote.runs.clear()


__all__ = ["REMOTE_ROOT", "AdbDevice"]
