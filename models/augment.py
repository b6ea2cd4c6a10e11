"""Training-sample synthesis: composites, geometry, photometry, bucket placement, prev-mask errors.

One training sample for a bucket of (training) size ``H_b x W_b``:

1. a *scene* canvas with an aspect ratio near the bucket's (jittered, so padding varies);
2. a person frame (image + teacher soft mask) warped into it with a random scale, position,
   small rotation and horizontal flip; with probability ``composite_prob`` it is cut out by its
   soft mask and pasted over a background frame (which keeps its own teacher label:
   ``label = a + (1 - a) * bg_label``); otherwise the frame is just zoomed/shifted in place;
   with probability ``background_only_prob`` the scene is a background frame alone;
3. colour, contrast, gamma, low-light (dark + sensor noise) and blur changes, in RGB;
4. RGB -> YUV (BT.601 full range, :func:`backdrop.core.frames.rgb_to_yuv`), then the bucket
   placement of the real pipeline (:func:`backdrop.core.buckets.plan` / :func:`~backdrop.core.buckets.to_bucket`:
   bilinear resize + replicate padding), applied to the image and the label alike;
5. the 4th channel ("detect-with-mask", :func:`synthesize_prev_mask`): zeros (a first frame)
   with probability ``empty_prob``, else the label degraded the way a real previous mask is
   wrong: shifted and rescaled (motion), eroded or dilated, with spurious blobs added or holes
   cut, blurred; rarely an unrelated mask, so the network learns to recover from garbage.

Every function takes an explicit ``numpy.random.Generator``: a sample is a pure function of
its seed, which makes training reproducible and resumable.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from backdrop.core.buckets import Bucket, plan, to_bucket
from backdrop.core.errors import ConfigError
from backdrop.core.frames import rgb_to_yuv
from backdrop.models.data import Sample


def _from_dict(cls, d: dict, what: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"Unknown {what} keys {unknown}. Valid: {sorted(known)}.")
    return cls(**d)


def _check_prob(obj, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{type(obj).__name__}.{n} must be a probability in [0, 1], got {v}.")


@dataclass(frozen=True)
class AugmentConfig:
    """Scene synthesis and photometric augmentation.

    Attributes:
        composite_prob: paste the person cut-out onto a background frame.
        background_only_prob: the sample is a background frame alone (mostly "no person").
        aspect_jitter: scene aspect = bucket aspect * exp(U(-j, j)) (varies the padding).
        zoom_in: (min, max) zoom of a person frame kept in place (>= 1 crops in).
        zoom_composite: (min, max) scale of a pasted person relative to filling the scene.
        max_shift: translation of a pasted person, fraction of the scene size.
        max_rotation_deg: rotation range, degrees.
        flip_prob: horizontal flip.
        anchor_bottom_prob: a pasted person keeps its frame's bottom edge at the scene bottom
            (a torso does not float).
        brightness: (min, max) gain; contrast: (min, max) around the mean; gamma: (min, max);
        channel_gain: per-RGB-channel gain range around 1 (white balance).
        low_light_prob: darken to ``low_light_gain`` and add sensor noise.
        low_light_gain: (min, max) gain of a low-light sample.
        noise_prob / noise_sigma: additive Gaussian noise (levels of 255).
        blur_prob: Gaussian blur (defocus, motion-ish).
        crowd_prob: paste 1..``crowd_max`` more person cut-outs (other training people) into a
            composite, smaller and standing on the bottom edge at random places, later ones in
            front (groups of 2-6); ``crowd_zoom`` is their scale range.
        occluder_prob: a background patch (ellipse or rectangle) in front of the people, its
            label that of the background (a held object, a chair back, a laptop lid).
        motion_blur_prob: a linear motion blur (5-11 px, any direction).
        jpeg_prob / jpeg_quality: JPEG compression at a quality in the range (a video call's codec).
        colour_cast_prob / colour_cast: a strong white-balance error (per-channel gain up to this).
    All five default to 0, so configs written before them reproduce their samples exactly.
    """

    composite_prob: float = 0.5
    background_only_prob: float = 0.08
    aspect_jitter: float = 0.2
    zoom_in: tuple[float, float] = (1.0, 1.35)
    zoom_composite: tuple[float, float] = (0.45, 1.15)
    max_shift: float = 0.3
    max_rotation_deg: float = 8.0
    flip_prob: float = 0.5
    anchor_bottom_prob: float = 0.7
    brightness: tuple[float, float] = (0.65, 1.3)
    contrast: tuple[float, float] = (0.6, 1.3)
    gamma: tuple[float, float] = (0.7, 1.4)
    channel_gain: float = 0.15
    low_light_prob: float = 0.15
    low_light_gain: tuple[float, float] = (0.15, 0.45)
    noise_prob: float = 0.3
    noise_sigma: tuple[float, float] = (1.0, 6.0)
    blur_prob: float = 0.15
    crowd_prob: float = 0.0
    crowd_max: int = 5
    crowd_zoom: tuple[float, float] = (0.3, 0.75)
    occluder_prob: float = 0.0
    motion_blur_prob: float = 0.0
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[float, float] = (20.0, 70.0)
    colour_cast_prob: float = 0.0
    colour_cast: float = 0.35

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                object.__setattr__(self, f.name, tuple(float(x) for x in v))
        _check_prob(self, "composite_prob", "background_only_prob", "flip_prob", "anchor_bottom_prob",
                    "low_light_prob", "noise_prob", "blur_prob", "crowd_prob", "occluder_prob", "motion_blur_prob",
                    "jpeg_prob", "colour_cast_prob")
        if self.crowd_max < 1:
            raise ConfigError(f"AugmentConfig.crowd_max must be >= 1, got {self.crowd_max}.")
        for n in ("zoom_in", "zoom_composite", "brightness", "contrast", "gamma", "low_light_gain", "noise_sigma",
                  "crowd_zoom", "jpeg_quality"):
            lo, hi = getattr(self, n)
            if not 0 <= lo <= hi:
                raise ConfigError(f"AugmentConfig.{n} must be a (min, max) pair with 0 <= min <= max, got {(lo, hi)}.")

    @classmethod
    def from_dict(cls, d: dict) -> AugmentConfig:
        return _from_dict(cls, d, "augment")


@dataclass(frozen=True)
class PrevMaskConfig:
    """Synthesis of the 4th input channel (the previous frame's mask) from the current label.

    Attributes:
        enabled: False trains without mask feedback (channel 3 always zeros): the ablation.
        empty_prob: a first frame (all zeros).
        garbage_prob: an unrelated mask (random ellipses), to learn to recover.
        max_shift: motion between frames, fraction of the bucket side (uniform +-).
        max_scale: relative size change (uniform +-).
        max_morph: erosion/dilation radius, fraction of the bucket diagonal.
        blob_prob: add 1-3 spurious blobs; hole_prob: cut 1-2 holes.
        blur_prob: soften the mask edge (previous masks are probabilities).
        mild_prob: of the degraded masks, this share gets only frame-to-frame-sized errors
            (shift and scale / 4, erosion/dilation / 4, no blobs or holes): a good previous
            mask, as in steady tracking, so the network learns to keep what is stable.
    """

    enabled: bool = True
    empty_prob: float = 0.25
    garbage_prob: float = 0.05
    max_shift: float = 0.06
    max_scale: float = 0.08
    max_morph: float = 0.025
    blob_prob: float = 0.3
    hole_prob: float = 0.15
    blur_prob: float = 0.5
    mild_prob: float = 0.0

    def __post_init__(self) -> None:
        _check_prob(self, "empty_prob", "garbage_prob", "blob_prob", "hole_prob", "blur_prob", "mild_prob")

    @classmethod
    def from_dict(cls, d: dict) -> PrevMaskConfig:
        return _from_dict(cls, d, "prev_mask")


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def scene_size(bucket: Bucket, rng: np.random.Generator, jitter: float) -> tuple[int, int]:
    """A scene (frame) size whose aspect is near the bucket's; the limiting side equals the bucket's."""
    a = bucket.aspect * math.exp(rng.uniform(-jitter, jitter))
    if a >= bucket.aspect:  # wider than the bucket: width limits
        return max(8, round(bucket.width / a)), bucket.width
    return bucket.height, max(8, round(bucket.height * a))


def _affine(src_hw: tuple[int, int], dst_hw: tuple[int, int], zoom: float, shift: tuple[float, float],
            rot_deg: float, flip: bool, anchor_bottom: bool) -> np.ndarray:
    """2x3 matrix mapping source pixels into the destination (cover-fit * zoom, then shift)."""
    sh, sw = src_hw
    dh, dw = dst_hw
    s = max(dh / sh, dw / sw) * zoom
    m = cv2.getRotationMatrix2D((sw / 2.0, sh / 2.0), rot_deg, s)
    if flip:
        m = m @ np.array([[-1, 0, sw], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    # centre the scaled source on the destination, then shift
    m[0, 2] += dw / 2.0 - sw / 2.0 + shift[1] * dw
    m[1, 2] += dh / 2.0 - sh / 2.0 + shift[0] * dh
    if anchor_bottom:  # put the source's bottom edge on the destination's bottom edge
        bottom = m[1, 0] * (sw / 2.0) + m[1, 1] * sh + m[1, 2]
        m[1, 2] += max(dh - bottom, 0.0)
    return m


def _warp(img: np.ndarray, m: np.ndarray, hw: tuple[int, int], border: int) -> np.ndarray:
    return cv2.warpAffine(img, m, (hw[1], hw[0]), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)


def _background(bg: Sample, hw: tuple[int, int], rng: np.random.Generator, flip_prob: float) -> tuple[np.ndarray, np.ndarray]:
    zoom = rng.uniform(1.0, 1.6)
    shift = (rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2))
    m = _affine(bg.rgb.shape[:2], hw, zoom, shift, 0.0, bool(rng.random() < flip_prob), False)
    rgb = _warp(bg.rgb, m, hw, cv2.BORDER_REFLECT)
    lab = _warp(bg.label, m, hw, cv2.BORDER_REFLECT)
    return rgb, lab


def _paste(rgb: np.ndarray, lab: np.ndarray, person: Sample, m: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    fg = _warp(person.rgb, m, hw, cv2.BORDER_CONSTANT).astype(np.float32)
    alpha = np.clip(_warp(person.label, m, hw, cv2.BORDER_CONSTANT), 0.0, 1.0)
    a = alpha[:, :, None]
    out = np.clip(a * fg + (1.0 - a) * rgb.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)
    return out, (alpha + (1.0 - alpha) * lab).astype(np.float32)


def _crowd(rgb: np.ndarray, lab: np.ndarray, crowd: list[Sample], hw: tuple[int, int], rng: np.random.Generator,
           cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """More people: each smaller, on the bottom edge, at a random horizontal place; later in front."""
    for extra in crowd:
        zoom = _u(rng, cfg.crowd_zoom)
        shift = (rng.uniform(0.0, 0.15), rng.uniform(-0.45, 0.45))
        m = _affine(extra.rgb.shape[:2], hw, zoom, shift, rng.uniform(-5, 5), bool(rng.random() < 0.5), True)
        rgb, lab = _paste(rgb, lab, extra, m, hw)
    return rgb, lab


def _occlude(rgb: np.ndarray, lab: np.ndarray, background: Sample, hw: tuple[int, int],
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A background patch in front: an ellipse or a rectangle, 8-35 % of the scene side."""
    h, w = hw
    bg_rgb, bg_lab = _background(background, hw, rng, 0.5)
    shape = np.zeros((h, w), np.uint8)
    c = (int(rng.integers(0, w)), int(rng.integers(h // 3, h)))
    ax = (max(2, int(rng.uniform(0.08, 0.35) * w)), max(2, int(rng.uniform(0.08, 0.35) * h)))
    if rng.random() < 0.5:
        cv2.ellipse(shape, c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        cv2.rectangle(shape, (c[0] - ax[0], c[1] - ax[1] // 2), (c[0] + ax[0], c[1] + ax[1] // 2), 1, -1)
    o = cv2.GaussianBlur(shape.astype(np.float32), (3, 3), 0)
    rgb = np.clip(o[:, :, None] * bg_rgb + (1.0 - o[:, :, None]) * rgb + 0.5, 0, 255).astype(np.uint8)
    return rgb, (o * bg_lab + (1.0 - o) * lab).astype(np.float32)


def make_scene(person: Sample, background: Sample, hw: tuple[int, int], rng: np.random.Generator,
               cfg: AugmentConfig, crowd: list[Sample] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The scene before photometry: uint8 RGB (h, w, 3) and float32 label (h, w).

    ``crowd``: candidate extra people for ``crowd_prob`` (a draw picks 1..crowd_max of them).
    """
    rgb, lab = _scene(person, background, hw, rng, cfg, crowd)
    if cfg.occluder_prob > 0 and rng.random() < cfg.occluder_prob:
        rgb, lab = _occlude(rgb, lab, background, hw, rng)
    return rgb, lab


def _scene(person: Sample, background: Sample, hw: tuple[int, int], rng: np.random.Generator,
           cfg: AugmentConfig, crowd: list[Sample] | None) -> tuple[np.ndarray, np.ndarray]:
    r = rng.random()
    if r < cfg.background_only_prob:
        rgb, lab = _background(background, hw, rng, cfg.flip_prob)
        return rgb, lab
    flip = bool(rng.random() < cfg.flip_prob)
    rot = rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)
    if rng.random() < cfg.composite_prob:
        zoom = _u(rng, cfg.zoom_composite)
        shift = (rng.uniform(-cfg.max_shift, cfg.max_shift), rng.uniform(-cfg.max_shift, cfg.max_shift))
        m = _affine(person.rgb.shape[:2], hw, zoom, shift, rot, flip, bool(rng.random() < cfg.anchor_bottom_prob))
        bg_rgb, bg_lab = _background(background, hw, rng, cfg.flip_prob)
        if crowd and cfg.crowd_prob > 0 and rng.random() < cfg.crowd_prob:
            n = int(rng.integers(1, cfg.crowd_max + 1))
            extras = [crowd[int(rng.integers(len(crowd)))] for _ in range(n)]
            behind = int(rng.integers(0, n + 1))  # some behind the main person, the rest in front
            bg_rgb, bg_lab = _crowd(bg_rgb, bg_lab, extras[:behind], hw, rng, cfg)
            rgb, lab = _paste(bg_rgb, bg_lab, person, m, hw)
            return _crowd(rgb, lab, extras[behind:], hw, rng, cfg)
        return _paste(bg_rgb, bg_lab, person, m, hw)
    zoom = _u(rng, cfg.zoom_in)
    slack = (zoom - 1.0) / (2.0 * zoom) + 0.03
    shift = (rng.uniform(-slack, slack), rng.uniform(-slack, slack))
    m = _affine(person.rgb.shape[:2], hw, zoom, shift, rot, flip, False)
    rgb = _warp(person.rgb, m, hw, cv2.BORDER_REPLICATE)
    lab = _warp(person.label, m, hw, cv2.BORDER_REPLICATE)
    return rgb, lab.astype(np.float32)


def photometric(rgb: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Colour, contrast, gamma, low light, noise and blur on uint8 RGB; returns uint8 RGB."""
    x = rgb.astype(np.float32) / 255.0
    if rng.random() < cfg.blur_prob:
        k = int(rng.choice([3, 5]))
        x = cv2.GaussianBlur(x, (k, k), 0)
    mean = x.mean()
    x = (x - mean) * _u(rng, cfg.contrast) + mean
    x = x * _u(rng, cfg.brightness)
    x = x * (1.0 + rng.uniform(-cfg.channel_gain, cfg.channel_gain, size=3)).astype(np.float32)
    x = np.clip(x, 0.0, 1.0) ** _u(rng, cfg.gamma)
    noisy = False
    if rng.random() < cfg.low_light_prob:
        x = x * _u(rng, cfg.low_light_gain)
        noisy = True
    if cfg.colour_cast_prob > 0 and rng.random() < cfg.colour_cast_prob:
        x = x * (1.0 + rng.uniform(-cfg.colour_cast, cfg.colour_cast, size=3)).astype(np.float32)
    if cfg.motion_blur_prob > 0 and rng.random() < cfg.motion_blur_prob:
        k = int(rng.choice([5, 7, 9, 11]))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2, :] = 1.0 / k
        kern = cv2.warpAffine(kern, cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1.0), (k, k))
        x = cv2.filter2D(x, -1, kern / max(float(kern.sum()), 1e-6))
    if noisy or rng.random() < cfg.noise_prob:
        sigma = _u(rng, cfg.noise_sigma) / 255.0
        x = x + rng.normal(0.0, sigma, size=x.shape).astype(np.float32)
    out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if cfg.jpeg_prob > 0 and rng.random() < cfg.jpeg_prob:
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(_u(rng, cfg.jpeg_quality))])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
    return out


def _ellipses(h: int, w: int, n: int, rng: np.random.Generator, max_frac: float) -> np.ndarray:
    out = np.zeros((h, w), np.uint8)
    for _ in range(n):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        ax = (max(1, int(rng.uniform(0.03, max_frac) * w)), max(1, int(rng.uniform(0.03, max_frac) * h)))
        cv2.ellipse(out, c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return out


def synthesize_prev_mask(label: np.ndarray, rng: np.random.Generator, cfg: PrevMaskConfig) -> np.ndarray:
    """A plausible previous-frame mask for a frame whose teacher label is ``label``.

    Args:
        label: float32 (H, W) in [0, 1], at bucket resolution.
        rng: the sample's generator.
        cfg: error model.

    Returns:
        float32 (H, W) in [0, 1]: zeros when feedback is disabled or for a "first frame".
    """
    h, w = label.shape
    if not cfg.enabled or rng.random() < cfg.empty_prob:
        return np.zeros((h, w), np.float32)
    if rng.random() < cfg.garbage_prob:
        m = _ellipses(h, w, int(rng.integers(1, 4)), rng, 0.35).astype(np.float32)
        return cv2.GaussianBlur(m, (5, 5), 0)
    # mild_prob == 0 draws nothing here, so configs without it reproduce their samples exactly
    mild = cfg.mild_prob > 0 and rng.random() < cfg.mild_prob
    f = 0.25 if mild else 1.0
    # motion: shift + scale about a random centre
    s = 1.0 + rng.uniform(-cfg.max_scale, cfg.max_scale) * f
    tx = rng.uniform(-cfg.max_shift, cfg.max_shift) * w * f
    ty = rng.uniform(-cfg.max_shift, cfg.max_shift) * h * f
    c = (rng.uniform(0, w), rng.uniform(0, h))
    m = np.array([[s, 0, (1 - s) * c[0] + tx], [0, s, (1 - s) * c[1] + ty]], np.float64)
    prev = cv2.warpAffine(label, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    r = int(round(rng.uniform(0, cfg.max_morph) * f * math.hypot(h, w)))
    if r > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        prev = cv2.erode(prev, k) if rng.random() < 0.5 else cv2.dilate(prev, k)
    if not mild and rng.random() < cfg.blob_prob:
        prev = np.maximum(prev, _ellipses(h, w, int(rng.integers(1, 4)), rng, 0.12).astype(np.float32))
    if not mild and rng.random() < cfg.hole_prob:
        prev = prev * (1.0 - _ellipses(h, w, int(rng.integers(1, 3)), rng, 0.1).astype(np.float32))
    if rng.random() < cfg.blur_prob:
        prev = cv2.GaussianBlur(prev, (5, 5), 0)
    return np.clip(prev, 0.0, 1.0).astype(np.float32)


def make_sample(person: Sample, background: Sample, bucket: Bucket, rng: np.random.Generator,
                aug: AugmentConfig, prev: PrevMaskConfig, crowd: list[Sample] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One training pair for ``bucket``.

    Returns:
        x: float32 (4, H_b, W_b): Y, U, V / 255 and the synthesized previous mask (the model's
            input contract, see :mod:`backdrop.models.segmenter`).
        y: float32 (1, H_b, W_b): the teacher probability, placed like the image.
    """
    hw = scene_size(bucket, rng, aug.aspect_jitter)
    rgb, lab = make_scene(person, background, hw, rng, aug, crowd)
    yuv = rgb_to_yuv(photometric(rgb, rng, aug))
    p = plan(hw[0], hw[1], bucket)
    planes = to_bucket(yuv, p) / np.float32(255.0)
    lab_b = np.clip(to_bucket(lab, p), 0.0, 1.0)
    prev_mask = synthesize_prev_mask(lab_b, rng, prev)
    x = np.concatenate([planes.transpose(2, 0, 1), prev_mask[None]], axis=0)
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(lab_b[None], np.float32)


__all__ = [
    "AugmentConfig",
    "PrevMaskConfig",
    "make_sample",
    "make_scene",
    "photometric",
    "scene_size",
    "synthesize_prev_mask",
]
