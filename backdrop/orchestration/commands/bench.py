"""`backdrop bench`: time an export's artifacts on a device and store the results."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from backdrop.orchestration.commands.options import FormatOpt, check_format, text_table

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Results store: a SQLite file path, sqlite:///PATH, or postgresql://USER@HOST:PORT/DB. "
        "Default: results/backdrop.db.",
        show_default=False,
    ),
]


def bench_command(
    dist: Annotated[
        Path, typer.Option("--dist", "-d", help="An exported target folder, e.g. dist/android-arm64.", file_okay=False)
    ],
    device: Annotated[str, typer.Option("--device", help="{choices}")] = "host",
    artifacts: Annotated[
        str | None,
        typer.Option("--artifacts", help="Only artifacts whose key or file matches this pattern, e.g. 'landscape_16x9/*' "
                     "or '*int8*'. Default: all."),
    ] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option("--against", help="Another export (e.g. the previous commit's) benched in the same session, its "
                     "artifacts taking turns with --dist's: the fair A/B on a shared machine. Repeatable.", file_okay=False),
    ] = None,
    store: StoreOpt = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Write no store (with --out or --format json).")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the results document (JSON) here.", dir_okay=False)
    ] = None,
    protocol: Annotated[
        str, typer.Option("--protocol", help="quick (a few minutes for an export) or mlperf (>= 1024 frames and >= 60 s "
                          "per artifact, MLPerf Mobile's single-stream rule).")
    ] = "quick",
    min_frames: Annotated[int | None, typer.Option("--min-frames", help="Timed frames per artifact, at least.", min=1)] = None,
    min_seconds: Annotated[
        float | None, typer.Option("--min-seconds", help="Seconds of timed frames per artifact, at least.", min=0)
    ] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", help="Interleaved rounds per artifact.", min=1)] = None,
    warmup: Annotated[int | None, typer.Option("--warmup", help="Untimed frames after each load.", min=0)] = None,
    cooldown: Annotated[float | None, typer.Option("--cooldown", help="Idle seconds before each round.", min=0)] = None,
    max_temp: Annotated[
        float | None, typer.Option("--max-temp", help="Thermal gate: wait before a round until every zone is below this (C).")
    ] = None,
    gate_timeout: Annotated[
        float | None, typer.Option("--gate-timeout", help="Longest gate wait (s); later rounds are flagged.", min=0)
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Runtime threads (0: its default).", min=0)] = None,
    peer: Annotated[
        bool, typer.Option("--peer/--no-peer", help="Also time MediaPipe's selfie segmenter on the same frames (host tiers; "
                           "needs `make teacher`).")
    ] = True,
    json_flag: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    fmt: FormatOpt = "text",
) -> None:
    """Time every artifact of an export (or those --artifacts selects) that the device runs:
    load time, then frames of each bucket's golden camera sequence with the state carried, each
    frame timed model-only and end to end (camera buffer -> model input -> model -> mask at the
    frame's size, in the device's own code). Within a bucket the artifacts (fp32 and int8 twins,
    every format) take turns round by round; before each round the device cools down and a
    thermal/clock gate waits until it is cool and unthrottled where it exposes that.

    Statistics per artifact: p50, p90, p99, trimmed mean, min, the median's bootstrap 95 %
    interval and the coefficient of variation; peak memory, threads and cores where the device
    says. Every result carries its context (device, runtime versions, artifact and checkpoint
    sha256, commit, protocol, gate readings). The run goes into the results store in one
    transaction (nothing on failure); re-storing the same run adds nothing.

    With --against OLD, both exports are benched in one session and stored as two runs that
    `backdrop results compare` pairs round by round (on a shared machine two sessions minutes
    apart can differ by tens of percent with nothing changed).

    Emulated devices (qemu-arm64) are marked: their timings are functional, never phone latency.

    Example: backdrop bench --dist dist/android-arm64

    Example: backdrop bench --dist dist/android-arm64 --device host-native --artifacts 'landscape_16x9/*' --protocol mlperf

    Example: backdrop bench --dist dist/android-arm64 --store postgresql://postgres@127.0.0.1:55432/backdrop

    Example: backdrop bench --dist dist/android-arm64 --against old/dist/android-arm64 --artifacts '*int8*'
    """
    from tqdm import tqdm

    from backdrop.bench.protocol import protocol_named
    from backdrop.bench.run import BenchSpec, run_bench
    from backdrop.core.fsutil import check_writable
    from backdrop.device_tests.base import DeviceLostError, close_device, ready_device

    fmt = "json" if json_flag else check_format(fmt)
    if no_store and out is None and fmt != "json":
        raise typer.BadParameter("with --no-store the results go nowhere: add --out FILE or --format json.",
                                 param_hint="--no-store")
    proto = protocol_named(protocol, min_frames=min_frames, min_seconds=min_seconds, rounds=rounds, warmup=warmup,
                           cooldown_s=cooldown, threads=threads, max_temp_c=max_temp, gate_timeout_s=gate_timeout)
    if out is not None:
        check_writable(out, "--out")
    db = None if no_store else _open_store(store)
    try:
        dev = ready_device(device)
        if proto.threads and hasattr(dev, "threads"):
            dev.threads = proto.threads
        bar = None

        def progress(key: str, done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc=f"bench on {dev.name}", unit="round", file=sys.stderr, disable=fmt != "text")
            bar.set_postfix_str(key, refresh=False)
            bar.update(1)

        try:
            docs = run_bench(BenchSpec(dist, artifacts, proto, peer, tuple(against or ())), dev, progress)
        except DeviceLostError as e:
            typer.echo(f"error: {e} Nothing was stored.", err=True)
            raise typer.Exit(1) from e
        finally:
            if bar is not None:
                bar.close()
            close_device(dev)
        outs = [] if out is None else [out] + [out.with_name(f"{out.stem}-against-{i}{out.suffix or '.json'}")
                                               for i in range(1, len(docs))]
        for doc, path in zip(docs, outs):
            _write_json(doc, path)
        outcomes = []
        if db is not None:
            for i, doc in enumerate(docs):
                try:
                    outcomes.append(db.write(doc))
                except Exception:
                    rescue = outs[i] if outs else _rescue_path(doc, i)
                    if not outs:
                        _write_json(doc, rescue)
                    typer.echo(f"error: the run could not be stored in {db.url}; it is in {rescue}: store it later "
                               f"with `backdrop results import {rescue}`.", err=True)
                    raise
    finally:
        if db is not None:
            db.close()
    if fmt == "json":
        typer.echo(json.dumps(docs[0] if len(docs) == 1 else docs))
    else:
        for doc in docs:
            typer.echo(summary_table(doc))
            for note in doc["run"]["notes"]:
                typer.echo(f"note: {note}")
        for outcome in outcomes:
            state = "stored" if outcome.added else "already stored"
            typer.echo(f"run {outcome.run_id[:12]} {state} in {db.url} ({outcome.results} results)")
        if len(outcomes) > 1:
            typer.echo(f"compare them: backdrop results compare {outcomes[1].run_id[:12]} {outcomes[0].run_id[:12]}"
                       + (f" --store {store}" if store else ""))
        for path in outs:
            typer.echo(f"wrote {path}")
    if any(n.startswith("failed ") for doc in docs for n in doc["run"]["notes"]):
        raise typer.Exit(1)


def _open_store(url: str | None):
    from backdrop.results import open_store

    return open_store(url)


def _write_json(doc: dict, path: Path) -> None:
    from backdrop.core.fsutil import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(json.dumps(doc, indent=1).encode())


def _rescue_path(doc: dict, i: int = 0) -> Path:
    stamp = doc["run"]["started_at"].replace(":", "").replace("-", "")[:15]
    return Path("results") / f"unstored-{doc['run']['device']['name'].replace(':', '-')}-{stamp}-{i}.json"


def _memory(m: dict | None) -> str:
    """Peak RSS and, in brackets, how much of it came after the artifact was loaded."""
    if not m:
        return "-"
    extra = f" (+{m['peak_rss_mb'] - m['baseline_rss_mb']:.0f})" if m.get("baseline_rss_mb") is not None else ""
    return f"{m['peak_rss_mb']:.0f}{extra}"


def summary_table(doc: dict) -> str:
    """The short table printed after a bench: per artifact, the medians with their interval."""
    from backdrop.bench.stats import summarize

    dev = doc["run"]["device"]
    head = f"{dev['name']} ({dev['tier']}){' [EMULATED: functional timings, not latency]' if dev['emulated'] else ''}"
    rows = [("artifact", "e2e p50 [95% CI]", "p90", "p99", "cv", "model p50", "load", "peak MB (+load)", "flags")]
    for r in doc["results"]:
        e2e = summarize(r["e2e_ms"]) if r["e2e_ms"] else None
        model = summarize(r["model_ms"]) if r["model_ms"] else None
        load = summarize(r["load_ms"])
        rows.append((
            r["artifact"]["key"],
            f"{e2e.p50:.2f} [{e2e.median_ci_low:.2f}, {e2e.median_ci_high:.2f}]" if e2e else "-",
            f"{e2e.p90:.2f}" if e2e else "-",
            f"{e2e.p99:.2f}" if e2e else "-",
            f"{e2e.cv:.2f}" if e2e else "-",
            f"{model.p50:.2f}" if model else "-",
            f"{load.p50:.0f}",
            _memory(r["memory"]),
            ",".join(f for f in r["flags"] if f not in ("gate-unavailable",)) or "",
        ))
    lines = [head, "times in ms; e2e = camera buffer to frame-size mask; model = the model call alone; memory: the "
             "process's peak resident MB, (+ above its size before the load)"]
    return "\n".join(lines + text_table(rows, numbers_right=True, rule=True))
