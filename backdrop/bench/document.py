"""The results document: one benchmark run on one device, as JSON.

``backdrop bench`` writes it, the demo apps' benchmark modes write it, ``backdrop results
import`` reads it. Its schema is backdrop/schemas/results.schema.json (shipped to app
developers; docs/benchmarking.md describes it).
"""

from __future__ import annotations

import hashlib
import json
import math
from importlib import resources

from backdrop.core.errors import BackdropError

FORMAT = "backdrop-results"
FORMAT_VERSION = "1.0"
SUPPORTED_MAJOR = 1


class ResultsFormatError(BackdropError):
    """A results document does not satisfy its schema (the message lists every violation)."""


def schema() -> dict:
    """The shipped JSON Schema of results documents."""
    return json.loads(resources.files("backdrop").joinpath("schemas/results.schema.json").read_text())


def validate_document(document: object, what: str = "results document") -> None:
    """Raise :class:`ResultsFormatError` unless ``document`` is a results document this
    version reads: a newer major format_version is refused by name before the schema check."""
    import jsonschema

    if isinstance(document, dict):
        version = str(document.get("format_version", ""))
        major = version.split(".")[0]
        if major.isdigit() and int(major) != SUPPORTED_MAJOR:
            raise ResultsFormatError(
                f"{what}: format_version {version} is not readable by this backdrop (it reads {SUPPORTED_MAJOR}.x); "
                "upgrade backdrop, or re-export the results with a matching version."
            )
    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:20]]
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ResultsFormatError(f"{what} does not match backdrop/schemas/results.schema.json:\n  " + "\n  ".join(lines) + more)


def canonical_json(document: dict) -> str:
    """The document as one canonical string: sorted keys, no spaces, floats as Python writes
    them (the same document always gives the same string)."""

    def check(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise ResultsFormatError("results documents hold finite numbers only (found NaN or infinity).")
        if isinstance(value, dict):
            for v in value.values():
                check(v)
        elif isinstance(value, list):
            for v in value:
                check(v)

    check(document)
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def document_id(document: dict) -> str:
    """The run's identity: sha256 of :func:`canonical_json`. The same file imported twice has
    the same id, so the store adds it once."""
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


__all__ = ["FORMAT", "FORMAT_VERSION", "ResultsFormatError", "canonical_json", "document_id", "schema", "validate_document"]
