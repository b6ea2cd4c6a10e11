#!/usr/bin/env python
"""Screenshot of a built dashboard's overview page, for the README (`make screenshot`).

Usage: python scripts/dashboard_screenshot.py SITE OUT.png [--width 1280]

Opens SITE/index.html from disk in Debian's headless chromium (backdrop.dashboard.browser),
waits until every plot is drawn, and saves the whole page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    index = args.site / "index.html"
    if not index.is_file():
        print(f"error: {index} does not exist: build the site first (make dashboard).", file=sys.stderr)
        return 2
    from backdrop.dashboard.browser import chromium

    with chromium() as browser:
        page = browser.new_page()
        page.set_viewport_size({"width": args.width, "height": 900})
        page.goto(index.resolve().as_uri())
        page.wait_for_function("Array.from(document.querySelectorAll('div.plot')).every(d => d.querySelector('.main-svg'))")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp.png")
        page.screenshot(path=str(tmp), full_page=True)
        tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
