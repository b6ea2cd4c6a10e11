"""The parity document: one ``backdrop parity`` check of an export on one device, as JSON, the
form in which the results store keeps it (:meth:`backdrop.results.Store.write_parity`).

    {"format": "backdrop-parity-run", "format_version": "1.0",
     "run": {"started_at", "finished_at" (ISO 8601 UTC), "host", "backdrop_version", "git_commit",
             "target", "manifest_sha256", "device" (DeviceDescription), "frames_limit" (--frames
             or null), "skipped": [{"artifact", "why"}] (artifacts the device cannot run)},
     "results": [{"artifact": {"key", "bucket", "format", "precision", "state_form", "sha256"},
                  "passed", "frames", "worst": {"min_iou", "min_boundary_iou", "max_abs_error"},
                  "thresholds", "first_failure", "error", "message"}, ...]}

Worst values are null where the run itself failed (``error`` says why). Its id, like a results
document's, is the sha256 of its canonical JSON (:func:`backdrop.bench.document.document_id`).
The per-frame numbers stay in DIST/reports/parity-<device>.json.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from backdrop.bench.document import SUPPORTED_MAJOR, ResultsFormatError

if TYPE_CHECKING:  # device_tests pulls in the runtimes; nothing here needs them at run time
    from backdrop.device_tests.base import DeviceDescription
    from backdrop.device_tests.parity import ParityRecord

FORMAT = "backdrop-parity-run"
FORMAT_VERSION = "1.0"
WORST = ("min_iou", "min_boundary_iou", "max_abs_error")
"""The worst values of a result, as :meth:`ParityRecord.summary` names them."""

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # as results documents stamp times
_ARTIFACT_TEXT = ("key", "bucket", "format", "precision", "state_form")
_HEX = frozenset("0123456789abcdef")


def parity_document(
    records: Sequence[ParityRecord],
    device_description: DeviceDescription | Mapping,
    target: str,
    manifest_sha256: str | None,
    started_at: datetime | str,
    finished_at: datetime | str,
    frames_limit: int | None,
    git_commit: str | None,
    backdrop_version: str,
    host: str,
    *,
    artifact_sha256: Mapping[str, str | None] | None = None,
    skipped: Sequence[Mapping] = (),
) -> dict:
    """The parity document of one check (see the module docstring); not validated here
    (:meth:`Store.write_parity` does that).

    Args:
        records: the check's :class:`~backdrop.device_tests.parity.ParityRecord` s, in order.
        device_description: the device's ``describe()`` (or its ``to_dict()``).
        target, manifest_sha256: the export's target name and the sha256 of its manifest.json.
        started_at, finished_at: when the check ran; aware datetimes (naive ones are taken as
            UTC) or ISO 8601 strings, written as UTC like results documents' times.
        frames_limit: ``--frames`` (None: whole goldens).
        git_commit, backdrop_version, host: what ran it (:func:`backdrop.bench.run.git_commit`).
        artifact_sha256: artifact key -> the manifest's sha256 of its file; a key not in it
            has sha256 null.
        skipped: ``{"artifact", "why"}`` of the artifacts the device could not run.
    """
    shas = artifact_sha256 or {}
    device = device_description if isinstance(device_description, Mapping) else device_description.to_dict()
    device = dict(device)
    for field in ("runtime_versions", "details"):
        device[field] = {str(k): str(v) for k, v in (device.get(field) or {}).items()}
    results = []
    for record in records:
        summary, info = record.summary(), record.artifact_info
        results.append({
            "artifact": {"key": record.artifact, **{k: info[k] for k in _ARTIFACT_TEXT[1:]}, "sha256": shas.get(record.artifact)},
            "passed": bool(summary.passed),
            "frames": summary.frames,
            "worst": {k: summary.worst.get(k) for k in WORST},
            "thresholds": summary.thresholds,
            "first_failure": summary.first_failure,
            "error": summary.error,
            "message": record.message,
        })
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run": {
            "started_at": _stamp(started_at), "finished_at": _stamp(finished_at), "host": host,
            "backdrop_version": backdrop_version, "git_commit": git_commit, "target": target,
            "manifest_sha256": manifest_sha256, "device": device, "frames_limit": frames_limit,
            "skipped": [{"artifact": str(s["artifact"]), "why": str(s["why"])} for s in skipped],
        },
        "results": results,
    }


def _stamp(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).strftime(_TIME_FORMAT)


def validate_parity_document(document: object, what: str = "parity document") -> None:
    """Raise :class:`ResultsFormatError` unless ``document`` is a parity document this version
    reads; the message names the first field that is wrong (``run/device/tier``,
    ``results/2/passed``) and what it should be. Fields it does not know are allowed."""

    def fail(where: str, should: str, value: object = None, shown: bool = True) -> None:
        got = f" (got {value!r})" if shown else ""
        raise ResultsFormatError(f"{what}: {where} must be {should}{got}.")

    def field(parent: dict, key: str, where: str, ok, should: str):
        if key not in parent:
            fail(f"{where}{key}", f"{should}, and is missing", shown=False)
        if not ok(parent[key]):
            fail(f"{where}{key}", should, parent[key])
        return parent[key]

    if not isinstance(document, dict):
        fail("the document", "a JSON object", type(document).__name__)
    field(document, "format", "", lambda v: v == FORMAT, f"{FORMAT!r} (is it a parity document?)")
    version = field(document, "format_version", "", lambda v: isinstance(v, str) and v.split(".")[0].isdigit(),
                    'a version string such as "1.0"')
    if int(version.split(".")[0]) != SUPPORTED_MAJOR:
        raise ResultsFormatError(f"{what}: format_version {version} is not readable by this backdrop (it reads "
                                 f"{SUPPORTED_MAJOR}.x); upgrade backdrop.")
    run = field(document, "run", "", _is(dict), "an object")
    times = [field(run, key, "run/", _is_time, "an ISO 8601 date-time, e.g. 2026-12-01T09:30:00.000000Z")
             for key in ("started_at", "finished_at")]
    if _aware(times[1]) < _aware(times[0]):
        fail("run/finished_at", f"no earlier than run/started_at {times[0]}", times[1])
    for key in ("host", "backdrop_version", "target"):
        field(run, key, "run/", _is_text, "a non-empty string")
    field(run, "git_commit", "run/", lambda v: v is None or _is_text(v), "a string or null")
    field(run, "manifest_sha256", "run/", lambda v: v is None or _is_sha(v), "64 lowercase hex characters or null")
    device = field(run, "device", "run/", _is(dict), "an object (the device's description)")
    for key in ("name", "tier"):
        field(device, key, "run/device/", _is_text, "a non-empty string")
    field(device, "emulated", "run/device/", _is(bool), "true or false")
    field(run, "frames_limit", "run/", lambda v: v is None or (_is_int(v) and v >= 1), "a positive integer or null")
    skipped = run.get("skipped", [])
    if not isinstance(skipped, list):
        fail("run/skipped", "a list", skipped)
    for i, s in enumerate(skipped):
        if not (isinstance(s, dict) and _is_text(s.get("artifact")) and isinstance(s.get("why"), str)):
            fail(f"run/skipped/{i}", 'an object {"artifact": ..., "why": ...}', s)
    results = field(document, "results", "", _is(list), "a list")
    for i, result in enumerate(results):
        where = f"results/{i}/"
        if not isinstance(result, dict):
            fail(f"results/{i}", "an object", result)
        artifact = field(result, "artifact", where, _is(dict), "an object")
        for key in _ARTIFACT_TEXT:
            field(artifact, key, f"{where}artifact/", _is_text, "a non-empty string")
        field(artifact, "sha256", f"{where}artifact/", lambda v: v is None or _is_sha(v), "64 lowercase hex characters or null")
        field(result, "passed", where, _is(bool), "true or false")
        field(result, "frames", where, lambda v: v is None or (_is_int(v) and v >= 0), "a non-negative integer or null")
        worst = field(result, "worst", where, _is(dict), "an object")
        for key in WORST:
            field(worst, key, f"{where}worst/", _is_number_or_null, "a finite number or null")
        field(result, "thresholds", where, _is(dict), "an object")
        field(result, "first_failure", where, lambda v: v is None or isinstance(v, dict), "an object or null")
        for key in ("error", "message"):
            field(result, key, where, _is(str), "a string")


def _is(kind: type):
    return lambda v: isinstance(v, kind)


def _is_text(v: object) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number_or_null(v: object) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def _is_sha(v: object) -> bool:
    return isinstance(v, str) and len(v) == 64 and set(v) <= _HEX


def _is_time(v: object) -> bool:
    if not isinstance(v, str):
        return False
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def _aware(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


__all__ = ["FORMAT", "FORMAT_VERSION", "WORST", "parity_document", "validate_parity_document"]
