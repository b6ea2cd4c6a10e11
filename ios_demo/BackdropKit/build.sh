#!/usr/bin/env bash
# Build and test BackdropKit on Linux with Debian trixie's Swift toolchain (swiftlang 6.0), in a
# trixie root under the project's cache: swiftlang needs glibc >= 2.38 and this machine is
# bookworm (2.36), so the toolchain runs chrooted there (../shared/devices.md). Nothing is
# installed on this machine; mmdebstrap itself is unpacked from its .deb into the cache.
#
#   ios_demo/BackdropKit/build.sh            make the root (once), swift build, swift test (XCTest
#                                            over the goldens of BACKDROP_GOLDEN_DIST, default
#                                            dist/ios-arm64)
#   ios_demo/BackdropKit/build.sh toolchain  make the root only
#   ios_demo/BackdropKit/build.sh compile    make the root (once) and build the products only
#   ios_demo/BackdropKit/build.sh run CMD..  run CMD inside the root, in the caller's folder, with
#                                            the checkout and /tmp at their own paths
#
# The products land in build/ios-kit/ (SwiftPM's scratch folder); build/ios-kit/command is the
# command line that runs the backdrop-kit tool (backdrop conformance --impl swift reads it);
# build/ios-kit/results-sample.json the results document BenchTests builds.
# Needs root (mmdebstrap --mode=root, a private mount namespace for the chroot): CI runs as root.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="$ROOT/.cache/backdrop-swift"
SYSROOT="$CACHE/root"
OUT="$ROOT/build/ios-kit"
PACKAGES="swiftlang,libc6-dev,libstdc++-14-dev"
die() { echo "ios-kit: error: $*" >&2; exit 1; }
step_done() { echo "[ios-kit] $1"; }
DEBIAN_APT="$ROOT/.cache/backdrop-native/apt"
# shellcheck source=../../device_tests/native/debian.sh
. "$ROOT/device_tests/native/debian.sh"

inside() {  # in a private mount namespace (unshare --mount): mount, chroot, run "$@" in $PWD
    mount -t proc proc "$SYSROOT/proc"
    mount --rbind /dev "$SYSROOT/dev"
    mkdir -p "$SYSROOT$ROOT" "$SYSROOT/tmp"
    mount --bind "$ROOT" "$SYSROOT$ROOT"
    mount --bind /tmp "$SYSROOT/tmp"
    mkdir -p "$OUT/home"
    exec chroot "$SYSROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$OUT/home" LANG=C.UTF-8 \
        BACKDROP_GOLDEN_DIST="${BACKDROP_GOLDEN_DIST:-}" BACKDROP_RESULTS_SAMPLE="${BACKDROP_RESULTS_SAMPLE:-}" /bin/bash -c 'cd "$1" && shift && exec "$@"' _ "$PWD" "$@"
}

if [ "${1:-}" = __inside ]; then
    shift
    inside "$@"
fi

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap --mode=root and a chroot); CI runs as root."
command -v unshare >/dev/null && command -v chroot >/dev/null || die "unshare and chroot (util-linux, coreutils) are needed."

toolchain() {
    # usr/bin/swift is an absolute link into the root (usr/libexec/swift): test the link, not its target.
    if [ -L "$SYSROOT/usr/bin/swift" ] && [ "$(cat "$SYSROOT/.backdrop-root" 2>/dev/null)" = "trixie $PACKAGES" ]; then
        return 0
    fi
    local t0 mm
    t0=$(date +%s)
    mkdir -p "$CACHE/debs"
    mm="$CACHE/mmdebstrap"
    if [ ! -x "$mm/usr/bin/mmdebstrap" ]; then
        debian_ready
        debian_download "$CACHE/debs" "$CACHE/download.log" mmdebstrap
        rm -rf "$mm" && dpkg -x "$(ls "$CACHE"/debs/mmdebstrap_*.deb | head -n1)" "$mm"
    fi
    rm -rf "$SYSROOT.tmp"
    perl "$mm/usr/bin/mmdebstrap" --mode=root --variant=apt --include="$PACKAGES" trixie "$SYSROOT.tmp" "$(debian_mirror)" \
        >"$CACHE/mmdebstrap.log" 2>&1 || { tail -n 20 "$CACHE/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $CACHE/mmdebstrap.log)."; }
    echo "trixie $PACKAGES" > "$SYSROOT.tmp/.backdrop-root"
    rm -rf "$SYSROOT" && mv "$SYSROOT.tmp" "$SYSROOT"
    step_done "trixie root with $PACKAGES in $(( $(date +%s) - t0 )) s ($(du -sh "$SYSROOT" | cut -f1))"
}

# Runs "$@" in the root, in the caller's folder (which must be under the checkout or /tmp: all the root sees).
in_root() {
    case "$PWD/" in
        "$ROOT"/*|/tmp/*) ;;
        *) die "run from inside $ROOT or /tmp (the Swift root sees only those); here: $PWD" ;;
    esac
    unshare --mount --fork -- bash "$HERE/build.sh" __inside "$@"
}

toolchain
case "${1:-}" in
    toolchain) exit 0 ;;
    run) shift; in_root "$@"; exit $? ;;
esac
t0=$(date +%s)
cd "$HERE"
in_root swift build --scratch-path "$OUT/swiftpm" -c release
step_done "swift build in $(( $(date +%s) - t0 )) s"
BIN="$(in_root swift build --scratch-path "$OUT/swiftpm" -c release --show-bin-path)"
# The tool runs in the root too (its glibc); backdrop conformance --impl swift runs this line.
echo "$HERE/build.sh run $BIN/backdrop-kit" > "$OUT/command"
[ "${1:-}" = compile ] && exit 0
t0=$(date +%s)
# BenchTests keeps the results document it builds there, for tests/test_ios_results.py (pytest -m swift).
rm -f "$OUT/results-sample.json"
BACKDROP_GOLDEN_DIST="$(cd "$ROOT" && realpath -m "${BACKDROP_GOLDEN_DIST:-dist/ios-arm64}")" \
    BACKDROP_RESULTS_SAMPLE="$OUT/results-sample.json" in_root swift test --scratch-path "$OUT/swiftpm"
step_done "swift test in $(( $(date +%s) - t0 )) s"
