"""The results document ios_demo/BackdropKit writes for the app's benchmark mode (marker
``swift``; `make ios-kit-test` runs these after `swift test`, whose BenchTests builds one from a
fake clock and model over the export's goldens and keeps it in build/ios-kit/results-sample.json):
it satisfies backdrop/schemas/results.schema.json and `backdrop results import` stores it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backdrop.bench.document import validate_document
from backdrop.device_tests.conformance_swift import default_build

pytestmark = pytest.mark.swift


@pytest.fixture(scope="module")
def document_path() -> Path:
    path = default_build() / "results-sample.json"
    assert path.is_file(), f"{path} is missing: `make ios-kit-test` (swift test's BenchTests) writes it"
    return path


def test_the_swift_results_document_is_valid_and_names_the_phone(document_path):
    doc = json.loads(document_path.read_text())
    validate_document(doc, str(document_path))
    assert doc["run"]["source"] == "ios_demo benchmark mode"
    device = doc["run"]["device"]
    assert device["tier"] == "ios-iphone17-3" and device["emulated"] is False
    assert len(doc["results"]) == 3
    for r in doc["results"]:
        assert r["memory"] is None and len(r["model_ms"]) == sum(r["round_frames"])


def test_backdrop_results_import_stores_it_once(document_path, tmp_path):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    cli = [sys.executable, "-m", "backdrop.orchestration.cli", "results"]
    for _ in range(2):  # the second import finds the same run and adds nothing
        r = subprocess.run([*cli, "import", str(document_path), "--store", store, "--format", "json"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    r = subprocess.run([*cli, "list", "--store", store, "--format", "json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    runs = json.loads(r.stdout)
    assert len(runs) == 1, runs
