"""Debian's chromium, headless, driven by Playwright: for the dashboard's browser tests and the
README's screenshot (scripts/dashboard_screenshot.py). Playwright is a dev dependency and never
downloads a browser here: it starts the system's (``BACKDROP_CHROMIUM``, default
/usr/bin/chromium; `make chromium` installs it)."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from backdrop.core.errors import ConfigError

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
)
"""This machine's network is closed: without the background-networking flags chromium keeps
trying Google's hosts; --no-sandbox because tests run as root."""


def chromium_path() -> Path:
    path = Path(os.environ.get("BACKDROP_CHROMIUM", "/usr/bin/chromium"))
    if not path.is_file():
        raise ConfigError(f"no chromium at {path}: `make chromium` installs Debian's, or set BACKDROP_CHROMIUM.")
    return path


@contextmanager
def chromium():
    """A started headless chromium (a Playwright ``Browser``) with a fresh profile; closed after."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="backdrop-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=str(chromium_path()), headless=True, args=list(FLAGS),
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


__all__ = ["FLAGS", "chromium", "chromium_path"]
