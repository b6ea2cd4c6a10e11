#!/usr/bin/env bash
# A real adbd on this machine, for the adb device's tests (make adbd / make adbd-stop).
#
#   scripts/adbd.sh fetch           Debian bookworm-backports adbd 34 (+ adb, and the libraries
#                                   this machine lacks) unpacked into .cache/backdrop-adb/
#   scripts/adbd.sh start [PORT]    fetch if needed, start adbd on PORT (default 6555), wait until
#                                   it listens; prints the serial to use: 127.0.0.1:PORT
#   scripts/adbd.sh stop [PORT]     stop it and everything its shells still run
#   scripts/adbd.sh status [PORT]   exit 0 if it runs
#
# The "device" is this Linux machine itself (no getprop, no /data/local/tmp until the adb
# device creates it): the adb device sees an x86_64 Linux shell and runs the aarch64 bundle
# there through qemu, labelled "emulated arm64 over adb". PORT must lie outside 5555-5585,
# which the adb server probes on its own (an adbd there shows up as emulator-N).
# adbd listens on every interface and asks for no authentication: a root shell for anyone who
# reaches the port. Run it only on a machine no untrusted network reaches, and stop it after.
# Nothing is installed: /etc/apt and dpkg's database are untouched (device_tests/native/debian.sh).
set -euo pipefail

die() { echo "adbd.sh: error: $*" >&2; exit 1; }
step_done() { echo "[adbd.sh] $1"; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/backdrop-adb"
DEBIAN_APT="$ROOT/.cache/backdrop-native/apt"
# shellcheck source=../device_tests/native/debian.sh
. "$ROOT/device_tests/native/debian.sh"

TOOLS="$CACHE/root"
ADBD="$TOOLS/usr/lib/android-sdk/platform-tools/adbd"
LIBS="$TOOLS/usr/lib/x86_64-linux-gnu/android:$TOOLS/usr/lib/x86_64-linux-gnu"

fetch() {
    if [ -x "$ADBD" ] && LD_LIBRARY_PATH="$LIBS" ldd "$ADBD" 2>/dev/null | grep -q "not found"; then
        rm -rf "$TOOLS"  # unpacked on a machine that had other libraries: fetch again
    fi
    [ -x "$ADBD" ] && return 0
    [ "$(uname -m)" = x86_64 ] || die "the loopback adbd is fetched for x86_64 hosts only (this host: $(uname -m))."
    mkdir -p "$CACHE"
    debian_fetch_unpack "$TOOLS" "$CACHE/debs" "$CACHE/download.log" adbd/bookworm-backports adb/bookworm-backports
    [ -x "$ADBD" ] || die "$TOOLS has no adbd after unpacking (log: $CACHE/download.log)."
}

port_of() {
    local port="${1:-${ADBD_PORT:-6555}}"
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65535 ] \
        || die "port '$port' is not a number in 1024-65535."
    if [ "$port" -ge 5555 ] && [ "$port" -le 5585 ]; then
        die "port $port lies in 5555-5585, which the adb server probes for emulators; use one outside (e.g. 6555)."
    fi
    echo "$port"
}
pidfile() { echo "$CACHE/adbd-$1.pid"; }
running() { local f; f="$(pidfile "$1")"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    local port; port="$(port_of "${1:-}")"
    fetch
    if running "$port"; then echo "[adbd.sh] adbd already runs on 127.0.0.1:$port (pid $(cat "$(pidfile "$port")"))"; return 0; fi
    listening "$port" && die "something else listens on port $port; pick another (scripts/adbd.sh start PORT)."
    mkdir -p "$CACHE"
    # setsid: its own session, so that stop can end adbd and every shell it started.
    ADBD_PORT="$port" LD_LIBRARY_PATH="$LIBS" setsid "$ADBD" >"$CACHE/adbd-$port.log" 2>&1 < /dev/null &
    echo $! > "$(pidfile "$port")"
    for _ in $(seq 100); do
        listening "$port" && { echo "[adbd.sh] $(grep -m1 "^adbd_" "$TOOLS/.backdrop-debs" | sed "s/_amd64.deb//;s/_/ /") listens on port $port (pid $!); serial 127.0.0.1:$port"; return 0; }
        kill -0 "$!" 2>/dev/null || { tail -n 5 "$CACHE/adbd-$port.log" >&2; die "adbd exited at start (log: $CACHE/adbd-$port.log)."; }
        sleep 0.1
    done
    die "adbd did not listen on port $port within 10 s (log: $CACHE/adbd-$port.log)."
}

descendants() {  # descendants PID: every process below PID (adbd's shells run in sessions of their own)
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}

stop() {
    local port; port="$(port_of "${1:-}")"
    local f; f="$(pidfile "$port")"
    if running "$port"; then
        local pid kids; pid="$(cat "$f")"
        kids="$(descendants "$pid" | tr '\n' ' ')"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
        # shellcheck disable=SC2086
        [ -z "$kids" ] || kill -KILL $kids 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        echo "[adbd.sh] stopped adbd on port $port (pid $pid)"
    else
        echo "[adbd.sh] no adbd of ours runs on port $port"
    fi
    rm -f "$f"
}

case "${1:-}" in
    fetch) fetch; echo "$ADBD" ;;
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    status) port="$(port_of "${2:-}")"; running "$port" && echo "[adbd.sh] adbd runs on 127.0.0.1:$port" ;;
    -h|--help|"") sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; [ -n "${1:-}" ] ;;
    *) die "unknown command '$1' (fetch, start [PORT], stop [PORT], status [PORT])" ;;
esac
