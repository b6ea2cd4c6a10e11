#!/usr/bin/env python
"""Print each module's layer, and every import that runs against the layers' direction.

The layers, lowest first (docs/architecture.md):

    core           backdrop/core/ (and the package's own __init__)  imports no stage
    models         models/                                          core
    quantization   quantization/                                    + models
    export         export/                                          + quantization
    device_tests   device_tests/                                    + export
    orchestration  backdrop/orchestration/ (pipeline, manifest, ...) + device_tests
    bench          backdrop/bench/ (protocol, statistics, documents) + orchestration
    results        backdrop/results/ (the results store)            + bench
    dashboard      backdrop/dashboard/ (the static site)            + results
    cli            backdrop/orchestration/cli.py, commands/         + dashboard

A module may import its own layer and the layers below it, at module level or inside a
function alike. Within export/formats/ no format imports another format.

Usage:
    python scripts/layers.py            # table of module -> layer, then violations
    python scripts/layers.py --check    # only violations; exit 1 if there are any
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (layer, import prefix, folder) in order, lowest first; more specific prefixes come first
# within a layer's lookup (see layer_of).
LAYERS = ("core", "models", "quantization", "export", "device_tests", "orchestration", "bench", "results", "dashboard", "cli")
FOLDERS = {
    "backdrop.core": ROOT / "backdrop" / "core",
    "backdrop.models": ROOT / "models",
    "backdrop.quantization": ROOT / "quantization",
    "backdrop.export": ROOT / "export",
    "backdrop.device_tests": ROOT / "device_tests",
    "backdrop.orchestration": ROOT / "backdrop" / "orchestration",
    "backdrop.bench": ROOT / "backdrop" / "bench",
    "backdrop.results": ROOT / "backdrop" / "results",
    "backdrop.dashboard": ROOT / "backdrop" / "dashboard",
}
_PREFIX_LAYER = (
    ("backdrop.orchestration.commands", "cli"),
    ("backdrop.orchestration.cli", "cli"),
    ("backdrop.orchestration", "orchestration"),
    ("backdrop.dashboard", "dashboard"),
    ("backdrop.results", "results"),
    ("backdrop.bench", "bench"),
    ("backdrop.device_tests", "device_tests"),
    ("backdrop.export", "export"),
    ("backdrop.quantization", "quantization"),
    ("backdrop.models", "models"),
    ("backdrop.core", "core"),
)


def layer_of(module: str) -> str | None:
    """The layer of a backdrop module name; None for modules outside backdrop."""
    if module == "backdrop":
        return "core"
    for prefix, layer in _PREFIX_LAYER:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def modules() -> dict[str, Path]:
    """Every backdrop module name -> its file."""
    out = {"backdrop": ROOT / "backdrop" / "__init__.py"}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.why}"


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against the package
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            name = ".".join(base + ([node.module] if node.module else []))
        else:
            name = node.module or ""
        # `from backdrop.core import metrics` imports backdrop.core.metrics
        return [name] + [f"{name}.{a.name}" for a in node.names]
    return []


def violations() -> list[Violation]:
    """Every import against the direction, and every format importing another format."""
    found = []
    mods = modules()
    rank = {name: i for i, name in enumerate(LAYERS)}
    for module, path in mods.items():
        own = layer_of(module)
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            for name in _imported(node, module, path.name == "__init__.py"):
                target = layer_of(name)
                if target is None or not name.startswith("backdrop"):
                    continue
                if name not in mods and name.rsplit(".", 1)[0] in mods and name != "backdrop":
                    # `from pkg import attr`: the attribute of a module, judged by the module
                    name = name.rsplit(".", 1)[0]
                    target = layer_of(name)
                if rank[target] > rank[own]:
                    found.append(Violation(module, node.lineno, name, f"{own} may not import {target}"))
                fmt = "backdrop.export.formats."
                if (
                    module.startswith(fmt) and name.startswith(fmt)
                    and not module.endswith((".base", "formats")) and not name.endswith(".base")
                    and name.split(".")[3] != module.split(".")[3]
                ):
                    found.append(Violation(module, node.lineno, name, "a format imports another format"))
    return sorted(set(found), key=lambda v: (v.module, v.line, v.imported))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="print only violations; exit 1 if any")
    args = parser.parse_args(argv)
    if not args.check:
        for module in sorted(modules(), key=lambda m: (LAYERS.index(layer_of(m)), m)):
            print(f"{layer_of(module):<14} {module}")
    bad = violations()
    for v in bad:
        print(f"violation: {v}", file=sys.stderr)
    if not args.check:
        print(f"{len(modules())} modules, {len(bad)} import(s) against the direction", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
