"""The Kotlin core of android_demo/ as a conformance implementation: its harness
(android_demo/core/src/main/kotlin/Conformance.kt) reads the case file and writes the results
file of :mod:`backdrop.device_tests.conformance` on the JVM. ``make android-core-test`` (or
``android_demo/core/build.sh compile``) builds it into build/android-core/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from backdrop.device_tests.conformance import IMPLEMENTATIONS, CaseFileImplementation

BUILD_ENV = "BACKDROP_ANDROID_CORE_BUILD"
"""Overrides the folder the harness was built into (default build/android-core of this checkout)."""


def default_build() -> Path:
    if os.environ.get(BUILD_ENV):
        return Path(os.environ[BUILD_ENV])
    return Path(__file__).resolve().parents[1] / "build" / "android-core"


@IMPLEMENTATIONS.register("kotlin")
class KotlinImplementation(CaseFileImplementation):
    """android_demo/core's preprocessing on the JVM (Kotlin, as make android-core-test builds it)."""

    name = "kotlin"
    summary = "android_demo/core's Kotlin preprocessing on the JVM, as make android-core-test builds it"

    def __init__(self, build: Path | None = None) -> None:
        self.build = Path(build) if build is not None else default_build()

    def ready(self) -> str:
        if not (self.build / "classpath").is_file():
            return f"no Kotlin harness in {self.build}: build it with `make android-core-test` (or set {BUILD_ENV})."
        if shutil.which("java") is None:
            return "no java on PATH (OpenJDK 17: Debian's openjdk-17-jdk-headless)."
        return ""

    def command(self, cases_path: Path, results_path: Path) -> list[str]:
        classpath = (self.build / "classpath").read_text().strip()
        harness = "ai.backdrop.core.ConformanceKt"
        return ["java", "-cp", classpath, harness, "--cases", str(cases_path), "--out", str(results_path)]

    def program(self) -> str:
        return "the Kotlin harness (ai.backdrop.core.ConformanceKt)"

    def describe(self) -> dict:
        return {**super().describe(), "build": str(self.build), "runtime": "JVM"}
