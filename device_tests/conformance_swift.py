"""ios_demo/BackdropKit as a conformance implementation: its ``backdrop-kit conformance``
tool (ios_demo/BackdropKit/Sources/backdrop-kit) reads the case file and writes the results
file of :mod:`backdrop.device_tests.conformance`. ``make ios-kit-test`` (or
``ios_demo/BackdropKit/build.sh compile``) builds it with Debian trixie's Swift in a trixie root
under .cache/ and writes build/ios-kit/command, the line that runs the tool in that root."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from backdrop.device_tests.conformance import IMPLEMENTATIONS, CaseFileImplementation, ConformanceError

BUILD_ENV = "BACKDROP_IOS_KIT_BUILD"
"""Overrides the folder the tool was built into (default build/ios-kit of this checkout)."""


def default_build() -> Path:
    if os.environ.get(BUILD_ENV):
        return Path(os.environ[BUILD_ENV])
    return Path(__file__).resolve().parents[1] / "build" / "ios-kit"


@IMPLEMENTATIONS.register("swift")
class SwiftImplementation(CaseFileImplementation):
    """ios_demo/BackdropKit's preprocessing (Swift 6 on Linux), as make ios-kit-test builds it."""

    name = "swift"
    summary = ("ios_demo/BackdropKit's Swift preprocessing on Linux (Debian's Swift in a trixie root), "
               "as make ios-kit-test builds it")

    def __init__(self, build: Path | None = None) -> None:
        self.build = Path(build) if build is not None else default_build()

    def ready(self) -> str:
        if not (self.build / "command").is_file():
            return f"no backdrop-kit tool in {self.build}: build it with `make ios-kit-test` (or set {BUILD_ENV})."
        return ""

    def command(self, cases_path: Path, results_path: Path) -> list[str]:
        # The tool runs chrooted in the trixie root, which sees /tmp and this checkout only.
        checkout = Path(__file__).resolve().parents[1]
        for p in (cases_path, results_path):
            where = p.resolve().parent
            if not (where.is_relative_to("/tmp") or where.is_relative_to(checkout)):
                raise ConformanceError(f"swift: {p} is outside /tmp and {checkout}, which is all the Swift root sees; "
                                       "unset TMPDIR or point it under /tmp.")
        tool = shlex.split((self.build / "command").read_text().strip())
        return [*tool, "conformance", "--cases", str(cases_path), "--out", str(results_path)]

    def program(self) -> str:
        return "the Swift tool (backdrop-kit conformance)"

    def describe(self) -> dict:
        return {**super().describe(), "build": str(self.build), "runtime": "Swift 6 (Debian trixie root)"}
