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

_REPO = Path(__file__).resolve().parents[2]
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
    teacher_python: Annotated[
        Path | None, typer.Option("--teacher-python", help="Python of the teacher venv. Default: .venv-teacher/bin/python.")
    ] = None,
    model_selection: Annotated[
        int, typer.Option("--model-selection", help="Teacher model: 0 general 256x256, 1 landscape 144x256.", min=0, max=1)
    ] = 0,
    force: Annotated[bool, typer.Option("--force", help="Relabel sources that already have a cache.")] = False,
    fmt: FormatOpt = "text",
) -> None:
    """Pseudo-label every training/held-out source with MediaPipe selfie segmentation.

    Writes DATA_DIR/stills/*.png (the still images, so the teacher venv can read them) and
    DATA_DIR/labels/<source>.npz (soft masks + teacher name, version and model sha256), by
    running scripts/teacher_labels.py with the teacher venv's python.

    Example: backdrop labels && backdrop train --config configs/default.json
    """
    from backdrop.models.data import SOURCES, labels_dir, source_path, stills_dir, write_stills

    fmt = check_format(fmt)
    python = teacher_python_path(teacher_python)
    if not TEACHER_SCRIPT.is_file():
        raise InputError(f"{TEACHER_SCRIPT} is missing; labels need a source checkout of backdrop.")
    write_stills(stills_dir(data_dir))
    done = []
    for spec in SOURCES:
        if spec.label_from:
            continue
        out = labels_dir(data_dir) / f"{spec.name}.npz"
        if out.is_file() and not force:
            done.append({"source": spec.name, "out": str(out), "cached": True})
            continue
        cmd = [str(python), str(TEACHER_SCRIPT), str(source_path(spec, stills_dir(data_dir))),
               "--out", str(out), "--model-selection", str(model_selection)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise InputError(f"The teacher failed on {spec.name} (exit {proc.returncode}): {tail}")
        done.append({"source": spec.name, "out": str(out), "cached": False})
        if fmt == "text":
            print(f"labelled {spec.name} -> {out}", file=sys.stderr)
    if fmt == "json":
        typer.echo(json.dumps(done, indent=2))
        return
    typer.echo(f"{len(done)} label caches in {labels_dir(data_dir)} ({sum(not d['cached'] for d in done)} new)")
    typer.echo("next: backdrop train --config configs/default.json")
