"""Time MediaPipe's selfie segmenter end to end on camera buffers: the peer of ``backdrop bench``.

Runs with the teacher virtual environment's python (``.venv-teacher``, made by ``make teacher``;
mediapipe needs numpy<2 and protobuf<5), so it imports nothing from backdrop. One call is one
bench round: load the segmenter (timed), run ``--warmup`` untimed frames, then the frames in
order, wrapping round, until at least ``--min-frames`` frames and ``--min-seconds`` seconds are
timed. Each timed frame is what an app using MediaPipe does per camera frame: the NV21/NV12
buffer to RGB (OpenCV), the segmenter's graph (its own resize, model and mask back at the frame's
size), the float mask read back. MediaPipe does not expose its model call alone, so there is no
model-only time.

    .venv-teacher/bin/python scripts/peer_mediapipe.py FRAMES.npz --model-selection 0|1 \\
        --warmup W --min-frames N --min-seconds S

FRAMES.npz: ``buffers`` uint8 (N, B) camera buffers, ``layout`` ("nv21" or "nv12"), ``width``,
``height`` (packed rows). Prints one JSON object on stdout: load_ms, e2e_ms (list), cores
(cpu -> frames), peak_rss_kb, baseline_rss_kb, mediapipe and OpenCV versions, model file and
its sha256. Exit 2 on bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
from pathlib import Path

MODEL_FILES = {0: "selfie_segmentation.tflite", 1: "selfie_segmentation_landscape.tflite"}
MODEL_NAMES = {0: "general 256x256", 1: "landscape 144x256"}


def _status_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return -1


def _cpu() -> int | None:
    try:
        with open("/proc/thread-self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("frames", type=Path)
    parser.add_argument("--model-selection", type=int, choices=(0, 1), default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--min-frames", type=int, default=30)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.min_frames < 1 or args.min_seconds < 0:
        print("peer_mediapipe: --warmup >= 0, --min-frames >= 1 and --min-seconds >= 0 please", file=sys.stderr)
        return 2
    import cv2
    import mediapipe as mp
    import numpy as np

    try:
        data = np.load(args.frames, allow_pickle=False)
        buffers = data["buffers"]
        layout, width, height = str(data["layout"]), int(data["width"]), int(data["height"])
    except (OSError, KeyError, ValueError) as e:
        print(f"peer_mediapipe: cannot read {args.frames}: {e}", file=sys.stderr)
        return 2
    codes = {"nv21": cv2.COLOR_YUV2RGB_NV21, "nv12": cv2.COLOR_YUV2RGB_NV12}
    if layout not in codes or buffers.ndim != 2 or buffers.shape[1] != width * height * 3 // 2:
        print(f"peer_mediapipe: {args.frames}: want packed nv21/nv12 buffers of {width}x{height}", file=sys.stderr)
        return 2
    model_file = Path(mp.__file__).parent / "modules" / "selfie_segmentation" / MODEL_FILES[args.model_selection]
    baseline = _status_kb("VmRSS")
    t0 = time.perf_counter()
    seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=args.model_selection)
    # The graph starts lazily: the first frame pays for it, so it counts as part of loading.
    first = cv2.cvtColor(buffers[0].reshape(height * 3 // 2, width), codes[layout])
    seg.process(first)
    load_ms = (time.perf_counter() - t0) * 1e3

    def frame(k: int):
        rgb = cv2.cvtColor(buffers[k].reshape(height * 3 // 2, width), codes[layout])
        mask = seg.process(rgb).segmentation_mask
        return np.asarray(mask, dtype=np.float32)

    for _ in range(args.warmup):
        frame(0)
    e2e_ms: list[float] = []
    cores: dict[str, int] = {}
    timed = 0.0
    i = 0
    while len(e2e_ms) < args.min_frames or timed < args.min_seconds * 1e3:
        t = time.perf_counter()
        mask = frame(i % len(buffers))
        ms = (time.perf_counter() - t) * 1e3
        if mask.shape != (height, width):
            print(f"peer_mediapipe: mask {mask.shape}, want {(height, width)}", file=sys.stderr)
            return 3
        e2e_ms.append(ms)
        timed += ms
        cpu = _cpu()
        if cpu is not None:
            cores[str(cpu)] = cores.get(str(cpu), 0) + 1
        i += 1
    seg.close()
    report = {
        "load_ms": load_ms,
        "e2e_ms": e2e_ms,
        "cores": cores,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "baseline_rss_kb": baseline,
        "mediapipe": mp.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "model": f"MediaPipe selfie segmentation ({MODEL_NAMES[args.model_selection]})",
        "model_file": model_file.name,
        "model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
        "model_size_bytes": model_file.stat().st_size,
    }
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
