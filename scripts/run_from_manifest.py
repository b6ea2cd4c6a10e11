#!/usr/bin/env python
"""Run an exported target the way app code would, knowing only its manifest.

This is the model for app-side code (Kotlin, Swift): its camera-buffer, bucket, state and
mask-back code imports nothing from backdrop. Everything it needs comes from
``dist/<target>/manifest.json`` and the specs that manifest points to (docs/frames.md,
docs/buckets.md, docs/manifest.md). The one thing it takes from backdrop is what an app takes
from the runtime's own library: loading a file into its runtime, through the format registry
(``Format.load``), so that every format whose runtime loads on this machine is run and the
others are listed as skipped with the format's reason. For every such artifact in the
manifest it takes the bucket's golden sequence, and per frame:

1. decodes the camera buffer (NV21 or NV12, ``camera.format``) to YUV444 with nearest chroma
   upsampling, BT.601 full range;
2. picks the bucket (nearest aspect ratio among ``buckets``, exact integer comparison, 2x limit)
   and the placement (integer scaled size, centred padding, odd pixel bottom/right);
3. makes the model input: Y, U, V / 255 in float32, bilinear resize with half-pixel centres
   (integer taps, one float32 weight, rows first, no fused multiply-add), replicate padding;
4. runs the artifact with the manifest's state contract: explicit -> zeros as ``prev_mask``
   after a reset, else the previous ``next_mask``; native -> ``reset`` = 1.0 / 0.0;
5. crops the padding off ``mask`` and resizes it bilinearly back to the camera frame;

then compares the mask with the golden's ``expected_camera_masks``: the IoU of the masks
thresholded at the manifest's ``threshold`` must be at least ``--min-iou`` on every frame
(default: the per-frame IoU floor the export verified the artifact to, its
``details.parity.thresholds.min_iou``: 0.99 for float artifacts, lower for int8, which is
compared with the float reference's masks; 0.99 where the manifest does not say). Resets
happen where the golden's ``resets`` says (the first frame and a mid-sequence scene cut), as
an app resets on a first frame, scene cut or camera switch.

Dependencies: json, numpy, the standard library, and backdrop's format registry for the
runtimes.

Usage:
    python scripts/run_from_manifest.py dist/android-arm64 [--min-iou IOU]

Exit status: 0 every artifact reproduced the goldens; 1 some frame missed (the message names
artifact, frame and IoU); 2 the folder, manifest, golden or an artifact cannot be used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

MAX_ASPECT_FACTOR = 2
KNOWN_SCHEMA_MAJOR = "1"


class UsageError(Exception):
    """The target folder cannot be used as given (exit status 2)."""


# ---------------------------------------------------------------------------------------------
# Camera buffer -> YUV444 (docs/frames.md)
# ---------------------------------------------------------------------------------------------


def decode_semi_planar(buf: np.ndarray, width: int, height: int, camera_format: str) -> np.ndarray:
    """Packed NV21 (Y, then V U pairs) or NV12 (Y, then U V pairs) -> uint8 (H, W, 3) Y, U, V.

    Chroma is upsampled by nearest neighbour: pixel (r, c) takes sample (r // 2, c // 2).
    """
    cw, ch = (width + 1) // 2, (height + 1) // 2
    expected = width * height + 2 * cw * ch
    if buf.size != expected:
        raise UsageError(f"{camera_format} buffer has {buf.size} bytes; a {width}x{height} frame needs {expected}.")
    y = buf[: width * height].reshape(height, width)
    c = buf[width * height :].reshape(ch, cw, 2)
    u, v = (c[:, :, 1], c[:, :, 0]) if camera_format == "nv21" else (c[:, :, 0], c[:, :, 1])
    out = np.empty((height, width, 3), np.uint8)
    out[:, :, 0] = y
    out[:, :, 1] = np.repeat(np.repeat(u, 2, axis=0), 2, axis=1)[:height, :width]
    out[:, :, 2] = np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)[:height, :width]
    return out


# ---------------------------------------------------------------------------------------------
# The bucket rule (docs/buckets.md), from the manifest's bucket fields only
# ---------------------------------------------------------------------------------------------


def select_bucket(height: int, width: int, buckets: list[dict]) -> dict:
    """The bucket of smallest aspect distortion p/q (exact integers); ties keep the earlier."""
    best, best_p, best_q = None, 0, 1
    for b in buckets:
        a, c = width * b["height"], height * b["width"]
        p, q = max(a, c), min(a, c)
        if best is None or p * best_q < best_p * q:
            best, best_p, best_q = b, p, q
    if best_p > MAX_ASPECT_FACTOR * best_q:
        raise UsageError(f"frame {height}x{width} is more than {MAX_ASPECT_FACTOR}x off every bucket")
    return best


def place(height: int, width: int, hb: int, wb: int) -> tuple[int, int, int, int]:
    """(scaled_h, scaled_w, pad_top, pad_left) of an h x w frame in an Hb x Wb bucket."""
    if hb * width <= wb * height:
        sh, sw = hb, min(max((2 * width * hb + height) // (2 * height), 1), wb)
    else:
        sh, sw = min(max((2 * height * wb + width) // (2 * width), 1), hb), wb
    return sh, sw, (hb - sh) // 2, (wb - sw) // 2


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.arange(n_out, dtype=np.int64)
    den = 2 * n_out
    num = np.maximum((2 * d + 1) * n_in - n_out, 0)
    i0 = num // den
    f = (num - i0 * den).astype(np.float32) / np.float32(den)
    last = i0 >= n_in - 1
    i0 = np.where(last, n_in - 1, i0)
    f = np.where(last, np.float32(0), f).astype(np.float32)
    return i0, np.minimum(i0 + 1, n_in - 1), f


def resize_bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """float32 bilinear resize, half-pixel centres, rows first; (H, W) or (H, W, C)."""
    src = img.astype(np.float32, copy=False)
    y0, y1, fy = _taps(src.shape[0], out_h)
    x0, x1, fx = _taps(src.shape[1], out_w)
    if src.ndim == 3:
        fx, fy = fx[:, None], fy[:, None, None]
    else:
        fy = fy[:, None]
    a = src[:, x0]
    rows = a + fx * (src[:, x1] - a)
    t0 = rows[y0]
    return np.ascontiguousarray(t0 + fy * (rows[y1] - t0), dtype=np.float32)


def to_bucket(img: np.ndarray, hb: int, wb: int, placement: tuple[int, int, int, int]) -> np.ndarray:
    """Resize into the placement and replicate-pad to Hb x Wb."""
    sh, sw, top, left = placement
    scaled = resize_bilinear(img, sh, sw)
    rows = np.clip(np.arange(hb) - top, 0, sh - 1)
    cols = np.clip(np.arange(wb) - left, 0, sw - 1)
    return scaled[rows][:, cols]


def from_bucket(mask: np.ndarray, height: int, width: int, placement: tuple[int, int, int, int]) -> np.ndarray:
    """Crop the padding and resize back to the frame's height x width."""
    sh, sw, top, left = placement
    return resize_bilinear(mask[top : top + sh, left : left + sw], height, width)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


# ---------------------------------------------------------------------------------------------
# Runtimes: one call per frame, inputs and outputs in the manifest's order
# ---------------------------------------------------------------------------------------------


def why_not_runnable(art: dict) -> str:
    """Why this machine's runtimes cannot load ``art`` ("" when they can), from its format."""
    from backdrop.core.buckets import Bucket
    from backdrop.core.errors import RegistryError
    from backdrop.export.artifact import artifact_from_manifest
    from backdrop.export.formats import FORMATS

    try:
        fmt = FORMATS.for_kind(art["format"])
    except RegistryError as e:
        return str(e)
    return fmt.why_not_here(artifact_from_manifest(art, Path("."), Bucket(art["bucket"], 1, 1)))


def runtime_runner(path: Path, art: dict, bucket: dict):
    """The format's loader: one call per frame, inputs and outputs in the manifest's order."""
    from backdrop.core.buckets import Bucket
    from backdrop.core.errors import BackdropError
    from backdrop.export.artifact import artifact_from_manifest
    from backdrop.export.formats import FORMATS

    artifact = artifact_from_manifest(art, path.parent, Bucket(bucket["name"], bucket["height"], bucket["width"]))
    artifact.path = path
    try:
        return FORMATS.for_kind(art["format"]).load(artifact)
    except BackdropError as e:
        raise UsageError(str(e)) from e


# ---------------------------------------------------------------------------------------------
# One artifact over its golden
# ---------------------------------------------------------------------------------------------

GOLDEN_KEYS = ("camera_buffers", "camera_size", "camera_format", "resets", "expected_camera_masks", "frame_names")


def load_golden(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in GOLDEN_KEYS if k not in z.files]
            if missing:
                raise UsageError(f"golden {path} lacks {missing}; re-run the export")
            g = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise UsageError(f"golden {path} is not a readable .npz ({e}); re-run the export") from e
    n = len(g["resets"])
    h, w = (int(v) for v in g["camera_size"])
    if g["camera_buffers"].shape[0] != n or g["expected_camera_masks"].shape != (n, h, w):
        raise UsageError(
            f"golden {path}: {g['camera_buffers'].shape[0]} buffers, {n} resets and expected masks "
            f"{g['expected_camera_masks'].shape} do not describe one {h}x{w} sequence"
        )
    return g


def check_artifact(root: Path, manifest: dict, art: dict, min_iou: float) -> tuple[bool, str]:
    """Run one artifact over its bucket's golden. Returns (passed, one-line report)."""
    key = art.get("key") or f"{art['bucket']}/{art['format']}-{art['precision']}-{art['state_form']}"
    path = root / art["path"]
    if not path.is_file():
        raise UsageError(f"{key}: artifact {path} is missing")
    if "sha256" in art:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != art["sha256"]:
            raise UsageError(f"{key}: {path} has sha256 {digest}, the manifest says {art['sha256']}")
    buckets = manifest["buckets"]
    bucket = next((b for b in buckets if b["name"] == art["bucket"]), None)
    if bucket is None:
        raise UsageError(f"{key}: bucket {art['bucket']!r} is not in the manifest's buckets")
    if art["bucket"] not in manifest.get("goldens", {}):
        raise UsageError(f"{key}: the manifest has no golden for bucket {art['bucket']!r}")
    g = load_golden(root / manifest["goldens"][art["bucket"]])
    camera_format = manifest["camera"]["format"]
    if str(g["camera_format"]) != camera_format:
        raise UsageError(f"{key}: golden buffers are {g['camera_format']}, the manifest's camera says {camera_format}")
    threshold = float(manifest.get("threshold", 0.5))
    state_form = art["state_form"]
    inputs = {s["name"]: s for s in art["inputs"]}
    outputs = [s["name"] for s in art["outputs"]]
    roles = {"explicit": (["frame", "prev_mask"], ["mask", "next_mask"]), "native": (["frame", "reset"], ["mask"])}
    if state_form not in roles or sorted(inputs) != sorted(roles[state_form][0]) or outputs != roles[state_form][1]:
        raise UsageError(
            f"{key}: state_form {state_form!r} with inputs {list(inputs)} and outputs {outputs} is not a known contract"
        )
    order = [s["name"] for s in art["inputs"]]
    dtype = {name: np.dtype(spec["dtype"]) for name, spec in inputs.items()}
    hb, wb = bucket["height"], bucket["width"]
    if list(inputs["frame"]["shape"]) != [1, 3, hb, wb]:
        raise UsageError(f"{key}: input frame has shape {inputs['frame']['shape']}, bucket is {hb}x{wb}")
    run = runtime_runner(path, art, bucket)

    h, w = (int(v) for v in g["camera_size"])
    chosen = select_bucket(h, w, buckets)
    if chosen["name"] != bucket["name"]:
        raise UsageError(f"{key}: a {h}x{w} golden frame selects bucket {chosen['name']}, not {bucket['name']}")
    placement = place(h, w, hb, wb)
    state = None
    worst, worst_frame = 1.0, 0
    for i in range(len(g["resets"])):
        yuv = decode_semi_planar(g["camera_buffers"][i], w, h, camera_format)
        # Divide by 255 first, then resize and pad (the reference's order, docs/manifest.md).
        planes = to_bucket(yuv.astype(np.float32) / np.float32(255.0), hb, wb, placement)
        frame = np.ascontiguousarray(planes.transpose(2, 0, 1)[None]).astype(dtype["frame"])
        reset = bool(g["resets"][i])
        if state_form == "explicit":
            if reset or state is None:
                state = np.zeros(inputs["prev_mask"]["shape"], dtype["prev_mask"])
            feed = {"frame": frame, "prev_mask": state}
        else:
            feed = {"frame": frame, "reset": np.full(inputs["reset"]["shape"], 1.0 if reset else 0.0, dtype["reset"])}
        try:
            outs = dict(zip(outputs, run([feed[n] for n in order])))
        except Exception as e:  # the runtimes raise their own exception types
            return False, f"FAIL {key}: frame {i}: the runtime raised {type(e).__name__}: {e}"
        if state_form == "explicit":
            state = np.asarray(outs["next_mask"]).astype(dtype["prev_mask"])
        mask = np.asarray(outs["mask"], dtype=np.float32).reshape(hb, wb)
        camera_mask = from_bucket(mask, h, w, placement)
        score = iou(camera_mask >= threshold, g["expected_camera_masks"][i] >= threshold)
        if score < worst:
            worst, worst_frame = score, i
        if not score >= min_iou:
            name = str(g["frame_names"][i])
            return False, (
                f"FAIL {key}: frame {i} ({name}{', after a reset' if reset else ''}): IoU {score:.4f} "
                f"< {min_iou} against the golden's expected_camera_masks"
            )
    return True, f"ok   {key}: {len(g['resets'])} frames, min IoU {worst:.4f} (frame {worst_frame})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", type=Path, help="the target folder, e.g. dist/android-arm64")
    parser.add_argument("--min-iou", type=float, default=None,
                        help="per-frame mask IoU to reach (default: each artifact's parity floor in the manifest, else 0.99)")
    args = parser.parse_args(argv)
    root = args.target
    try:
        try:
            manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"{root / 'manifest.json'} does not exist; pass a folder written by `backdrop export`") from None
        except json.JSONDecodeError as e:
            raise UsageError(f"{root / 'manifest.json'} is not JSON ({e})") from e
        major = str(manifest.get("schema_version", KNOWN_SCHEMA_MAJOR)).split(".")[0]
        if major != KNOWN_SCHEMA_MAJOR:
            raise UsageError(f"manifest schema_version {manifest['schema_version']} is not {KNOWN_SCHEMA_MAJOR}.x")
        for field in ("buckets", "goldens", "camera", "artifacts"):
            if field not in manifest:
                raise UsageError(f"manifest lacks {field!r}")
        camera = manifest["camera"]
        if camera.get("format") not in ("nv21", "nv12") or camera.get("color", "bt601-full") != "bt601-full":
            raise UsageError(f"camera {camera} is not nv21/nv12 bt601-full")
        results = []
        for art in manifest["artifacts"]:
            why = why_not_runnable(art)
            if why:
                print(f"skip {art.get('key', art['path'])}: {why}", file=sys.stderr)
                continue
            floor = args.min_iou if args.min_iou is not None else float(
                art.get("details", {}).get("parity", {}).get("thresholds", {}).get("min_iou", 0.99))
            results.append(check_artifact(root, manifest, art, floor))
            print(results[-1][1], flush=True)
        if not results:
            raise UsageError("no artifact in the manifest can run on this machine; nothing was checked")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyError as e:
        print(f"error: the manifest lacks field {e} (docs/manifest.md lists every field)", file=sys.stderr)
        return 2
    failed = [msg for ok, msg in results if not ok]
    if failed:
        print(f"{len(failed)} of {len(results)} artifacts did not reproduce the goldens:", file=sys.stderr)
        for msg in failed:
            print(f"  {msg}", file=sys.stderr)
        return 1
    floors = "each artifact's parity floor" if args.min_iou is None else args.min_iou
    print(f"all {len(results)} artifacts reproduce the golden masks (IoU >= {floors} on every frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
