"""The latency protocol of ``backdrop bench``: how many frames, how long, in what order, and
when a round may start (the thermal and clock gate). docs/benchmarking.md explains the choices."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from backdrop.core.errors import ConfigError
from backdrop.device_tests.base import BenchPlan


@dataclass(frozen=True)
class Gate:
    """Before each round: wait until every thermal zone reads below ``max_temp_c`` and no CPU's
    clock cap is below its hardware maximum (a throttled CPU), polling every ``poll_s``; after
    ``timeout_s`` the round starts anyway and is flagged ``gate-timed-out``."""

    max_temp_c: float = 45.0
    timeout_s: float = 60.0
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        if self.timeout_s < 0 or self.poll_s <= 0 or not math.isfinite(self.max_temp_c):
            raise ConfigError(f"gate needs timeout_s >= 0, poll_s > 0 and a finite max_temp_c, got {self}.")


@dataclass(frozen=True)
class Protocol:
    """How every artifact is timed.

    Attributes:
        name: "quick", "mlperf" or "custom".
        warmup: untimed frames after each load.
        min_frames: timed frames per artifact, at least, over all rounds.
        min_seconds: seconds of timed frames per artifact, at least, over all rounds.
        rounds: rounds per artifact; within a bucket the artifacts (fp32 and int8 twins, every
            format and state form) take turns, the order rotated by one place each round, so that a
            change in the machine's load or clock hits all of them alike.
        cooldown_s: idle seconds before each round.
        gate: the thermal and clock gate before each round.
        threads: threads asked of the runtime (0: its default).
        e2e: time each frame end to end as well as the model call alone.
    """

    name: str = "quick"
    warmup: int = 3
    min_frames: int = 100
    min_seconds: float = 1.0
    rounds: int = 5
    cooldown_s: float = 0.0
    gate: Gate = field(default_factory=Gate)
    threads: int = 0
    e2e: bool = True

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_frames < 1 or self.min_seconds < 0 or self.rounds < 1 or self.cooldown_s < 0:
            raise ConfigError(
                "a protocol needs warmup >= 0, min_frames >= 1, min_seconds >= 0, rounds >= 1 and cooldown_s >= 0; "
                f"got warmup={self.warmup}, min_frames={self.min_frames}, min_seconds={self.min_seconds}, "
                f"rounds={self.rounds}, cooldown_s={self.cooldown_s}."
            )
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0: the runtime's default), got {self.threads}.")

    def round_plan(self) -> BenchPlan:
        """One round's share: the frames and seconds split evenly over the rounds."""
        return BenchPlan(
            warmup=self.warmup, min_frames=math.ceil(self.min_frames / self.rounds),
            min_seconds=self.min_seconds / self.rounds, e2e=self.e2e,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gate"] = {"max_temp_c": self.gate.max_temp_c, "timeout_s": self.gate.timeout_s}
        del d["e2e"]
        d["frames"] = (
            "each bucket's golden sequence (camera buffers as an app receives them), in order, wrapping round, the state "
            "carried and reset where the golden resets it"
        )
        return d


PROTOCOLS: dict[str, Protocol] = {
    "quick": Protocol(),
    # MLPerf Mobile's single-stream rule: >= 1024 queries and >= 60 s per result.
    "mlperf": Protocol(name="mlperf", warmup=10, min_frames=1024, min_seconds=60.0, rounds=8, cooldown_s=10.0,
                       gate=Gate(max_temp_c=45.0, timeout_s=300.0)),
}
"""The named protocols; ``--protocol NAME``. Any explicit setting makes it "custom"."""


def protocol_named(name: str, **overrides) -> Protocol:
    """The protocol ``name`` with the given fields replaced (None leaves a field as it is); any
    replacement renames it "custom".

    Raises:
        ConfigError: an unknown name (the message lists the known ones) or a bad value.
    """
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}.")
    base = PROTOCOLS[name]
    gate_fields = {k: overrides.pop(k) for k in ("max_temp_c", "gate_timeout_s") if k in overrides}
    changes = {k: v for k, v in overrides.items() if v is not None}
    gate_changes = {("timeout_s" if k == "gate_timeout_s" else k): v for k, v in gate_fields.items() if v is not None}
    if gate_changes:
        changes["gate"] = replace(base.gate, **gate_changes)
    if not changes:
        return base
    return replace(base, name="custom" if any(getattr(base, k) != v for k, v in changes.items()) else base.name, **changes)


@dataclass(frozen=True)
class GateCheck:
    """What the gate saw before one round."""

    round: int
    waited_s: float
    timed_out: bool
    readings: dict[str, float]

    def to_dict(self) -> dict:
        return {"round": self.round, "waited_s": round(self.waited_s, 3), "timed_out": self.timed_out,
                "readings": dict(self.readings)}


def gate_blockers(readings: dict[str, float], gate: Gate) -> list[str]:
    """Why a round may not start yet ([] when it may): zones at or above the limit, CPUs whose
    clock cap is below their maximum."""
    hot = [f"{k.split(':', 1)[1]} {v:.1f} C" for k, v in readings.items() if k.startswith("temp_c:") and v >= gate.max_temp_c]
    capped = []
    for key, cap in readings.items():
        if key.startswith("cap_mhz:"):
            top = readings.get("max_mhz:" + key.split(":", 1)[1])
            if top is not None and cap < top * 0.999:
                capped.append(f"{key.split(':', 1)[1]} capped at {cap:.0f} of {top:.0f} MHz")
    return hot + capped


def wait_for_gate(
    read: Callable[[], dict[str, float]], gate: Gate, round_index: int,
    sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
) -> GateCheck:
    """Poll ``read()`` until :func:`gate_blockers` is empty or ``gate.timeout_s`` has passed.
    A device that exposes nothing passes at once with empty readings."""
    start = clock()
    while True:
        readings = read()
        waited = clock() - start
        if not gate_blockers(readings, gate):
            return GateCheck(round_index, waited, False, readings)
        if waited >= gate.timeout_s:
            return GateCheck(round_index, waited, True, readings)
        sleep(min(gate.poll_s, max(gate.timeout_s - waited, 0.0)) or gate.poll_s)


__all__ = ["PROTOCOLS", "Gate", "GateCheck", "Protocol", "gate_blockers", "protocol_named", "wait_for_gate"]
