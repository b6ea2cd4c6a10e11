# Debian packages from other suites without installing anything (sourced by build.sh and
# scripts/adbd.sh; bash).
#
# A private APT configuration under $DEBIAN_APT (a folder of the project's cache): bookworm,
# bookworm-backports and trixie `main` of the mirror this machine already uses, this machine's
# architecture only, bookworm by default. `apt-get -c CONF update` fills its lists once a run
# (about 8 s), `apt-get -c CONF download` fetches .debs, `dpkg -x` unpacks them: /etc/apt and
# the dpkg database are never touched (../shared/devices.md).
#
# The caller sets DEBIAN_APT (the configuration folder) and defines die() and step_done();
# BACKDROP_DEBIAN_MIRROR overrides the mirror. Functions:
#   debian_mirror                      print the mirror (BACKDROP_DEBIAN_MIRROR or this machine's)
#   debian_ready                       write the configuration and update its lists (once)
#   debian_download DIR LOG PKG...     apt-get download PKG... into DIR
#   debian_resolve LOG PKG...          print "NAME VERSION ARCH" for what apt would install
#                                      here (PKG plus the dependencies this machine lacks,
#                                      resolved against a copy of its dpkg status)
#   debian_fetch_unpack DEST DEBS LOG PKG...
#                                      debian_resolve + download what DEBS lacks + dpkg -x all
#                                      into DEST (replaced whole); DEST/.backdrop-debs lists them

DEBIAN_READY=0
debian_cleanup() { if [ "$DEBIAN_READY" = 1 ]; then rm -rf "$DEBIAN_APT/state/lists"; fi; }

debian_mirror() {  # the mirror: BACKDROP_DEBIAN_MIRROR, else the first non-security Debian URI this machine uses
    local mirror="${BACKDROP_DEBIAN_MIRROR:-}"
    if [ -z "$mirror" ]; then
        mirror="$( { grep -hs -E '^\s*URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}';
                     grep -hs -E '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                       | sed -E 's/\[[^]]*\]//' | awk '{print $2}'; } \
                   | grep -v -i security | grep -i debian | head -n1 || true)"
        mirror="${mirror:-http://deb.debian.org/debian}"
    fi
    echo "${mirror%/}"
}

debian_ready() {
    [ "$DEBIAN_READY" = 1 ] && return 0
    command -v apt-get >/dev/null && command -v dpkg >/dev/null \
        || die "apt-get and dpkg are needed once to fetch Debian packages."
    local A="$DEBIAN_APT"
    mkdir -p "$A/etc/apt.conf.d" "$A/etc/sources.list.d" "$A/etc/preferences.d" \
        "$A/etc/trusted.gpg.d" "$A/state/lists/partial" "$A/cache/archives/partial"
    : > "$A/state/status"
    local mirror
    mirror="$(debian_mirror)"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -r "$keyring" ] || die "$keyring not found (Debian's debian-archive-keyring package)."
    # bookworm: the cross compiler (GCC 12, glibc 2.36 as on the host); bookworm-backports:
    # adb/adbd 34; trixie: libonnxruntime-dev (not in bookworm) and qemu-user 10.
    local suite
    : > "$A/etc/sources.list"
    for suite in bookworm bookworm-backports trixie; do
        printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "${mirror%/}" "$suite" >> "$A/etc/sources.list"
    done
    cat > "$A/apt.conf" <<CONF
Dir::Etc "$A/etc";
Dir::Etc::sourcelist "$A/etc/sources.list";
Dir::Etc::sourceparts "$A/etc/sources.list.d";
Dir::Etc::parts "$A/etc/apt.conf.d";
Dir::Etc::preferences "$A/etc/preferences";
Dir::Etc::preferencesparts "$A/etc/preferences.d";
Dir::Etc::trusted "$A/etc/trusted.gpg";
Dir::Etc::trustedparts "$A/etc/trusted.gpg.d";
Dir::State "$A/state";
Dir::State::lists "$A/state/lists";
Dir::State::status "$A/state/status";
Dir::Cache "$A/cache";
APT::Architectures { "$(dpkg --print-architecture)"; };
APT::Default-Release "bookworm";
APT::Sandbox::User "root";
Acquire::Languages "none";
CONF
    apt-get -q -c "$A/apt.conf" update >"$A/update.log" 2>&1 \
        || { tail -n 20 "$A/update.log" >&2; die "apt-get update with $A/apt.conf failed (log: $A/update.log)."; }
    DEBIAN_READY=1
    trap debian_cleanup EXIT
    step_done "apt-get update (bookworm, bookworm-backports, trixie lists)"
}

debian_download() {  # debian_download DIR LOG PKG...
    local dir="$1" log="$2"; shift 2
    mkdir -p "$dir"
    (cd "$dir" && apt-get -q -c "$DEBIAN_APT/apt.conf" download "$@" >"$log" 2>&1) \
        || { tail -n 20 "$log" >&2; die "apt-get download $* failed (log: $log)."; }
}

debian_resolve() {  # debian_resolve LOG PKG...: "NAME VERSION ARCH" lines on stdout
    local log="$1"; shift
    debian_ready >&2
    local status="$DEBIAN_APT/state/host-status"
    if [ -r /var/lib/dpkg/status ]; then cp /var/lib/dpkg/status "$status"; else : > "$status"; fi
    apt-get -q -c "$DEBIAN_APT/apt.conf" -o Dir::State::status="$status" -o Debug::NoLocking=1 \
        -s install "$@" >"$log" 2>&1 \
        || { rm -f "$status"; tail -n 20 "$log" >&2; die "apt could not resolve $* (log: $log)."; }
    rm -f "$status"
    # "Inst NAME [OLD] (VERSION SUITE... [ARCH])" -> "NAME VERSION ARCH"
    awk '$1 == "Inst" { l = $0; sub(/^[^(]*\(/, "", l); n = split(l, f, " ");
                        a = f[n]; gsub(/[][()]/, "", a); print $2, f[1], a }' "$log"
}

debian_fetch_unpack() {  # debian_fetch_unpack DEST DEBS LOG PKG...
    local dest="$1" debs="$2" log="$3"; shift 3
    local pkgs name ver arch f p
    debian_ready  # here, not in the subshell below: the lists must outlive it
    mapfile -t pkgs < <(debian_resolve "$log.resolve" "$@")
    [ "${#pkgs[@]}" -gt 0 ] || die "apt resolved nothing for $* (log: $log.resolve)."
    mkdir -p "$debs"
    local want=() files=()
    for p in "${pkgs[@]}"; do
        read -r name ver arch <<<"$p"
        f="${name}_${ver//:/%3a}_${arch}.deb"   # the file name apt-get download writes
        files+=("$f")
        [ -s "$debs/$f" ] || want+=("$name=$ver")
    done
    [ "${#want[@]}" -eq 0 ] || debian_download "$debs" "$log" "${want[@]}"
    step_done "download $* (${#want[@]} of ${#files[@]} .debs)"
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    for f in "${files[@]}"; do
        [ -s "$debs/$f" ] || die "$debs/$f missing after apt-get download (log: $log)."
        dpkg -x "$debs/$f" "$dest.tmp"
    done
    printf '%s\n' "${files[@]}" > "$dest.tmp/.backdrop-debs"
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
    step_done "unpack ${#files[@]} .debs into ${dest#"${ROOT:-}"/}"
}
