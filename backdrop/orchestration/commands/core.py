"""Commands over the foundation: predict, models, buckets, new-checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backdrop.orchestration.commands.options import BucketsOpt, CheckpointOpt, FormatOpt, check_format


def predict_command(
    input: Annotated[
        Path,
        typer.Option("--input", "-i", help="A video file, a folder of images (frame order = sorted file names), or one image."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The masks.npz to write (format: docs/masks-format.md).")
    ] = Path("masks.npz"),
    checkpoint: CheckpointOpt = None,
    buckets: BucketsOpt = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", help="Stop after this many frames.", min=1)] = None,
    overlay: Annotated[
        Path | None, typer.Option("--overlay", help="Also write a contact-sheet PNG of frames with their masks.")
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Run the float PyTorch reference over every frame in order, with the mask fed back.

    Each frame goes to the bucket of nearest aspect ratio, is resized and replicate-padded to
    it, and its mask is mapped back to the frame's own size. The output is the reference that
    exported artifacts are compared against.

    Without --checkpoint, the bundled default model is used (docs/model-card.md).

    Example: backdrop predict -i clip.mp4 -o masks.npz --overlay sheet.png
    """
    from backdrop.core.buckets import load_buckets
    from backdrop.models.checkpoint import default_checkpoint_path
    from backdrop.orchestration.predict import PredictSpec, predict

    fmt = check_format(fmt)
    checkpoint = checkpoint or default_checkpoint_path()
    spec = PredictSpec(
        input=input, out=out, checkpoint=checkpoint, buckets=load_buckets(buckets), max_frames=max_frames, overlay=overlay
    )
    result = predict(spec, progress=fmt == "text")
    if fmt == "json":
        typer.echo(json.dumps({
            "out": str(result.out), "overlay": str(result.overlay) if result.overlay else None,
            "num_frames": result.num_frames, "buckets_used": result.buckets_used,
            "checkpoint_sha256": result.checkpoint_sha256,
        }))
        return
    used = ", ".join(f"{k} x{v}" for k, v in result.buckets_used.items())
    typer.echo(f"wrote {result.out}: {result.num_frames} masks (buckets: {used})")
    if result.overlay:
        typer.echo(f"wrote {result.overlay}: contact sheet of frames with their masks")
    typer.echo(f"next: backdrop eval --predictions {result.out} --labels LABELS")


def models_command(
    size: Annotated[str, typer.Option("--size", help="Input size HxW for the MAC count.")] = "144x256",
    fmt: FormatOpt = "text",
) -> None:
    """List the model variants with parameters and MACs (measured with torch's FLOP counter)."""
    from backdrop.models.profile import parse_size, profile_variants

    fmt = check_format(fmt)
    rows = profile_variants(parse_size(size))
    if fmt == "json":
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    typer.echo(f"{'variant':<16}{'encoder':<12}{'stride':>7}{'params':>12}{'MMACs':>10}  @ {size}")
    for r in rows:
        typer.echo(f"{r.variant:<16}{r.encoder:<12}{r.output_stride:>7}{r.params:>12,}{r.macs / 1e6:>10.1f}")


def buckets_command(
    buckets: BucketsOpt = None,
    frame: Annotated[str | None, typer.Option("--frame", help="A frame size HxW to map: shows its bucket and placement.")] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Show the bucket set, or where a frame of a given size goes."""
    from backdrop.core.buckets import load_buckets, plan
    from backdrop.models.profile import parse_size

    fmt = check_format(fmt)
    bset = load_buckets(buckets)
    if frame is None:
        if fmt == "json":
            typer.echo(json.dumps(bset.to_dict(), indent=2))
            return
        for b in bset:
            typer.echo(f"{b.name:<18}{b.height}x{b.width}  aspect {b.aspect:.4f}")
        return
    h, w = parse_size(frame)
    placement = plan(h, w, bset.select(h, w))
    if fmt == "json":
        typer.echo(json.dumps(placement.to_dict(), indent=2))
        return
    p = placement
    typer.echo(
        f"{h}x{w} -> {p.bucket.name} ({p.bucket.height}x{p.bucket.width}): resized to "
        f"{p.scaled_height}x{p.scaled_width}, replicate padding top {p.pad_top} bottom {p.pad_bottom} "
        f"left {p.pad_left} right {p.pad_right}"
    )


def new_checkpoint_command(
    variant: Annotated[str, typer.Option("--variant", help="Model variant (see `backdrop models`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint file to write.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the initial weights.")] = 0,
) -> None:
    """Write an UNTRAINED (randomly initialised) checkpoint of a variant.

    For exercising the pipeline with an architecture that has no trained weights yet; its
    masks are meaningless. Trained checkpoints come from `backdrop train`.
    """
    import torch

    from backdrop.models import build_model, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(variant)
    save_checkpoint(model, out, meta={"trained": False, "variant": variant, "seed": seed})
    typer.echo(f"wrote {out}: untrained {variant} (seed {seed})")
