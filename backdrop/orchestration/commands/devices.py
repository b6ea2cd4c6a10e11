"""`backdrop devices`: the registered devices, whether each is ready here, and what it runs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from backdrop.orchestration.commands.options import FormatOpt, check_format


def devices_command(
    name: Annotated[
        str | None,
        typer.Argument(help="One device to describe in full (CPU, OS, runtimes, temperatures), e.g. adb:R5CT1234."),
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """List every registered device: whether it can run now on this machine (and why not),
    and which artifact kinds it runs. With NAME, connect to that device and print what it
    is (for adb: model, SoC, ABI, SDK or /proc/cpuinfo, CPU frequencies and governors,
    thermal zones, battery temperature).

    Exits 1 when NAME is given and that device is not ready.

    Example: backdrop devices

    Example: backdrop devices adb:127.0.0.1:6555 --format json
    """
    from backdrop.device_tests import DEVICES
    from backdrop.device_tests.base import capabilities, close_device, device_summary, get_device

    fmt = check_format(fmt)
    if name is not None:
        device = get_device(name)
        try:
            reason = device.ready()
            doc = {"device": name, "ready": not reason, "why_not": reason,
                   "description": device.describe().to_dict() if not reason else None}
        finally:
            close_device(device)
        if fmt == "json":
            typer.echo(json.dumps(doc))
        elif reason:
            typer.echo(f"{name}: not ready: {reason}")
        else:
            d = doc["description"]
            typer.echo(f"{d['name']} ({d['tier']}{', ' + d['label'] if d['label'] else ''})"
                       f"{' [emulated: timings are not latency]' if d['emulated'] else ''}")
            for key in ("machine", "cpu", "os"):
                typer.echo(f"  {key}: {d[key]}")
            typer.echo("  runtimes: " + ", ".join(f"{k} {v}" for k, v in d["runtime_versions"].items()))
            for key, value in d["details"].items():
                typer.echo(f"  {key}: {value}")
        if reason:
            raise typer.Exit(1)
        return
    rows = []
    for reg_name in DEVICES:
        cls = DEVICES.get(reg_name)
        device = cls()
        try:
            reason = device.ready()
        finally:
            close_device(device)
        rows.append({
            "device": reg_name,
            "summary": device_summary(cls),
            "takes_argument": bool(getattr(cls, "takes_argument", False)),
            "ready": not reason,
            "why_not": reason,
            "runs": {kind.name: answer for kind, answer in capabilities(device)},
        })
    if fmt == "json":
        typer.echo(json.dumps({"devices": rows}))
        return
    for r in rows:
        usage = f"{r['device']}, {r['device']}:SERIAL" if r["takes_argument"] else r["device"]
        typer.echo(f"{usage}: {r['summary']}")
        typer.echo(f"  ready here: {'yes' if r['ready'] else 'no: ' + r['why_not']}")
        runs = [k for k, a in r["runs"].items() if a == "yes"]
        typer.echo(f"  runs: {', '.join(runs) or 'nothing here'}")
        for kind, answer in r["runs"].items():
            if answer not in ("yes", r["why_not"]):
                typer.echo(f"  not {kind}: {answer}")
