"""Pseudo-label frames with MediaPipe's selfie segmenter (the teacher) and cache the soft masks.

Runs with the TEACHER virtual environment's python (``.venv-teacher``, made by ``make teacher``):
``mediapipe==0.10.21`` needs numpy<2 and protobuf<5, so this script imports nothing from
backdrop and only needs mediapipe, numpy and OpenCV.

    .venv-teacher/bin/python scripts/teacher_labels.py INPUT --out CACHE.npz [--model-selection 0|1]

INPUT is a video file, a folder of images (sorted by name) or one image. Video frames are fed
to one segmenter instance in order (as a camera would); every image gets a fresh instance.

Cache format (``np.savez_compressed``, loadable with ``np.load`` without pickle; read by
``backdrop.models.data.load_teacher_cache``):

- ``format``: 0-d str ``"backdrop-teacher-labels"``; ``format_version``: 0-d int64, 1.
- ``num_frames``: 0-d int64, N.
- ``mask_00000`` ... ``mask_{N-1:05d}``: float32 (H_i, W_i), the teacher's soft person
  probability in [0, 1] at the frame's own size.
- ``frame_names``: str (N,): ``frame_00012`` for video frames, file names for images.
- ``frame_sizes``: int32 (N, 2), (height, width).
- ``meta_json``: 0-d str, JSON: teacher name, mediapipe version, model selection, model file
  and its sha256, input path, numpy/OpenCV versions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

FORMAT = "backdrop-teacher-labels"
FORMAT_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MODEL_FILES = {
    0: "selfie_segmentation.tflite",  # "general": 256x256 input
    1: "selfie_segmentation_landscape.tflite",  # "landscape": 144x256 input
}
MODEL_NAMES = {0: "general 256x256", 1: "landscape 144x256"}


class TeacherError(Exception):
    """Bad input or a broken teacher environment; printed as one line."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _frames(path: Path, max_frames: int | None):
    """Yield (name, bgr uint8 (H, W, 3), is_video) in order."""
    import cv2

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise TeacherError(f"No images in {path} (looked for {', '.join(IMAGE_SUFFIXES)}).")
        paths = files[:max_frames]
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        paths = [path]
    else:
        paths = None
    if paths is not None:
        for p in paths:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise TeacherError(f"Could not read image {p}.")
            yield p.name, img, False
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise TeacherError(f"Could not open {path} as a video or image.")
    try:
        i = 0
        while max_frames is None or i < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            yield f"frame_{i:05d}", bgr, True
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise TeacherError(f"{path} holds no decodable frames.")


def label(input_path: Path, out: Path, model_selection: int = 0, max_frames: int | None = None) -> dict:
    """Run the teacher over ``input_path`` and write the cache ``out`` atomically.

    Returns:
        The metadata dict written into the cache.
    """
    import cv2
    import numpy as np

    try:
        import mediapipe as mp
    except ImportError as e:
        raise TeacherError(
            f"mediapipe is not importable from {sys.executable} ({e}). Run this script with the teacher "
            "venv's python: `make teacher` creates .venv-teacher."
        ) from e
    if model_selection not in MODEL_FILES:
        raise TeacherError(f"--model-selection must be 0 (general) or 1 (landscape), got {model_selection}.")
    if not input_path.exists():
        raise TeacherError(f"Input not found: {input_path}.")
    model_file = Path(mp.__file__).parent / "modules" / "selfie_segmentation" / MODEL_FILES[model_selection]
    if not model_file.is_file():
        raise TeacherError(f"The mediapipe wheel lacks {model_file}; install mediapipe==0.10.21 (newer wheels do not bundle it).")
    seg_cls = mp.solutions.selfie_segmentation.SelfieSegmentation
    masks, names, sizes = [], [], []
    video_seg = None
    try:
        for name, bgr, is_video in _frames(input_path, max_frames):
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if is_video:
                if video_seg is None:
                    video_seg = seg_cls(model_selection=model_selection)
                res = video_seg.process(rgb)
            else:
                with seg_cls(model_selection=model_selection) as seg:
                    res = seg.process(rgb)
            m = np.asarray(res.segmentation_mask, dtype=np.float32)
            if m.shape != bgr.shape[:2]:
                raise TeacherError(f"Teacher mask for {name} is {m.shape}, frame is {bgr.shape[:2]}.")
            masks.append(np.clip(m, 0.0, 1.0))
            names.append(name)
            sizes.append(bgr.shape[:2])
    finally:
        if video_seg is not None:
            video_seg.close()
    meta = {
        "teacher": f"MediaPipe selfie segmentation ({MODEL_NAMES[model_selection]})",
        "teacher_api": "mp.solutions.selfie_segmentation",
        "mediapipe_version": mp.__version__,
        "model_selection": model_selection,
        "model_file": MODEL_FILES[model_selection],
        "model_sha256": _sha256(model_file),
        "input": str(input_path),
        "input_name": input_path.name,
        "num_frames": len(masks),
        "numpy_version": np.__version__,
        "opencv_version": cv2.__version__,
        "note": "video frames run in order through one segmenter instance; each image through a fresh one",
    }
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "num_frames": np.array(len(masks), dtype=np.int64),
        "frame_names": np.array(names, dtype=str),
        "frame_sizes": np.array(sizes, dtype=np.int32).reshape(-1, 2),
        "meta_json": np.array(json.dumps(meta, sort_keys=True)),
    }
    for i, m in enumerate(masks):
        arrays[f"mask_{i:05d}"] = m
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".npz", dir=out.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", type=Path, help="video file, folder of images, or one image")
    ap.add_argument("--out", type=Path, required=True, help="cache .npz to write")
    ap.add_argument("--model-selection", type=int, default=0, choices=(0, 1), help="0 general 256x256, 1 landscape 144x256")
    ap.add_argument("--max-frames", type=int, default=None)
    args = ap.parse_args(argv)
    try:
        meta = label(args.input, args.out, args.model_selection, args.max_frames)
    except TeacherError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), "num_frames": meta["num_frames"], "teacher": meta["teacher"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
