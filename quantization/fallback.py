"""Per-layer sensitivity and float fallback for int8 that misses its accuracy budget.

The search is format-independent; a format supplies an :class:`Int8Probe` that can quantize
any subset of the model's units (quantization/units.py) and run one frame of the result.

1. Sensitivity: each unit quantized *alone* (everything else float; the ops outside every
   unit are one more unit, ``"rest"``),
   the golden rolled through it with its own state fed back, scored by the mean absolute
   error of its probabilities against the float reference (a continuous score: one unit
   alone rarely flips a thresholded pixel, so IoU would tie).
2. Fallback: units kept in float in order of sensitivity, most sensitive first, one more at a
   time, each candidate (the rest int8) measured against the budget on the probe, until one
   holds. The caller then builds the real artifact with those units in float and checks it
   on its runtime; if that still misses, :func:`search_fallback` is resumed past that count.
3. More than ``budget.max_float_fraction`` of the units in float: :class:`FallbackError`.

Cost: one probe build and one golden roll per unit plus one per candidate; only paid when
the plain int8 artifact misses its budget.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from backdrop.core.errors import BackdropError
from backdrop.quantization.budget import AccuracyBudget, Quality, StepFn, measure_quality, run_explicit


class FallbackError(BackdropError):
    """int8 cannot meet the accuracy budget without keeping too much of the model in float."""


class Int8Probe(Protocol):
    """A format's way to try int8 variants quickly (explicit state, in memory).

    Attributes:
        units: every unit of the model, in order, and ``"rest"`` (units.REST).
        runtime: what the probe runs on (for the report), e.g. "PT2E reference (torch)".
    """

    units: tuple[str, ...]
    runtime: str

    def build(self, float_units: Collection[str]) -> StepFn:
        """int8 with ``float_units`` kept in float (``"rest"`` among them: the ops outside every
        unit, i.e. the wrapper's concat and the decoder's resizes and adds, too)."""
        ...


@dataclass
class Sensitivity:
    unit: str
    mean_abs_error: float
    iou_mean: float
    boundary_iou_mean: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Trial:
    float_units: tuple[str, ...]
    quality: Quality
    misses: list[str]
    on: str

    def to_dict(self) -> dict:
        return {"float_units": list(self.float_units), "quality": self.quality.to_dict(), "misses": self.misses, "on": self.on}


@dataclass
class FallbackSearch:
    """Sensitivity ranking, the trials made, and where the search stands."""

    budget: AccuracyBudget
    extra_checks: Callable[[Quality], list[str]] | None = None
    ranking: list[Sensitivity] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    float_units: tuple[str, ...] = ()

    def misses(self, quality: Quality) -> list[str]:
        """The budget's misses plus those of ``extra_checks`` (the caller's acceptance rule,
        e.g. per-frame parity floors), so the probe is held to what the artifact will be."""
        return quality.misses(self.budget) + (self.extra_checks(quality) if self.extra_checks else [])

    def to_dict(self) -> dict:
        return {
            "budget": self.budget.to_dict(),
            "ranking": [s.to_dict() for s in self.ranking],
            "trials": [t.to_dict() for t in self.trials],
            "float_units": list(self.float_units),
        }


@dataclass(frozen=True)
class Int8Decision:
    """What the int8 acceptance decided for one artifact (the manifest's ``quantization``
    entry and the quantization report are written from it).

    Attributes:
        budget: the budget it was held to.
        quality: its masks against the float reference over the golden; None where the
            verifying device could not run it.
        float_units: units kept in float (empty: plain int8 met the budget).
        fallback: why, in words.
        search: the fallback search as it stood when this artifact was decided
            (:meth:`FallbackSearch.to_dict`), or None when no search ran.
        checked: its masks against float over everything the budget was held to (the golden
            and the held-out clips back to back); None where not run.
        heldout: the same per held-out clip, by name.
    """

    budget: AccuracyBudget
    quality: Quality | None
    float_units: tuple[str, ...]
    fallback: str
    search: dict | None = None
    checked: Quality | None = None
    heldout: dict[str, Quality] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "budget": self.budget.to_dict(),
            "quality": self.quality.to_dict() if self.quality is not None else None,
            "float_units": list(self.float_units),
            "fallback": self.fallback,
            "search": self.search,
            "checked": self.checked.to_dict() if self.checked is not None else None,
            "heldout": {k: q.to_dict() for k, q in self.heldout.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> Int8Decision:
        def quality(q):
            return Quality(**{k: v for k, v in q.items() if k in Quality.__dataclass_fields__}) if q else None

        return cls(AccuracyBudget(**d["budget"]), quality(d.get("quality")), tuple(d["float_units"]), d["fallback"],
                   d.get("search"), quality(d.get("checked")), {k: quality(q) for k, q in (d.get("heldout") or {}).items()})


def rank_units(probe: Int8Probe, golden, log: Callable[[str], None] = lambda m: None) -> list[Sensitivity]:
    """Every unit quantized alone, most sensitive first (module docstring, step 1)."""
    out = []
    units = tuple(probe.units)
    for i, unit in enumerate(units):
        others = [u for u in units if u != unit]
        masks = run_explicit(probe.build(others), golden)
        q = measure_quality(masks, golden)
        out.append(Sensitivity(unit, q.mean_abs_error, q.iou_mean, q.boundary_iou_mean))
        log(f"  sensitivity {i + 1}/{len(units)}: {unit}: mean |error| {q.mean_abs_error:.2e}")
    out.sort(key=lambda s: -s.mean_abs_error)
    return out


def max_float_units(budget: AccuracyBudget, num_units: int) -> int:
    return int(np.floor(budget.max_float_fraction * num_units + 1e-9))


def search_fallback(
    probe: Int8Probe,
    golden,
    search: FallbackSearch,
    start: int = 1,
    log: Callable[[str], None] = lambda m: None,
) -> FallbackSearch:
    """The fewest most-sensitive units that, kept in float, meet ``search.budget`` on the probe.

    Args:
        probe: the format's probe.
        golden: the bucket's golden sequence.
        search: carries the budget (and any extra acceptance checks); its ranking is computed here when empty; trials are
            appended; ``float_units`` is set to the answer.
        start: the first count of float units to try (resume past a count whose real
            artifact missed).

    Raises:
        FallbackError: no count up to ``budget.max_float_fraction`` of the units holds.
    """
    if not search.ranking:
        search.ranking = rank_units(probe, golden, log)
    limit = max_float_units(search.budget, len(search.ranking))
    for k in range(start, limit + 1):
        units = tuple(s.unit for s in search.ranking[:k])
        q = measure_quality(run_explicit(probe.build(units), golden), golden)
        misses = search.misses(q)
        search.trials.append(Trial(units, q, misses, probe.runtime))
        log(f"  fallback with {k} unit(s) in float ({', '.join(units)}): " + ("; ".join(misses) or "budget holds"))
        if not misses:
            search.float_units = units
            return search
    best = min(search.trials, key=lambda t: len(t.misses)) if search.trials else None
    raise FallbackError(
        f"int8 cannot meet the accuracy budget {search.budget.to_dict()} with up to {limit} of "
        f"{len(search.ranking)} units in float (max_float_fraction {search.budget.max_float_fraction})"
        + (f"; the last try still missed: {'; '.join(search.trials[-1].misses)}" if best else "")
        + ". Relax the budget, drop int8 from the target, or fine-tune the model for quantization."
    )


__all__ = ["FallbackError", "FallbackSearch", "Int8Probe", "Sensitivity", "Trial", "rank_units", "search_fallback"]
