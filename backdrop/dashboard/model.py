"""What the dashboard shows, read from the results store into plain dataclasses.

Nothing here invents a number: every latency is a stored run's statistic (recomputed from its
samples on import), every change mark is what :func:`backdrop.bench.compare.compare_documents`
(the code of ``backdrop results compare``) calls a regression or an improvement, and every
parity status is a stored parity check of the same artifact file (by sha256). What the store
does not hold is shown as "not run" or "not measured".

Runs are grouped by device tier (the device description's ``tier``); within a tier, each run is
compared with the previous run of the same device (by start time; runs of one session share
their start and are ordered by id).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from backdrop.bench.compare import ALPHA, THRESHOLD, Change, Comparison, compare_documents
from backdrop.bench.stats import Stats
from backdrop.core.errors import ConfigError
from backdrop.results import Store, StoredResult

DEFAULT_BUDGET_MS = 33.0
"""The per-frame budget of a tier unless told otherwise: 30 frames a second."""

PARITY_STATES = ("verified", "failed", "not run")


@dataclass(frozen=True)
class Budgets:
    """The end-to-end p50 budget per tier (ms): ``per_tier`` overrides ``default``."""

    default: float = DEFAULT_BUDGET_MS
    per_tier: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for tier, ms in {"default": self.default, **self.per_tier}.items():
            if not (isinstance(ms, (int, float)) and ms > 0):
                raise ConfigError(f"the budget of {tier} must be a positive number of milliseconds; got {ms!r}.")

    def of(self, tier: str) -> float:
        return float(self.per_tier.get(tier, self.default))


@dataclass(frozen=True)
class ParityCell:
    """The parity of one artifact file (or of a tier's latest check) on a tier.

    Attributes:
        status: "verified", "failed" or "not run".
        detail: what was checked (frames, worst IoU, the failure), for a tooltip.
        parity_id: the stored parity run, or "" when not run.
        when: the check's start, or None.
    """

    status: str
    detail: str = ""
    parity_id: str = ""
    when: datetime | None = None


NOT_RUN = ParityCell("not run", "no stored parity check of this artifact file on this tier")


@dataclass(frozen=True)
class ArtifactResult(StoredResult):
    """One artifact (or the peer) in one stored run (:class:`StoredResult`), with its run's
    start and the parity of its file on the run's tier."""

    started_at: datetime | None = None
    parity: ParityCell = NOT_RUN

    @property
    def latency(self) -> Stats | None:
        """End-to-end statistics, or model-only where the run timed no end to end."""
        return self.stats.get("e2e") or self.stats.get("model")

    @property
    def latency_metric(self) -> str:
        return "e2e" if "e2e" in self.stats else "model"


@dataclass(frozen=True)
class RunView:
    """One stored run, with its comparison against the previous run of its device.

    Attributes:
        previous: that run's id ("" for the first run of a device).
        comparison: what ``backdrop results compare PREVIOUS THIS`` says, or None.
    """

    run_id: str
    started_at: datetime
    finished_at: datetime
    device_name: str
    tier: str
    emulated: bool
    target: str
    git_commit: str | None
    protocol: str
    session: str
    notes: list[str]
    device: dict
    results: list[ArtifactResult]
    previous: str = ""
    comparison: Comparison | None = None

    @property
    def flagged(self) -> list[Change]:
        """The changes compare calls regressions or improvements."""
        if self.comparison is None:
            return []
        return [c for c in self.comparison.changes if c.verdict != "no change"]

    def change(self, key: str, metric: str) -> Change | None:
        """compare's finding for ``key``'s ``metric`` against the previous run (None if not compared)."""
        for c in self.comparison.changes if self.comparison else []:
            if c.key == key and c.metric == metric:
                return c
        return None


@dataclass(frozen=True)
class BucketLatest:
    """A tier card's line: the newest run with this bucket, its fastest artifact of the chosen
    model (by p50 latency) and the peer where measured."""

    bucket: str
    best: ArtifactResult
    peer: ArtifactResult | None
    default_model: bool


@dataclass(frozen=True)
class TierView:
    tier: str
    slug: str
    emulated: bool
    budget_ms: float
    runs: list[RunView]
    parity: ParityCell
    latest: list[BucketLatest]
    rows: list[ArtifactResult]
    devices: list[str]

    @property
    def empty(self) -> bool:
        return not self.runs


@dataclass(frozen=True)
class DeviceView:
    name: str
    slug: str
    tier: str
    emulated: bool
    description: dict
    runs: list[RunView]
    parity_runs: list


@dataclass(frozen=True)
class SiteData:
    store_url: str
    generated_at: datetime
    default_checkpoint_sha256: str | None
    threshold: float
    alpha: float
    tiers: list[TierView]
    devices: list[DeviceView]

    @property
    def runs(self) -> int:
        return sum(len(t.runs) for t in self.tiers)


def slug(text: str) -> str:
    """A file-name-safe form of a tier or device name (``adb:10.0.0.2:5555`` -> ``adb-10.0.0.2-5555``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unnamed"


def collect(
    store: Store, budgets: Budgets | None = None, default_checkpoint_sha256: str | None = None,
    threshold: float = THRESHOLD, alpha: float = ALPHA, progress: Callable[[str], None] | None = None,
) -> SiteData:
    """Everything the site shows, from ``store``.

    Args:
        default_checkpoint_sha256: the bundled default model's; a tier card prefers its artifacts
            and says when a tier has none.
        threshold, alpha: compare's criteria for the change marks.
        progress: called with a line per run compared.
    """
    budgets = budgets or Budgets()
    summaries = sorted(store.runs(), key=lambda r: (r.started_at, r.finished_at, r.run_id))
    parity_runs = store.parity_runs()  # newest first
    parity_by_file = _newest_parity_by_file(store, parity_runs)
    documents = {s.run_id: store.document(s.run_id) for s in summaries}
    last_of_device: dict[str, str] = {}
    runs: list[RunView] = []
    for s in summaries:
        doc = documents[s.run_id]
        stored = store.results(s.run_id)
        previous = last_of_device.get(s.device_name, "")
        comparison = None
        if previous:
            if progress:
                progress(f"compare {previous[:12]} -> {s.run_id[:12]} ({s.device_name})")
            comparison = compare_documents(previous, documents[previous], s.run_id, doc, threshold, alpha)
        last_of_device[s.device_name] = s.run_id
        results = [
            ArtifactResult(
                **{f.name: getattr(r, f.name) for f in fields(StoredResult)}, started_at=s.started_at,
                parity=parity_by_file.get((s.device_tier, r.sha256), NOT_RUN) if not r.peer else NOT_RUN,
            )
            for r in stored
        ]
        run = doc["run"]
        runs.append(RunView(
            run_id=s.run_id, started_at=s.started_at, finished_at=s.finished_at, device_name=s.device_name, tier=s.device_tier,
            emulated=s.emulated, target=s.target, git_commit=s.git_commit, protocol=run["protocol"]["name"],
            session=run.get("session") or "", notes=list(run.get("notes") or []), device=run["device"], results=results,
            previous=previous, comparison=comparison,
        ))
    tier_names = sorted({r.tier for r in runs} | {p.device_tier for p in parity_runs})
    tiers = []
    for name in tier_names:
        tier_runs = [r for r in runs if r.tier == name]
        tier_parity = [p for p in parity_runs if p.device_tier == name]
        emulated = any(r.emulated for r in tier_runs) or any(p.emulated for p in tier_parity)
        tiers.append(TierView(
            tier=name, slug=slug(name), emulated=emulated, budget_ms=budgets.of(name), runs=tier_runs,
            parity=_tier_parity(tier_parity), latest=_latest_per_bucket(tier_runs, default_checkpoint_sha256),
            rows=_latest_rows(tier_runs),
            devices=sorted({r.device_name for r in tier_runs} | {p.device_name for p in tier_parity}),
        ))
    devices = []
    for name in sorted({r.device_name for r in runs} | {p.device_name for p in parity_runs}):
        device_runs = [r for r in runs if r.device_name == name]
        device_parity = [p for p in parity_runs if p.device_name == name]
        description = device_runs[-1].device if device_runs else device_parity[0].device
        devices.append(DeviceView(
            name=name, slug=slug(name), tier=description.get("tier", ""), emulated=bool(description.get("emulated")),
            description=description, runs=device_runs, parity_runs=device_parity,
        ))
    return SiteData(
        store_url=store.url, generated_at=datetime.now(UTC), default_checkpoint_sha256=default_checkpoint_sha256,
        threshold=threshold, alpha=alpha, tiers=tiers, devices=devices,
    )


def _newest_parity_by_file(store: Store, parity_runs: list) -> dict[tuple[str, str], ParityCell]:
    """(tier, artifact sha256) -> the newest stored parity check of that file on that tier
    (``parity_runs`` is newest first), read once for every artifact of every run."""
    cells: dict[tuple[str, str], ParityCell] = {}
    for p in parity_runs:
        for row in store.parity_results(p.parity_id):
            if row.sha256 is None or (p.device_tier, row.sha256) in cells:
                continue
            worst = "" if row.min_iou is None else f"; min IoU {row.min_iou:.4f}, max abs error {row.max_abs_error:.3g}"
            why = f": {row.message or row.error}" if not row.passed else ""
            detail = f"{row.frames} golden frames on {p.device_name}, {p.started_at:%Y-%m-%d %H:%M} UTC{worst}{why}"
            cells[(p.device_tier, row.sha256)] = ParityCell("verified" if row.passed else "failed", detail, p.parity_id,
                                                            p.started_at)
    return cells


def _tier_parity(tier_parity: list) -> ParityCell:
    if not tier_parity:
        return ParityCell("not run", "no parity check stored for this tier (backdrop parity --store)")
    p = tier_parity[0]
    failed = p.checked - p.passed
    frames = f", first {p.frames_limit} frames" if p.frames_limit else ""
    detail = (f"{p.passed} of {p.checked} artifacts passed on {p.device_name} ({p.target}{frames}), "
              f"{p.started_at:%Y-%m-%d %H:%M} UTC")
    return ParityCell("failed" if failed or not p.checked else "verified", detail, p.parity_id, p.started_at)


def _latest_rows(tier_runs: list[RunView]) -> list[ArtifactResult]:
    """Per artifact key, its newest result on the tier; by bucket, peer last, then key."""
    latest: dict[str, ArtifactResult] = {}
    for run in tier_runs:
        for r in run.results:
            latest[r.key] = r
    return sorted(latest.values(), key=lambda r: (r.bucket, r.peer, r.key))


def _latest_per_bucket(tier_runs: list[RunView], default_sha: str | None) -> list[BucketLatest]:
    out = []
    for bucket in sorted({r.bucket for run in tier_runs for r in run.results if not r.peer}):
        run = next(run for run in reversed(tier_runs) if any(r.bucket == bucket and not r.peer for r in run.results))
        own = [r for r in run.results if r.bucket == bucket and not r.peer and r.latency is not None]
        if not own:
            continue
        default = [r for r in own if default_sha and r.checkpoint_sha256 == default_sha]
        pool = default or own
        best = min(pool, key=lambda r: r.latency.p50)
        peers = [r for r in run.results if r.bucket == bucket and r.peer and r.latency is not None]
        out.append(BucketLatest(bucket, best, peers[0] if peers else None, bool(default)))
    return out


__all__ = [
    "DEFAULT_BUDGET_MS", "NOT_RUN", "PARITY_STATES", "ArtifactResult", "BucketLatest", "Budgets", "DeviceView", "ParityCell",
    "RunView", "SiteData", "TierView", "collect", "slug",
]
