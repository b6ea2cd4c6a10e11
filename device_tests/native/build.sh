#!/usr/bin/env bash
# Build backdrop-runner (device_tests/native/) for this host: build/native/<arch>/backdrop-runner.
#
# Needs only the project venv (.venv: executorch and onnxruntime wheels, which ship the
# runtimes' shared libraries and, for ExecuTorch, the headers), a C++17 compiler, CMake and
# Debian's package archive (for ONNX Runtime's C headers, which no wheel ships):
#
#   1. ORT C headers: Debian trixie `libonnxruntime-dev` (arch-independent headers; 1.21's
#      C API compiles a program that runs against the wheel's 1.32 library: the C API only
#      appends), fetched with a private APT configuration under .cache/backdrop-native/apt/
#      (`apt-get -c CONF update`, `apt-get -c CONF download`, `dpkg -x`): nothing is installed
#      and /etc/apt is untouched. Cached: skipped when the headers are already there.
#   2. The runtimes in the venv: executorch/{include,lib} and onnxruntime/capi.
#   3. build/native/<arch>/lib/: symlinks to the libraries the runner needs, including the
#      name `libonnxruntime.so.1` (the wheel ships only libonnxruntime.so.1.32.0, whose
#      SONAME is libonnxruntime.so.1). The runner's RUNPATH is $ORIGIN/lib, so it runs
#      without LD_LIBRARY_PATH; copy the folder with `cp -rL` to move it elsewhere.
#   4. cmake configure + build (-j ${BACKDROP_JOBS:-2}).
#
# Environment: VENV (default .venv), BACKDROP_JOBS (default 2), BACKDROP_DEBIAN_MIRROR
# (default: the first Debian mirror in /etc/apt, else http://deb.debian.org/debian),
# CMAKE (default cmake), BUILD_TYPE (default Release).
#
# Only the host build exists now. An aarch64 build adds a toolchain file
# (-DCMAKE_TOOLCHAIN_FILE=..., compilers and --sysroot) and points EXECUTORCH_ROOT /
# BACKDROP_LIB_DIR at the aarch64 wheels' unpacked libraries; the CMakeLists takes both.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
JOBS="${BACKDROP_JOBS:-2}"
CMAKE="${CMAKE:-cmake}"
BUILD_TYPE="${BUILD_TYPE:-Release}"
ARCH="$(uname -m)"
CACHE="$ROOT/.cache/backdrop-native"
OUT="$ROOT/build/native/$ARCH"
LIBDIR="$OUT/lib"

now() { date +%s.%N; }
T_ALL=$(now)
T_STEP=$T_ALL
step_done() {  # step_done NAME: print how long the step since the last call took
    local t; t=$(now)
    awk -v a="$T_STEP" -v b="$t" -v n="$1" 'BEGIN { printf "[build.sh] %-34s %6.1f s\n", n, b - a }'
    T_STEP=$t
}
die() { echo "build.sh: error: $*" >&2; exit 1; }

[ -x "$PY" ] || die "$PY not found: run 'make install' first (or VENV=/path/to/venv)."
command -v "$CMAKE" >/dev/null || die "cmake not found (apt-get install cmake, or pip install cmake)."

# ---- 1. ONNX Runtime C headers from Debian trixie -------------------------------------------
ORT_HDR_ROOT="$CACHE/ort-headers"
find_ort_header() { find "$ORT_HDR_ROOT" -name onnxruntime_c_api.h -print -quit 2>/dev/null || true; }
ORT_C_API_H="$(find_ort_header)"
if [ -z "$ORT_C_API_H" ]; then
    command -v apt-get >/dev/null && command -v dpkg >/dev/null \
        || die "apt-get and dpkg are needed once to fetch ONNX Runtime's C headers (Debian's libonnxruntime-dev)."
    APT="$CACHE/apt"
    mkdir -p "$APT/etc/apt.conf.d" "$APT/etc/sources.list.d" "$APT/etc/preferences.d" \
        "$APT/etc/trusted.gpg.d" "$APT/state/lists/partial" "$APT/cache/archives/partial" "$CACHE/debs"
    : > "$APT/state/status"
    mirror="${BACKDROP_DEBIAN_MIRROR:-}"
    if [ -z "$mirror" ]; then
        # The first non-security Debian URI this machine already uses (deb822 or one-line form).
        mirror="$( { grep -hs -E '^\s*URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}';
                     grep -hs -E '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                       | sed -E 's/\[[^]]*\]//' | awk '{print $2}'; } \
                   | grep -v -i security | grep -i debian | head -n1 || true)"
        mirror="${mirror:-http://deb.debian.org/debian}"
    fi
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -r "$keyring" ] || die "$keyring not found (Debian's debian-archive-keyring package)."
    echo "deb [signed-by=$keyring] ${mirror%/} trixie main" > "$APT/etc/sources.list"
    cat > "$APT/apt.conf" <<CONF
Dir::Etc "$APT/etc";
Dir::Etc::sourcelist "$APT/etc/sources.list";
Dir::Etc::sourceparts "$APT/etc/sources.list.d";
Dir::Etc::parts "$APT/etc/apt.conf.d";
Dir::Etc::preferences "$APT/etc/preferences";
Dir::Etc::preferencesparts "$APT/etc/preferences.d";
Dir::Etc::trusted "$APT/etc/trusted.gpg";
Dir::Etc::trustedparts "$APT/etc/trusted.gpg.d";
Dir::State "$APT/state";
Dir::State::lists "$APT/state/lists";
Dir::State::status "$APT/state/status";
Dir::Cache "$APT/cache";
APT::Architectures { "amd64"; "arm64"; };
APT::Default-Release "trixie";
APT::Sandbox::User "root";
Acquire::Languages "none";
CONF
    apt-get -q -c "$APT/apt.conf" update >"$CACHE/apt-update.log" 2>&1 \
        || { tail -n 20 "$CACHE/apt-update.log" >&2; die "apt-get update with $APT/apt.conf failed (log: $CACHE/apt-update.log)."; }
    step_done "apt-get update (trixie lists)"
    rm -f "$CACHE/debs"/libonnxruntime-dev_*.deb
    (cd "$CACHE/debs" && apt-get -q -c "$APT/apt.conf" download libonnxruntime-dev >"$CACHE/apt-download.log" 2>&1) \
        || { tail -n 20 "$CACHE/apt-download.log" >&2; die "apt-get download libonnxruntime-dev failed (log: $CACHE/apt-download.log)."; }
    deb="$(ls "$CACHE/debs"/libonnxruntime-dev_*.deb | head -n1)"
    rm -rf "$ORT_HDR_ROOT.tmp" && dpkg -x "$deb" "$ORT_HDR_ROOT.tmp" && rm -rf "$ORT_HDR_ROOT" && mv "$ORT_HDR_ROOT.tmp" "$ORT_HDR_ROOT"
    ORT_C_API_H="$(find_ort_header)"
    [ -n "$ORT_C_API_H" ] || die "$deb has no onnxruntime_c_api.h."
    echo "[build.sh] ORT headers: $(basename "$deb")"
    rm -rf "$APT/state/lists"  # 40 MB of package lists, needed again only if the headers go
    step_done "fetch libonnxruntime-dev"
else
    step_done "ORT headers (cached)"
fi
ORT_INCLUDE_DIR="$(dirname "$ORT_C_API_H")"

# ---- 2. the runtimes in the venv --------------------------------------------------------------
# executorch is a namespace package (no __file__): take __path__[0].
read -r ET_ROOT ET_VERSION ORT_CAPI ORT_VERSION < <("$PY" - <<'PYEOF'
import importlib.metadata as md
import os
import executorch, onnxruntime
print(list(executorch.__path__)[0], md.version("executorch"),
      os.path.join(os.path.dirname(onnxruntime.__file__), "capi"), md.version("onnxruntime"))
PYEOF
)
[ -n "${ORT_VERSION:-}" ] || die "$PY could not import executorch and onnxruntime (make install)."
ORT_SO="$(ls "$ORT_CAPI"/libonnxruntime.so.* 2>/dev/null | grep -E 'libonnxruntime\.so\.[0-9.]+$' | sort -V | tail -n1 || true)"
[ -n "$ORT_SO" ] || die "no libonnxruntime.so.<version> in $ORT_CAPI (onnxruntime wheel)."
[ -d "$ET_ROOT/include/executorch" ] && [ -f "$ET_ROOT/lib/libexecutorch.so" ] \
    || die "$ET_ROOT has no include/executorch or lib/libexecutorch.so (executorch wheel)."
echo "[build.sh] executorch $ET_VERSION: $ET_ROOT"
echo "[build.sh] onnxruntime $ORT_VERSION: $ORT_SO"
step_done "locate runtimes in $VENV"

# ---- 3. lib folder: the names the loader looks for ------------------------------------------
mkdir -p "$LIBDIR"
ET_LIBS=(libexecutorch.so libexecutorch_backend_xnnpack.so libexecutorch_kernels_optimized.so
         libexecutorch_kernels_quantized.so libexecutorch_threadpool.so)
for lib in "${ET_LIBS[@]}"; do
    [ -f "$ET_ROOT/lib/$lib" ] || die "$ET_ROOT/lib/$lib not found (executorch wheel)."
    ln -sfn "$ET_ROOT/lib/$lib" "$LIBDIR/$lib"
done
ln -sfn "$ORT_SO" "$LIBDIR/libonnxruntime.so.1"
step_done "lib folder ${LIBDIR#"$ROOT"/}"

# ---- 4. cmake -----------------------------------------------------------------------------
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ -f "$OUT/cmake/CMakeCache.txt" ] && ! grep -q "CMAKE_GENERATOR:INTERNAL=${generator[1]:-Unix Makefiles}\$" "$OUT/cmake/CMakeCache.txt"; then
    rm -rf "$OUT/cmake"  # a build tree of another generator cannot be reconfigured
fi
"$CMAKE" -S "$ROOT/device_tests/native" -B "$OUT/cmake" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DEXECUTORCH_ROOT="$ET_ROOT" \
    -DBACKDROP_EXECUTORCH_VERSION="$ET_VERSION" \
    -DONNXRUNTIME_INCLUDE_DIR="$ORT_INCLUDE_DIR" \
    -DBACKDROP_LIB_DIR="$LIBDIR" \
    -DBACKDROP_OUTPUT_DIR="$OUT" >"$OUT/cmake-configure.log" 2>&1 \
    || { cat "$OUT/cmake-configure.log" >&2; die "cmake configure failed."; }
step_done "cmake configure"
"$CMAKE" --build "$OUT/cmake" -j "$JOBS"
step_done "cmake build (-j $JOBS)"

"$OUT/backdrop-runner" --version >/dev/null || die "$OUT/backdrop-runner does not start."
awk -v a="$T_ALL" -v b="$(now)" 'BEGIN { printf "[build.sh] %-34s %6.1f s\n", "total", b - a }'
echo "$OUT/backdrop-runner"
