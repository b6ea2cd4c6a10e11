"""``backdrop bench``: time every artifact of an export on one device under a :class:`Protocol`
and return one results document (backdrop/bench/document.py) with the full context.

Per bucket, the artifacts (and the MediaPipe peer, where it runs) take turns round by round,
the order rotated by one place each round; before each round the device cools down and passes the
thermal and clock gate. Each round is the device's own ``bench_round`` (load, warm-up, frames
with the state carried, model-only and end-to-end per frame).
"""

from __future__ import annotations

import fnmatch
import platform
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from backdrop import __version__ as BACKDROP_VERSION
from backdrop.bench.document import FORMAT, FORMAT_VERSION, validate_document
from backdrop.bench.peer import MediaPipePeer
from backdrop.bench.protocol import GateCheck, Protocol, wait_for_gate
from backdrop.core.buckets import Bucket
from backdrop.core.errors import BackdropError
from backdrop.core.fsutil import file_sha256
from backdrop.device_tests.base import BenchPlan, Device, DeviceError, DeviceLostError, RoundTimings
from backdrop.export.artifact import Artifact, artifact_from_manifest
from backdrop.export.goldens import Golden, load_golden
from backdrop.orchestration.manifest import check_integrity, load_manifest

SOURCE = "backdrop bench"


class BenchError(BackdropError):
    """A bench that cannot start (no artifact matches, none runs on the device) or whose every
    artifact failed."""


@dataclass(frozen=True)
class BenchSpec:
    """What to bench.

    Attributes:
        dist: an exported target folder (dist/<target>).
        artifacts: shell-style pattern over artifact keys (``landscape_16x9/*``) or files
            (``*.pte``); None for all.
        protocol: how to time them.
        peer: also time MediaPipe's selfie segmenter on the same frames (host tiers only).
        against: other exports benched in the same session, their artifacts taking turns with
            these (an A/B on a shared machine: ``backdrop results compare`` pairs their rounds).
    """

    dist: Path
    artifacts: str | None = None
    protocol: Protocol = field(default_factory=Protocol)
    peer: bool = True
    against: tuple[Path, ...] = ()


@dataclass
class _Member:
    """One thing timed in a bucket's rotation: an artifact or the peer."""

    key: str
    artifact: Artifact | None
    entry: dict | None
    side: int
    golden: Golden
    rounds: list[RoundTimings] = field(default_factory=list)
    gates: list[GateCheck] = field(default_factory=list)


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's commit (``-dirty`` when files differ from it); None outside a checkout."""
    root = root or Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def select_artifacts(dist: Path, pattern: str | None) -> tuple[dict, list[tuple[Artifact, dict]]]:
    """(manifest, [(artifact, manifest entry)]) of ``dist`` whose key or file matches ``pattern``.

    Raises:
        ManifestError, IntegrityError: a bad manifest or a file that differs from it.
        BenchError: nothing matches (the message lists the keys).
    """
    manifest = load_manifest(Path(dist) / "manifest.json")
    check_integrity(dist, manifest)
    buckets = {b["name"]: Bucket(b["name"], b["height"], b["width"]) for b in manifest["buckets"]}
    every = [(artifact_from_manifest(e, Path(dist), buckets[e["bucket"]]), e) for e in manifest["artifacts"]]
    chosen = [
        (art, entry) for art, entry in every
        if pattern is None or fnmatch.fnmatchcase(art.key, pattern) or fnmatch.fnmatchcase(entry["path"], pattern)
    ]
    if not chosen:
        keys = ", ".join(a.key for a, _ in every)
        raise BenchError(f"--artifacts {pattern!r} matches no artifact of {dist}; its keys: {keys}.")
    return manifest, chosen


def run_bench(
    spec: BenchSpec, device: Device, progress: Callable[[str, int, int], None] | None = None, peer: MediaPipePeer | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict]:
    """Bench ``spec`` on ``device``: one results document (validated) for ``spec.dist`` and one
    for each of ``spec.against``, all from one session in which their artifacts took turns.

    ``progress(key, done, total)`` is called after each round (for a progress bar). The peer runs
    (in the first document) where ``spec.peer`` and the device is this machine's own CPU; where
    MediaPipe is not installed the run says so in its notes.

    Raises:
        BenchError: nothing to bench, or every artifact of an export failed.
        DeviceLostError: the device went away (nothing is returned).
    """
    proto = spec.protocol
    dists = [Path(spec.dist), *(Path(d) for d in spec.against)]
    description = device.describe()
    sides = []
    for dist in dists:
        manifest, chosen = select_artifacts(dist, spec.artifacts)
        notes: list[str] = []
        runnable = []
        for art, entry in chosen:
            if device.can_run(art):
                runnable.append((art, entry))
            else:
                notes.append(f"skipped {art.key}: {device.why_not(art)}")
        if not runnable:
            raise BenchError(f"{device.name} can run none of the {len(chosen)} selected artifacts of {dist}: " + "; ".join(notes))
        goldens = {name: load_golden(dist / manifest["goldens"][name]) for name in sorted({a.bucket.name for a, _ in runnable})}
        sides.append((dist, manifest, runnable, goldens, notes))
    peer_here = spec.peer and device.tier == f"host-{platform.machine()}" and not description.emulated
    first_notes = sides[0][4]
    if spec.peer and not peer_here:
        first_notes.append(f"peer not timed: {device.name} ({device.tier}) is not this machine's own CPU.")
    peer = peer or (MediaPipePeer() if peer_here else None)
    if peer_here and peer.ready():
        first_notes.append(f"peer not timed: {peer.ready()}")
        peer = None
    groups: dict[str, list[_Member]] = {}
    for side, (_, _, runnable, goldens, _) in enumerate(sides):
        for art, entry in runnable:
            groups.setdefault(art.bucket.name, []).append(_Member(art.key, art, entry, side, goldens[art.bucket.name]))
    if peer is not None:
        for name, golden in sides[0][3].items():
            groups[name].append(_Member(peer.key(golden), None, None, 0, golden))
    plan = proto.round_plan()
    _prime(device, groups)
    total = proto.rounds * sum(len(members) for members in groups.values())
    done = 0
    failed: dict[tuple[int, str], str] = {}
    session = uuid.uuid4().hex
    started = _now()
    for members in groups.values():
        for r in range(proto.rounds):
            # Rotated by one place each round: every artifact takes every place (the first, just
            # after the gate's wait, included) equally often, and follows the same neighbour.
            for m in members[r % len(members):] + members[:r % len(members)]:
                done += 1
                if (m.side, m.key) in failed:
                    if progress:
                        progress(m.key, done, total)
                    continue
                if proto.cooldown_s:
                    sleep(proto.cooldown_s)
                m.gates.append(wait_for_gate(device.gate_readings, proto.gate, r, sleep=sleep))
                try:
                    golden = m.golden
                    timings = device.bench_round(m.artifact, golden, plan) if m.artifact else peer.bench_round(golden, plan)
                    m.rounds.append(timings)
                except DeviceLostError:
                    raise
                except DeviceError as e:
                    failed[(m.side, m.key)] = str(e)
                if progress:
                    progress(m.key, done, total)
    finished = _now()
    documents = []
    for side, (dist, manifest, _, _, notes) in enumerate(sides):
        notes = notes + [f"failed {key}: {why}" for (s_, key), why in failed.items() if s_ == side]
        if len(dists) > 1:
            others = ", ".join(str(d) for i, d in enumerate(dists) if i != side)
            notes.append(f"benched in one session with {others}: rounds took turns, so the runs compare round by round.")
        results = [
            _result(m, manifest, device, description.emulated, peer)
            for members in groups.values() for m in members if m.side == side and (side, m.key) not in failed and m.rounds
        ]
        if not results:
            raise BenchError(f"every artifact of {dist} failed on {device.name}: " + "; ".join(notes))
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "run": {
                "started_at": started,
                "finished_at": finished,
                "source": SOURCE,
                "host": socket.gethostname() or "unknown",
                "backdrop_version": BACKDROP_VERSION,
                "git_commit": git_commit(),
                "target": manifest["target"]["name"],
                "manifest_sha256": file_sha256(dist / "manifest.json"),
                "protocol": proto.to_dict(),
                "device": _strings_device(description.to_dict()),
                "session": session,
                "notes": notes,
            },
            "results": results,
        }
        validate_document(doc, "the bench's results")
        documents.append(doc)
    return documents


def _prime(device: Device, groups: dict[str, list[_Member]]) -> None:
    """One untimed one-frame round of the first artifact of each kind, so that the first timed
    load does not pay for importing the runtime (an in-process device): every load is a warm
    process's. A failure here is left for the timed round to report."""
    seen = set()
    prime = BenchPlan(warmup=0, min_frames=1, min_seconds=0.0, e2e=False)
    for members in groups.values():
        for m in members:
            if m.artifact is not None and m.artifact.format not in seen:
                seen.add(m.artifact.format)
                try:
                    device.bench_round(m.artifact, m.golden, prime)
                except DeviceLostError:
                    raise
                except DeviceError:
                    pass


def _strings_device(d: dict) -> dict:
    d = dict(d)
    d["runtime_versions"] = {str(k): str(v) for k, v in d.get("runtime_versions", {}).items()}
    d["details"] = {str(k): str(v) for k, v in d.get("details", {}).items()}
    return d


def _result(m: _Member, manifest: dict, device: Device, emulated: bool, peer: MediaPipePeer | None) -> dict:
    rounds = m.rounds
    cores: dict[str, int] = {}
    for t in rounds:
        for cpu, n in t.cores.items():
            cores[str(cpu)] = cores.get(str(cpu), 0) + n
    with_peak = [t for t in rounds if t.peak_rss_mb is not None]
    top = max(with_peak, key=lambda t: t.peak_rss_mb) if with_peak else None
    memory = None if top is None else {
        "peak_rss_mb": round(top.peak_rss_mb, 3),
        "baseline_rss_mb": None if top.baseline_rss_mb is None else round(top.baseline_rss_mb, 3),
        "kind": top.memory_kind,
    }
    flags = []
    if any(g.timed_out for g in m.gates):
        flags.append("gate-timed-out")
    if all(not g.readings for g in m.gates):
        flags.append("gate-unavailable")
    if emulated:
        flags.append("emulated")
    if m.artifact is not None:
        art, entry = m.artifact, m.entry
        artifact = {
            "key": art.key, "bucket": art.bucket.name, "format": art.format, "precision": art.precision,
            "state_form": art.state_form, "sha256": entry["sha256"], "size_bytes": int(entry["size_bytes"]),
            "checkpoint_sha256": manifest["model"]["checkpoint_sha256"], "file": entry["path"], "peer": False,
        }
        versions = {str(k): str(v) for k, v in device.runtime_versions(art).items()}
    else:
        info = peer.info
        artifact = {
            "key": m.key, "bucket": m.key.split("/", 1)[0], "format": "mediapipe", "precision": "fp32",
            "state_form": "none", "sha256": info.sha256, "size_bytes": info.size_bytes, "checkpoint_sha256": None,
            "file": info.model_file, "peer": True,
        }
        versions = dict(info.versions)
        flags.append("peer")
    return {
        "artifact": artifact,
        "runtime_versions": versions,
        "threads": max(t.threads for t in rounds),
        "cores": cores,
        "memory": memory,
        "gate": [g.to_dict() for g in m.gates],
        "flags": flags,
        "load_ms": [round(t.load_ms, 4) for t in rounds],
        "round_frames": [len(t.model_ms or t.e2e_ms) for t in rounds],
        "model_ms": [round(v, 4) for t in rounds for v in t.model_ms],
        "e2e_ms": [round(v, 4) for t in rounds for v in t.e2e_ms],
    }


__all__ = ["BenchError", "BenchSpec", "SOURCE", "git_commit", "run_bench", "select_artifacts"]
