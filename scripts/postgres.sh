#!/usr/bin/env bash
# A PostgreSQL server on loopback for the results store's tests and for local use
# (make postgres / make postgres-stop / make test-postgres).
#
#   scripts/postgres.sh start    initdb once (.cache/backdrop-postgres/data), start the server on
#                                127.0.0.1:PORT, wait until it accepts connections, create the
#                                database `backdrop`; nothing happens if it runs already
#   scripts/postgres.sh stop     stop it
#   scripts/postgres.sh status   exit 0 if it runs
#   scripts/postgres.sh url      print its URL: postgresql://postgres@127.0.0.1:PORT/backdrop
#
# PORT is BACKDROP_PG_PORT, 55432 by default. The data folder moves to /tmp/backdrop-postgres-<hash>
# when the server's user cannot reach the checkout (one under root's 0700 home). Authentication is `trust` for the superuser
# `postgres` over loopback and the unix socket (in the data folder) only: the server listens on
# 127.0.0.1 and nowhere else. The binaries come from /usr/lib/postgresql/<version>/bin (or
# PG_BIN); where there are none and this runs as root with apt-get, Debian's `postgresql`
# package is installed. PostgreSQL refuses to run as root: as root, the server runs as the
# `postgres` system user (Debian's package creates it), else as `nobody`.
set -euo pipefail

die() { echo "postgres.sh: error: $*" >&2; exit 1; }
step() { echo "[postgres.sh] $*"; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${BACKDROP_PG_PORT:-55432}"
DB=backdrop
SUPERUSER=postgres
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1024 ] && [ "$PORT" -le 65535 ] \
    || die "BACKDROP_PG_PORT '$PORT' is not a port number in 1024-65535."

# The user the server runs as: this one, or as root the `postgres` system user (else `nobody`).
if [ "$(id -u)" -eq 0 ]; then
    if id -u postgres >/dev/null 2>&1; then RUNAS=postgres; else RUNAS=nobody; fi
else
    RUNAS="$(id -un)"
fi

# The data folder: in the checkout, unless the server's user cannot reach it there (a checkout
# under root's home, mode 0700): then under /tmp, one per checkout.
home_of() {
    local base="$ROOT/.cache/backdrop-postgres"
    if [ "$(id -u)" -eq 0 ] && [ "$RUNAS" != root ] && ! as_server test -x "$ROOT"; then
        base="/tmp/backdrop-postgres-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
    fi
    echo "$base"
}
as_server() {  # as_server CMD...: run CMD as the server's user
    if [ "$(id -u)" -eq 0 ] && [ "$RUNAS" != root ]; then
        command -v runuser >/dev/null 2>&1 || die "runuser (util-linux) is needed to run PostgreSQL as $RUNAS."
        (cd / && runuser -u "$RUNAS" -- "$@")
    else
        "$@"
    fi
}

find_bin() {
    local d
    if [ -n "${PG_BIN:-}" ]; then
        [ -x "$PG_BIN/pg_ctl" ] || die "PG_BIN=$PG_BIN has no pg_ctl."
        echo "$PG_BIN"; return 0
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir)"
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    fi
    return 1
}

install_postgres() {
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 \
        || die "no PostgreSQL server binaries found (initdb, pg_ctl); install PostgreSQL (Debian: apt-get install postgresql) or set PG_BIN to its bin folder."
    step "installing PostgreSQL: apt-get install postgresql (log: /tmp/backdrop-postgres-apt.log)"
    {
        DEBIAN_FRONTEND=noninteractive apt-get update \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
    } >/tmp/backdrop-postgres-apt.log 2>&1 || { tail -n 20 /tmp/backdrop-postgres-apt.log >&2; die "apt-get install postgresql failed."; }
    if [ "$RUNAS" = nobody ] && id -u postgres >/dev/null 2>&1; then RUNAS=postgres; fi
}

BIN="$(find_bin || true)"
HOME_DIR="$(home_of)"
DATA="$HOME_DIR/data"
LOG="$HOME_DIR/postgres.log"

running() { [ -n "$BIN" ] && [ -f "$DATA/PG_VERSION" ] && as_server "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }
running_port() { sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
url() { echo "postgresql://$SUPERUSER@127.0.0.1:$1/$DB"; }

init_data() {
    [ "$HOME_DIR" = "$ROOT/.cache/backdrop-postgres" ] \
        || step "data folder in $HOME_DIR: the server's user $RUNAS cannot reach $ROOT"
    mkdir -p "$HOME_DIR"
    if [ "$(id -u)" -eq 0 ] && [ "$RUNAS" != root ]; then
        chown -R "$RUNAS:" "$HOME_DIR"
        as_server test -w "$HOME_DIR" || die "the server's user $RUNAS cannot reach $HOME_DIR (a folder above it is closed to others: chmod o+x it)."
    fi
    [ -f "$DATA/PG_VERSION" ] && return 0
    step "initdb: $DATA (superuser $SUPERUSER, trust on loopback only; server user $RUNAS)"
    as_server "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" -E UTF8 --locale=C -A trust >"$HOME_DIR/initdb.log" 2>&1 \
        || { tail -n 20 "$HOME_DIR/initdb.log" >&2; die "initdb failed (log: $HOME_DIR/initdb.log)."; }
    as_server tee "$DATA/pg_hba.conf" >/dev/null <<'EOF'
# backdrop's test server (scripts/postgres.sh): the unix socket and loopback only.
local   all   all                  trust
host    all   all   127.0.0.1/32   trust
EOF
}

start() {
    if [ -z "$BIN" ]; then install_postgres; BIN="$(find_bin)" || die "no PostgreSQL binaries after installing postgresql."; fi
    if running; then
        step "PostgreSQL already runs on 127.0.0.1:$(running_port) (data $DATA); $(url "$(running_port)")"
        [ "$(running_port)" = "$PORT" ] || step "note: it runs on port $(running_port), not BACKDROP_PG_PORT=$PORT"
        create_db "$(running_port)"
        return 0
    fi
    init_data
    listening "$PORT" && die "something else listens on 127.0.0.1:$PORT; pick another port (BACKDROP_PG_PORT=...)."
    # The unix socket lives in the data folder; its path has a limit of about 107 bytes.
    local socket_dir="$DATA"
    if [ "${#DATA}" -gt 90 ]; then socket_dir=""; step "no unix socket: the data folder's path is too long for one (TCP only)"; fi
    step "starting PostgreSQL $("$BIN/postgres" --version | sed "s/^[^0-9]*\([0-9.]*\).*/\1/") on 127.0.0.1:$PORT as $RUNAS (log: $LOG)"
    as_server "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 -s \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$socket_dir'" \
        || { tail -n 20 "$LOG" >&2 || true; die "PostgreSQL did not start (log: $LOG)."; }
    for _ in $(seq 100); do
        "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
        sleep 0.1
    done
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || die "PostgreSQL does not accept connections on 127.0.0.1:$PORT (log: $LOG)."
    step "PostgreSQL accepts connections on 127.0.0.1:$PORT"
    create_db "$PORT"
    step "ready: $(url "$PORT")"
}

create_db() {
    local port="$1"
    local exists
    exists="$("$BIN/psql" -h 127.0.0.1 -p "$port" -U "$SUPERUSER" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")"
    if [ "$exists" != 1 ]; then
        "$BIN/createdb" -h 127.0.0.1 -p "$port" -U "$SUPERUSER" "$DB"
        step "created database $DB"
    fi
}

stop() {
    if running; then
        as_server "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 -s
        step "stopped PostgreSQL (data $DATA)"
    else
        step "no PostgreSQL of ours runs (data $DATA)"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status)
        if running; then step "PostgreSQL runs on 127.0.0.1:$(running_port) (data $DATA)"; else step "PostgreSQL is not running (data $DATA)"; exit 3; fi ;;
    url) if running; then url "$(running_port)"; else url "$PORT"; fi ;;
    -h|--help|"") sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; [ -n "${1:-}" ] ;;
    *) die "unknown command '$1' (start, stop, status, url)" ;;
esac
