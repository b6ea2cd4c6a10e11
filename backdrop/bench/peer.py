"""The peer: MediaPipe's selfie segmenter timed on the same camera frames, on the same machine.

It runs in the teacher's virtual environment (``make teacher``: mediapipe needs numpy<2) through
scripts/peer_mediapipe.py, one subprocess per round; its results are stored as an artifact of
their own (``peer: true``) so every device table can show backdrop next to what users would
otherwise pick. Only where the bench runs on this machine's own CPU (a ``host-*`` tier): next to
an emulated or remote device its timings would say nothing about that device.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backdrop.device_tests.base import BenchPlan, DeviceError, RoundTimings, run_program
from backdrop.export.goldens import Golden

TEACHER_PYTHON_ENV = "BACKDROP_TEACHER_PYTHON"
"""Path of the teacher venv's python, instead of .venv-teacher/bin/python in this checkout."""

ROUND_TIMEOUT_S = 900
CHECKOUT = Path(__file__).resolve().parents[2]
SCRIPT = CHECKOUT / "scripts" / "peer_mediapipe.py"
MEMORY_KIND = "peer process peak RSS (getrusage ru_maxrss; includes Python and MediaPipe)"


def default_python() -> Path:
    return Path(os.environ.get(TEACHER_PYTHON_ENV) or CHECKOUT / ".venv-teacher" / "bin" / "python")


def model_selection(golden: Golden) -> int:
    """MediaPipe's landscape model (144x256) for landscape buckets, its general one (256x256)
    otherwise, as MediaPipe recommends."""
    return 1 if golden.bucket.width > golden.bucket.height else 0


@dataclass
class PeerInfo:
    """What the peer said about itself in its last round."""

    versions: dict[str, str]
    model: str
    model_file: str
    sha256: str
    size_bytes: int


class MediaPipePeer:
    """MediaPipe selfie segmentation through scripts/peer_mediapipe.py.

    Args:
        python: the teacher venv's python; None for :func:`default_python`.
    """

    name = "mediapipe-selfie"

    def __init__(self, python: Path | None = None) -> None:
        self.python = Path(python) if python is not None else default_python()
        self.info: PeerInfo | None = None

    def ready(self) -> str:
        """Why the peer cannot run ("" when it can)."""
        if not SCRIPT.is_file():
            return f"{SCRIPT} is missing (the peer runs from a backdrop checkout)."
        if not self.python.is_file():
            return f"no teacher python at {self.python}: run `make teacher` (or set {TEACHER_PYTHON_ENV})."
        return ""

    def key(self, golden: Golden) -> str:
        return f"{golden.bucket.name}/peer-{self.name}-{'landscape' if model_selection(golden) else 'general'}"

    def bench_round(self, golden: Golden, plan: BenchPlan) -> RoundTimings:
        """One round over the golden's camera buffers, end to end only.

        Raises:
            DeviceError: the peer is not ready or its run failed.
        """
        reason = self.ready()
        if reason:
            raise DeviceError(f"the MediaPipe peer cannot run: {reason}")
        with tempfile.TemporaryDirectory(prefix="backdrop-peer-") as tmp:
            frames = Path(tmp) / "frames.npz"
            np.savez(frames, buffers=np.ascontiguousarray(golden.camera_buffers, np.uint8), layout=golden.camera_format,
                     width=golden.camera_width, height=golden.camera_height)
            cmd = [str(self.python), str(SCRIPT), str(frames), "--model-selection", str(model_selection(golden)),
                   "--warmup", str(plan.warmup), "--min-frames", str(plan.min_frames), "--min-seconds", str(plan.min_seconds)]
            proc = run_program(cmd, "the MediaPipe peer", ROUND_TIMEOUT_S)
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise DeviceError(f"the MediaPipe peer printed no JSON report ({e}).") from e
        self.info = PeerInfo(
            versions={"mediapipe": str(report["mediapipe"]), "opencv": str(report["opencv"]), "numpy": str(report["numpy"])},
            model=str(report["model"]), model_file=str(report["model_file"]), sha256=str(report["model_sha256"]),
            size_bytes=int(report["model_size_bytes"]),
        )
        peak, base = report.get("peak_rss_kb", -1), report.get("baseline_rss_kb", -1)
        return RoundTimings(
            load_ms=float(report["load_ms"]), model_ms=[], e2e_ms=[float(v) for v in report["e2e_ms"]], threads=0,
            cores={int(k): int(v) for k, v in report.get("cores", {}).items()},
            peak_rss_mb=peak / 1024.0 if peak > 0 else None, baseline_rss_mb=base / 1024.0 if base > 0 else None,
            memory_kind=MEMORY_KIND if peak > 0 else "",
        )


__all__ = ["MediaPipePeer", "TEACHER_PYTHON_ENV", "default_python", "model_selection"]
