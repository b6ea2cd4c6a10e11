"""Distillation training of a :class:`~backdrop.models.segmenter.Segmenter` on teacher pseudo-labels.

Recipe (the seed's strategies; docs/training.md):

- aspect-ratio grouped batches: every batch draws one bucket and all its samples are placed in
  that bucket (bilinear resize + replicate padding, :func:`backdrop.core.buckets.to_bucket`);
  a resolution schedule trains early steps at a fraction of the bucket size (fast on CPU) and
  the last steps at the real bucket sizes;
- detect-with-mask: the 4th channel is zeros or a degraded previous mask
  (:func:`backdrop.models.augment.synthesize_prev_mask`);
- boundary cross-entropy (:mod:`backdrop.models.losses`), weight ``boundary_weight``;
- student-teacher: the targets are the teacher's soft probabilities (``label_mode``).

Reproducible and resumable: sample ``i`` of step ``k`` is generated from
``numpy.random.default_rng([seed, k, i])``, the network is initialised from ``torch.manual_seed(seed)``,
there is no dropout, and ``last.pt`` stores the optimizer state and step, so an interrupted
run resumed with ``resume=True`` ends with the same weights as an uninterrupted one (same
thread count; checked by tests/test_train.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from backdrop.core.buckets import DEFAULT_BUCKETS, Bucket
from backdrop.core.errors import ConfigError
from backdrop.models.augment import AugmentConfig, PrevMaskConfig, make_sample
from backdrop.models.checkpoint import load_checkpoint, save_checkpoint
from backdrop.models.data import HELDOUT_CLIPS, HELDOUT_IMAGES, HeldOut, TrainingData, load_heldout, load_training_data
from backdrop.models.losses import LABEL_MODES, segmentation_loss
from backdrop.models.segmenter import VARIANTS, Segmenter, build_model

TRAIN_STATE_KEY = "train_state"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; stored inside every checkpoint it writes.

    Attributes:
        name: run name (recorded in the checkpoint).
        variant: model variant (``backdrop.models.VARIANTS``).
        seed: seeds the initialisation and every sample.
        steps: optimizer steps.
        batch_size: samples per step (all in one bucket).
        lr / weight_decay / warmup_steps: AdamW with linear warm-up then cosine decay to
            ``min_lr_ratio * lr``.
        resolution_schedule: ``[[until_fraction, scale], ...]``: steps before
            ``until_fraction * steps`` train at ``scale`` times the bucket size (rounded to a
            multiple of 16); the last entry must reach 1.0.
        buckets: names of the DEFAULT_BUCKETS trained on, drawn uniformly per batch.
        person_still_prob: probability that a sample's person is a still (astronaut, camera)
            rather than a carphone training frame.
        boundary_weight / boundary_dilation_ratio: the boundary cross-entropy term.
        label_mode: ``soft`` (distil the teacher's probabilities) or ``hard``.
        augment / prev_mask: sample synthesis (``prev_mask.enabled = false``: no mask feedback).
        val_every: validate on the held-out split every N steps (0: only at the end).
        ckpt_every: write ``last.pt`` every N steps.
        out_dir: run directory (``last.pt``, ``final.pt``, ``log.jsonl``).
        data_dir: the teacher label cache directory (``backdrop labels`` fills it).
        num_threads: torch CPU threads.
        export_path: also write the final weights (without optimizer state) here, if set.
    """

    name: str = "default"
    variant: str = "fbnetv3_a_s16"
    seed: int = 0
    steps: int = 2000
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.02
    resolution_schedule: tuple[tuple[float, float], ...] = ((0.8, 0.5), (1.0, 1.0))
    buckets: tuple[str, ...] = tuple(DEFAULT_BUCKETS.names())
    person_still_prob: float = 0.2
    boundary_weight: float = 1.0
    boundary_dilation_ratio: float = 0.02
    label_mode: str = "soft"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    prev_mask: PrevMaskConfig = field(default_factory=PrevMaskConfig)
    val_every: int = 500
    ckpt_every: int = 50
    out_dir: str = "out/train/default"
    data_dir: str = ".cache/backdrop-train"
    num_threads: int = 2
    export_path: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "buckets", tuple(self.buckets))
        object.__setattr__(
            self, "resolution_schedule", tuple((float(a), float(b)) for a, b in self.resolution_schedule)
        )
        VARIANTS.get(self.variant)  # raises with the valid names
        for b in self.buckets:
            DEFAULT_BUCKETS.get(b)
        if not self.buckets:
            raise ConfigError("TrainConfig.buckets must name at least one bucket.")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}.")
        if self.label_mode not in LABEL_MODES:
            raise ConfigError(f"label_mode must be one of {LABEL_MODES}, got {self.label_mode!r}.")
        if self.boundary_weight < 0:
            raise ConfigError(f"boundary_weight must be >= 0, got {self.boundary_weight}.")
        sched = self.resolution_schedule
        if not sched or sched[-1][0] < 1.0 or any(b[0] <= a[0] for a, b in zip(sched, sched[1:])):
            raise ConfigError(
                f"resolution_schedule must be increasing [until_fraction, scale] pairs ending at 1.0, got {sched}."
            )
        if any(not 0.1 <= s <= 2.0 for _, s in sched):
            raise ConfigError(f"resolution_schedule scales must be in [0.1, 2], got {sched}.")
        if not 0 <= self.person_still_prob <= 1:
            raise ConfigError(f"person_still_prob must be in [0, 1], got {self.person_still_prob}.")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["buckets"] = list(self.buckets)
        d["resolution_schedule"] = [list(x) for x in self.resolution_schedule]
        return json.loads(json.dumps(d))  # tuples -> lists everywhere

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"Unknown training config keys {unknown}. Valid: {sorted(known)}.")
        d = dict(d)
        if "augment" in d:
            d["augment"] = AugmentConfig.from_dict(d["augment"])
        if "prev_mask" in d:
            d["prev_mask"] = PrevMaskConfig.from_dict(d["prev_mask"])
        return cls(**d)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a :class:`TrainConfig` from a ``.json`` or ``.toml`` file.

    Raises:
        ConfigError: missing file, unknown suffix, parse error or invalid values.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Training config not found: {path}. See configs/default.json.")
    try:
        if path.suffix == ".json":
            d = json.loads(path.read_text())
        elif path.suffix == ".toml":
            d = tomllib.loads(path.read_text())
        else:
            raise ConfigError(f"Training config {path} must be .json or .toml.")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"Could not parse {path}: {e}") from e
    try:
        return TrainConfig.from_dict(d)
    except TypeError as e:
        raise ConfigError(f"Invalid training config {path}: {e}") from e


@dataclass(frozen=True)
class TrainResult:
    """What a run produced.

    Attributes:
        final_checkpoint: ``out_dir/final.pt`` (weights + meta, no optimizer state).
        exported: ``export_path`` if set, else None.
        steps: steps trained in total.
        seconds: wall time of this invocation.
        metrics: the last held-out validation.
        final_loss: mean loss of the last 50 steps.
    """

    final_checkpoint: Path
    exported: Path | None
    steps: int
    seconds: float
    metrics: dict
    final_loss: float


def scale_at(config: TrainConfig, step: int) -> float:
    frac = step / config.steps
    for until, scale in config.resolution_schedule:
        if frac < until:
            return scale
    return config.resolution_schedule[-1][1]


def train_bucket(bucket: Bucket, scale: float) -> Bucket:
    """The bucket at training resolution: sides * scale, rounded to a multiple of 16 (>= 32)."""
    if scale == 1.0:
        return bucket
    h = max(32, int(round(bucket.height * scale / 16)) * 16)
    w = max(32, int(round(bucket.width * scale / 16)) * 16)
    return Bucket(bucket.name, h, w)


def lr_at(config: TrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    t = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    lo = config.lr * config.min_lr_ratio
    return lo + 0.5 * (config.lr - lo) * (1.0 + math.cos(math.pi * min(1.0, t)))


def make_batch(config: TrainConfig, data: TrainingData, step: int) -> tuple[torch.Tensor, torch.Tensor, Bucket]:
    """The batch of ``step``: a pure function of (seed, step) and the data."""
    rng = np.random.default_rng([config.seed, step])
    name = config.buckets[int(rng.integers(len(config.buckets)))]
    bucket = train_bucket(DEFAULT_BUCKETS.get(name), scale_at(config, step))
    stills = [p for p in data.persons if p.kind != "video"]
    frames = [p for p in data.persons if p.kind == "video"] or data.persons
    xs, ys = [], []
    for i in range(config.batch_size):
        r = np.random.default_rng([config.seed, step, i])
        pool = stills if stills and r.random() < config.person_still_prob else frames
        person = pool[int(r.integers(len(pool)))]
        bg = data.backgrounds[int(r.integers(len(data.backgrounds)))] if data.backgrounds else person
        x, y = make_sample(person, bg, bucket, r, config.augment, config.prev_mask, data.persons)
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), bucket


def predict_sequence(model: Segmenter, frames_yuv: list[np.ndarray], mask_feedback: bool = True) -> list[np.ndarray]:
    """Soft masks of a frame sequence through the reference predictor (the deployed loop).

    With ``mask_feedback=False`` the state is reset before every frame (channel 3 always zeros),
    for models trained without feedback.
    """
    from backdrop.models.reference import ReferencePredictor

    predictor = ReferencePredictor(model.eval(), DEFAULT_BUCKETS)
    out = []
    for yuv in frames_yuv:
        if not mask_feedback:
            predictor.reset()
        out.append(predictor.step(yuv).mask)
    return out


def evaluate_heldout(model: Segmenter, heldout: HeldOut, mask_feedback: bool = True) -> dict:
    """Held-out scores against the teacher, through the deployed predictor loop.

    Returns:
        A flat dict: ``clip_iou`` / ``clip_biou`` (means over the primary held-out clip, the
        video call, first frame with an empty state), ``clip_iou_min``, ``clip_static_iou`` / ``clip_warped_iou`` (temporal
        consistency of the student) and ``teacher_static_iou`` / ``teacher_warped_iou`` (the
        teacher's on the same frames), and ``image_iou`` / ``image_biou`` per held-out image.
    """
    from backdrop.core.metrics import boundary_iou, iou, temporal_consistency

    masks = predict_sequence(model, heldout.clip_yuv, mask_feedback)
    ious = [iou(m, t) for m, t in zip(masks, heldout.clip_labels)]
    bious = [boundary_iou(m, t) for m, t in zip(masks, heldout.clip_labels)]
    student_t = temporal_consistency(masks, heldout.clip_bgr)
    teacher_t = temporal_consistency(heldout.clip_labels, heldout.clip_bgr)
    out = {
        "clip": heldout.clip_name or "carphone_pristine 90-119",
        "clip_frames": len(masks),
        "clip_iou": float(np.mean(ious)),
        "clip_iou_min": float(np.min(ious)),
        "clip_biou": float(np.mean(bious)),
        "clip_static_iou": float(np.mean(student_t.static_iou)),
        "clip_warped_iou": float(np.mean(student_t.warped_iou)),
        "teacher_static_iou": float(np.mean(teacher_t.static_iou)),
        "teacher_warped_iou": float(np.mean(teacher_t.warped_iou)),
        "image_iou": {},
        "image_biou": {},
    }
    for name, yuv, lab in zip(heldout.image_names, heldout.images_yuv, heldout.image_labels):
        m = predict_sequence(model, [yuv], mask_feedback)[0]
        out["image_iou"][name] = iou(m, lab)
        out["image_biou"][name] = boundary_iou(m, lab)
    return out


def _meta(config: TrainConfig, data: TrainingData | None, step: int, metrics: dict, seconds: float) -> dict:
    import backdrop

    return {
        "producer": "backdrop train",
        "backdrop_version": backdrop.__version__,
        "torch_version": str(torch.__version__),
        "train_config": config.to_dict(),
        "mask_feedback": config.prev_mask.enabled,
        "step": step,
        "data": {
            "description": "teacher pseudo-labels (RVM on clips; median of RVM, ISNet and MediaPipe selfie on "
            "stills) on real registry frames; held out, identities never trained on: the clips "
            + ", ".join(HELDOUT_CLIPS) + ", carphone frames 90-119, and the images " + ", ".join(HELDOUT_IMAGES)
            + " (backdrop.models.data)",
            **(data.describe() if data is not None else {}),
        },
        "teacher": (data.teacher_meta if data is not None else {}),
        "heldout_metrics": metrics,
        "train_seconds": round(seconds, 1),
    }


def _log(out_dir: Path, record: dict) -> None:
    with open(out_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    data: TrainingData | None = None,
    heldout: HeldOut | None = None,
    validate_fn=None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or resume) a run; see the module docstring.

    Args:
        config: the recipe.
        resume: continue from ``out_dir/last.pt`` (must hold the same config).
        progress: show a tqdm bar (loss, lr, ETA) on stderr.
        data / heldout: preloaded data (tests pass small pools); loaded from ``data_dir`` if None.
        validate_fn: ``(model, heldout, mask_feedback) -> dict``; default
            :func:`evaluate_heldout`. Skipped when ``heldout`` is None
            and ``data`` was given.
        stop_after: stop (writing ``last.pt``) once this many steps are done in total, as an
            interruption would; ``final.pt`` is not written. For tests and time-sliced runs.

    Raises:
        ConfigError: resume without a checkpoint, or with a different config.
    """
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        return _train(config, resume, progress, data, heldout, validate_fn, stop_after)
    finally:
        torch.set_num_threads(threads_before)


def _train(config: TrainConfig, resume: bool, progress: bool, data: TrainingData | None,
           heldout: HeldOut | None, validate_fn, stop_after: int | None) -> TrainResult:
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last = out_dir / "last.pt"
    preloaded = data is not None
    if data is None:
        data = load_training_data(config.data_dir)
    if heldout is None and not preloaded:
        heldout = load_heldout(config.data_dir)
    if validate_fn is None:
        validate_fn = evaluate_heldout

    torch.manual_seed(config.seed)
    model: Segmenter = build_model(config.variant)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start = 0
    seconds_before = 0.0
    if resume:
        if not last.is_file():
            raise ConfigError(f"Cannot resume: {last} does not exist. Run without --resume to start.")
        ckpt = load_checkpoint(last)
        saved = ckpt.meta.get("train_config")
        try:  # normalise: fields added since the checkpoint was written take their defaults
            saved = TrainConfig.from_dict(saved).to_dict()
        except (ConfigError, TypeError):
            pass
        if saved != config.to_dict():
            diff = sorted(k for k in config.to_dict() if (saved or {}).get(k) != config.to_dict()[k])
            raise ConfigError(f"Cannot resume {last}: it was trained with a different config (differs in {diff}).")
        model.load_state_dict(ckpt.model.state_dict())
        state = ckpt.meta[TRAIN_STATE_KEY]
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        seconds_before = float(ckpt.meta.get("train_seconds", 0.0))
    elif last.exists():
        last.unlink()
        (out_dir / "log.jsonl").unlink(missing_ok=True)

    model.train()
    t0 = time.time()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=start, desc=f"train {config.name}", unit="step", file=sys.stderr)
    recent: list[float] = []
    metrics: dict = {}

    def checkpoint(step: int, path: Path, with_state: bool) -> None:
        meta = _meta(config, data, step, metrics, seconds_before + time.time() - t0)
        if with_state:
            meta[TRAIN_STATE_KEY] = {"step": step, "optimizer": opt.state_dict()}
        save_checkpoint(model, path, meta)

    for step in range(start, config.steps):
        x, y, bucket = make_batch(config, data, step)
        for g in opt.param_groups:
            g["lr"] = lr_at(config, step)
        terms = segmentation_loss(
            model(x), y,
            boundary_weight=config.boundary_weight,
            dilation_ratio=config.boundary_dilation_ratio,
            label_mode=config.label_mode,
        )
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        opt.step()
        loss = float(terms.total.detach())
        recent = (recent + [loss])[-50:]
        done = step + 1
        if bar is not None:
            bar.set_postfix(loss=f"{np.mean(recent):.4f}", bce=f"{float(terms.bce):.4f}",
                            bnd=f"{float(terms.boundary):.3f}", size=bucket.size, refresh=False)
            bar.update(1)
        if done % 25 == 0 or done == config.steps:
            _log(out_dir, {"step": done, "loss": float(np.mean(recent)), "bucket": bucket.size,
                           "lr": lr_at(config, step), "seconds": round(seconds_before + time.time() - t0, 1)})
        want_val = heldout is not None and (
            done == config.steps or (config.val_every > 0 and done % config.val_every == 0)
        )
        if want_val:
            model.eval()
            metrics = validate_fn(model, heldout, config.prev_mask.enabled)
            model.train()
            _log(out_dir, {"step": done, "val": metrics})
            if bar is not None:
                bar.write(
                    f"step {done}: held-out " + json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}),
                    file=sys.stderr,
                )
        interrupted = stop_after is not None and done >= stop_after and done < config.steps
        if done % config.ckpt_every == 0 or done == config.steps or interrupted:
            checkpoint(done, last, True)
        if interrupted:
            if bar is not None:
                bar.close()
            return TrainResult(last, None, done, time.time() - t0, metrics, float(np.mean(recent)))
    if bar is not None:
        bar.close()
    model.eval()
    final = out_dir / "final.pt"
    checkpoint(config.steps, final, False)
    exported = None
    if config.export_path:
        exported = Path(config.export_path)
        checkpoint(config.steps, exported, False)
    return TrainResult(
        final, exported, config.steps, time.time() - t0, metrics, float(np.mean(recent)) if recent else float("nan")
    )


__all__ = [
    "TrainConfig",
    "TrainResult",
    "evaluate_heldout",
    "load_train_config",
    "make_batch",
    "predict_sequence",
    "train",
    "train_bucket",
]
