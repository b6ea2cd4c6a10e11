"""What an exporter returns: an :class:`Artifact` that describes itself.

Every field here ends up in ``manifest.json`` (docs/manifest.md), the contract app code reads.
The tensor specs and the state rule come from :mod:`backdrop.core.contract`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from backdrop import __version__
from backdrop.core.buckets import Bucket
from backdrop.core.contract import SelfDescription, TensorSpec, in_file_rule, io_specs
from backdrop.quantization.fallback import Int8Decision


@dataclass
class Artifact:
    """One exported file for one bucket, format, precision and state form.

    ``path`` is absolute while exporting; the manifest stores it relative to the target folder.
    ``verified`` is None until parity runs, then True/False; formats no runtime here can run
    stay None ("unverified") with ``verification_note`` saying what was checked instead.

    Stage-to-stage data has its own typed field; ``details`` holds only what the format itself
    records about its file (exporter, ops, calibration and quantization settings) for the
    manifest. Written by: the format (``details``, ``delegation``), the int8 acceptance
    (``int8``: budget, measured quality, float units, fallback), verification (``parity``: the
    parity summary; ``offline_warnings``: the format's offline check). :meth:`manifest_details`
    merges them into the manifest's ``details`` object.
    """

    path: Path
    format: str
    runtime: str
    precision: str
    state_form: str
    bucket: Bucket
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    states: tuple[TensorSpec, ...]
    min_os: str = ""
    details: dict = field(default_factory=dict)
    delegation: DelegationSummary | None = None
    int8: Int8Decision | None = None
    parity: ParitySummary | None = None
    offline_warnings: tuple[str, ...] | None = None
    verified: bool | None = None
    verification_note: str = ""

    @property
    def key(self) -> str:
        """Unique id within a target, e.g. ``landscape_16x9/executorch-fp32-native``."""
        return f"{self.bucket.name}/{self.format}-{self.precision}-{self.state_form}"

    def description(self, model_config: dict | None, torch_version: str, reset_alternative: str = "") -> SelfDescription:
        """What the artifact says about itself inside its file (formats serialise this)."""
        b = self.bucket
        return SelfDescription(
            version=__version__,
            format=self.format,
            precision=self.precision,
            state_form=self.state_form,
            bucket={"name": b.name, "height": b.height, "width": b.width},
            inputs=self.inputs,
            outputs=self.outputs,
            states=self.states,
            feedback=in_file_rule(self.state_form, reset_alternative),
            model_config=model_config,
            torch_version=torch_version,
        )

    def manifest_details(self) -> dict:
        """The manifest entry's ``details``: the format's own record plus the typed stage data."""
        out = dict(self.details)
        if self.delegation is not None:
            out["delegation"] = self.delegation.to_dict()
        if self.int8 is not None:
            out["int8"] = self.int8.to_dict()
        if self.parity is not None:
            out["parity"] = self.parity.to_dict()
        if self.offline_warnings is not None:
            out["spec_warnings"] = list(self.offline_warnings)
        return out

    def sha256(self) -> str:
        return tree_sha256(self.path)

    def size_bytes(self) -> int:
        p = self.path
        return sum(f.stat().st_size for f in sorted(p.rglob("*")) if f.is_file()) if p.is_dir() else p.stat().st_size


def tree_sha256(path: Path) -> str:
    """sha256 of a file, or of a directory (.mlpackage) as the hash of its sorted relative
    paths and file contents."""
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    else:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class DelegationSummary:
    """Which ops of a lowered program run inside a delegate (ExecuTorch's XNNPACK, say).

    Attributes:
        delegate: the backend's name.
        delegated_subgraphs, delegated_nodes, non_delegated_nodes: counts.
        compute_ops_outside: op -> count of computation left outside (must be empty).
        ops: op -> {"delegated": n, "outside": n}.
    """

    delegate: str
    delegated_subgraphs: int
    delegated_nodes: int
    non_delegated_nodes: int
    compute_ops_outside: dict[str, int]
    ops: dict[str, dict[str, int]]

    def to_dict(self) -> dict:
        return {
            "delegate": self.delegate,
            "delegated_subgraphs": self.delegated_subgraphs,
            "delegated_nodes": self.delegated_nodes,
            "non_delegated_nodes": self.non_delegated_nodes,
            "compute_ops_outside": dict(self.compute_ops_outside),
            "ops": {k: dict(v) for k, v in self.ops.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> DelegationSummary:
        return cls(d["delegate"], d["delegated_subgraphs"], d["delegated_nodes"], d["non_delegated_nodes"],
                   dict(d["compute_ops_outside"]), {k: dict(v) for k, v in d["ops"].items()})


@dataclass(frozen=True)
class ParitySummary:
    """The few numbers of a parity run a manifest entry carries (the per-frame lists stay in
    ``reports/parity.json``); written by device_tests/parity.py.

    Attributes:
        passed: every frame met every threshold.
        device, tier: where it ran.
        frames, resets: the golden's length and reset frames.
        worst: ``min_iou``, ``min_boundary_iou``, ``max_abs_error`` over the frames (empty when
            the run failed).
        thresholds: the limits applied.
        first_failure: the first failing frame and metric, or None.
        segments: per stretch between resets: label, frame range, worst IoU and error.
        error: why the run itself failed, or "".
        report: the report file with every frame.
    """

    passed: bool
    device: str
    tier: str
    frames: int | None
    resets: list[int] | None
    worst: dict[str, float]
    thresholds: dict
    first_failure: dict | None
    segments: list[dict]
    error: str
    report: str = "reports/parity.json"

    def to_dict(self) -> dict:
        return {
            "passed": self.passed, "device": self.device, "tier": self.tier, "frames": self.frames, "resets": self.resets,
            **self.worst,
            "thresholds": self.thresholds, "first_failure": self.first_failure, "segments": self.segments,
            "error": self.error, "report": self.report,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ParitySummary:
        worst = {k: d[k] for k in ("min_iou", "min_boundary_iou", "max_abs_error") if k in d}
        return cls(d["passed"], d["device"], d["tier"], d.get("frames"), d.get("resets"), worst, d.get("thresholds", {}),
                   d.get("first_failure"), d.get("segments", []), d.get("error", ""), d.get("report", "reports/parity.json"))


_TYPED_DETAILS = ("delegation", "int8", "parity", "spec_warnings")


def artifact_from_manifest(entry: dict, root: Path, bucket: Bucket) -> Artifact:
    """Rebuild an :class:`Artifact` from its manifest entry (the inverse of the pipeline's
    manifest writer), with ``path`` absolute under ``root``. Fields an app-side manifest may
    leave out (``runtime``, ``states``, ``min_os``, ``details``, ``verified``) default to empty."""

    def specs(items: list[dict]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec.from_dict(t) for t in items)

    details = dict(entry.get("details", {}))
    typed = {k: details.pop(k) for k in _TYPED_DETAILS if k in details}
    return Artifact(
        path=root / entry["path"],
        format=entry["format"],
        runtime=entry.get("runtime", ""),
        precision=entry["precision"],
        state_form=entry["state_form"],
        bucket=bucket,
        inputs=specs(entry["inputs"]),
        outputs=specs(entry["outputs"]),
        states=specs(entry.get("states", [])),
        min_os=entry.get("min_os", ""),
        details=details,
        delegation=DelegationSummary.from_dict(typed["delegation"]) if "delegation" in typed else None,
        int8=Int8Decision.from_dict(typed["int8"]) if typed.get("int8") else None,
        parity=ParitySummary.from_dict(typed["parity"]) if "parity" in typed else None,
        offline_warnings=tuple(typed["spec_warnings"]) if "spec_warnings" in typed else None,
        verified=entry.get("verified"),
    )


__all__ = ["Artifact", "DelegationSummary", "ParitySummary", "TensorSpec", "artifact_from_manifest", "io_specs", "tree_sha256"]
