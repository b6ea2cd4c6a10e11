#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser tests (make chromium): nothing happens when
# /usr/bin/chromium (or $BACKDROP_CHROMIUM) runs already; else, as root with apt-get, Debian's
# `chromium` package is installed. Playwright drives it (executable_path); it never downloads
# a browser of its own.
set -euo pipefail
BROWSER="${BACKDROP_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$BROWSER" ] && "$BROWSER" --version >/dev/null 2>&1; then
    "$BROWSER" --version 2>/dev/null | tail -1
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "chromium.sh: error: no chromium at $BROWSER, and this is not root with apt-get: install Debian's chromium" \
         "(apt-get install chromium), or set BACKDROP_CHROMIUM to a Chromium binary." >&2
    exit 1
fi
echo "[chromium.sh] installing Debian's chromium (apt-get)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
"$BROWSER" --version 2>/dev/null | tail -1
