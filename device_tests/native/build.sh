#!/usr/bin/env bash
# Build backdrop-runner (device_tests/native/): build/native/<arch>/backdrop-runner, and next to
# it backdrop-conformance (the runner's preprocessing over a case file: `backdrop conformance`).
#
#   build.sh                  for this host, from the project venv's wheels (make native-runner)
#   build.sh --arch aarch64   cross-compiled on an x86_64 host, plus a self-contained bundle
#                             and a qemu-aarch64 to run it (make native-runner-arm64)
#
# Needs only the project venv (.venv: executorch and onnxruntime wheels, which ship the
# runtimes' shared libraries and, for ExecuTorch, the headers), a C++17 compiler, CMake and
# Debian's package archive (for ONNX Runtime's C headers, which no wheel ships):
#
#   1. ORT C headers: Debian trixie `libonnxruntime-dev` (arch-independent headers; 1.21's
#      C API compiles a program that runs against the wheel's 1.32 library: the C API only
#      appends), fetched with a private APT configuration under .cache/backdrop-native/apt/
#      (device_tests/native/debian.sh: bookworm, bookworm-backports and trixie main; `apt-get -c CONF update`, `apt-get -c CONF download`,
#      `dpkg -x`): nothing is installed and /etc/apt is untouched. Cached: skipped when the
#      headers are already there.
#   2. The runtimes in the venv: executorch/{include,lib} and onnxruntime/capi.
#   3. build/native/<arch>/lib/: symlinks to the libraries the runner needs, including the
#      name `libonnxruntime.so.1` (the wheel ships only libonnxruntime.so.1.32.0, whose
#      SONAME is libonnxruntime.so.1). The runner's RUNPATH is $ORIGIN/lib, so it runs
#      without LD_LIBRARY_PATH; copy the folder with `cp -rL` to move it elsewhere.
#   4. cmake configure + build (-j ${BACKDROP_JOBS:-2}).
#
# --arch aarch64 (x86_64 host only) replaces step 2 and adds three steps, each cached under
# .cache/backdrop-native/ (a second run downloads nothing):
#   a. cross compiler: Debian bookworm `g++-aarch64-linux-gnu` (GCC 12, glibc 2.36) and what
#      this host lacks of its dependencies (apt's own resolution against a copy of this host's
#      dpkg status), `apt-get download` + `dpkg -x` into cross-aarch64/, which is also the
#      --sysroot. cross-aarch64/backdrop-bin/ holds compiler wrappers that set
#      LD_LIBRARY_PATH=cross-aarch64/usr/lib/x86_64-linux-gnu (libraries the cross binutils
#      need and the host may not have); toolchain-aarch64-linux-gnu.cmake points CMake there.
#   b. the runtimes: the aarch64 wheels of the venv's executorch and onnxruntime versions
#      (read from the venv's metadata), `pip download --platform manylinux_2_28_aarch64`
#      (BACKDROP_AARCH64_PLATFORM), of which executorch/{include,lib} and
#      onnxruntime/capi/libonnxruntime.so.* are unpacked into runtimes-aarch64/.
#   c. qemu: Debian trixie `qemu-user` (10.x: static binaries; bookworm's 7.2 crashes in ORT's
#      cpuinfo), of which only usr/bin/qemu-aarch64 is kept; copied to
#      build/native/aarch64/qemu-aarch64.
#   After the build, build/native/aarch64/bundle/ gets the runner (and backdrop-conformance), the runtimes' libraries
#   under their loader names and glibc's loader and libraries from the cross sysroot (the
#   NEEDED closure): it runs with no sysroot, on qemu or on an arm64 device without glibc:
#     build/native/aarch64/qemu-aarch64 -cpu cortex-a76 build/native/aarch64/bundle/ld-linux-aarch64.so.1 \
#       --library-path build/native/aarch64/bundle build/native/aarch64/bundle/backdrop-runner --version
#   (on the device itself: bundle/run.sh ARGS). The unbundled build/native/aarch64/backdrop-runner
#   runs as `qemu-aarch64 -cpu cortex-a76 -L .cache/backdrop-native/cross-aarch64/usr/aarch64-linux-gnu ...`.
#
# Environment: VENV (default .venv), BACKDROP_JOBS (default 2), BACKDROP_DEBIAN_MIRROR
# (default: the first Debian mirror in /etc/apt, else http://deb.debian.org/debian),
# CMAKE (default cmake), BUILD_TYPE (default Release), BACKDROP_AARCH64_PLATFORM (default
# manylinux_2_28_aarch64: the pip platform tag of the aarch64 wheels).
set -euo pipefail

die() { echo "build.sh: error: $*" >&2; exit 1; }
TARGET_ARCH=""
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) [ $# -ge 2 ] || die "--arch needs a value (aarch64)"; TARGET_ARCH="$2"; shift 2 ;;
        --arch=*) TARGET_ARCH="${1#--arch=}"; shift ;;
        -h|--help) sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (build.sh [--arch aarch64])" ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
JOBS="${BACKDROP_JOBS:-2}"
CMAKE="${CMAKE:-cmake}"
BUILD_TYPE="${BUILD_TYPE:-Release}"
HOST_ARCH="$(uname -m)"
case "${TARGET_ARCH:-$HOST_ARCH}" in
    aarch64|arm64) ARCH=aarch64 ;;
    x86_64|amd64) ARCH=x86_64 ;;
    *) die "--arch ${TARGET_ARCH}: only aarch64 (or this host's $HOST_ARCH)" ;;
esac
CROSS=0
if [ "$ARCH" != "$HOST_ARCH" ]; then
    [ "$HOST_ARCH/$ARCH" = x86_64/aarch64 ] || die "cross builds go from x86_64 to aarch64 only (this host: $HOST_ARCH)."
    CROSS=1
fi
CACHE="$ROOT/.cache/backdrop-native"
OUT="$ROOT/build/native/$ARCH"
LIBDIR="$OUT/lib"

now() { date +%s.%N; }
T_ALL=$(now)
T_STEP=$T_ALL
step_done() {  # step_done NAME: print how long the step since the last call took
    local t; t=$(now)
    awk -v a="$T_STEP" -v b="$t" -v n="$1" 'BEGIN { printf "[build.sh] %-40s %6.1f s\n", n, b - a }'
    T_STEP=$t
}

[ -x "$PY" ] || die "$PY not found: run 'make install' first (or VENV=/path/to/venv)."
command -v "$CMAKE" >/dev/null || die "cmake not found (apt-get install cmake, or pip install cmake)."

# ---- the private APT configuration (device_tests/native/debian.sh): set up and updated at most
# once a run, and only when something must be downloaded; its package lists go again on exit ----
DEBIAN_APT="$CACHE/apt"
# shellcheck source=debian.sh
. "$ROOT/device_tests/native/debian.sh"
mkdir -p "$CACHE/debs"

# ---- 1. ONNX Runtime C headers from Debian trixie -------------------------------------------
ORT_HDR_ROOT="$CACHE/ort-headers"
find_ort_header() { find "$ORT_HDR_ROOT" -name onnxruntime_c_api.h -print -quit 2>/dev/null || true; }
ORT_C_API_H="$(find_ort_header)"
if [ -z "$ORT_C_API_H" ]; then
    debian_ready
    rm -f "$CACHE/debs"/libonnxruntime-dev_*.deb
    debian_download "$CACHE/debs" "$CACHE/apt-download.log" libonnxruntime-dev/trixie
    deb="$(ls "$CACHE/debs"/libonnxruntime-dev_*.deb | head -n1)"
    rm -rf "$ORT_HDR_ROOT.tmp" && dpkg -x "$deb" "$ORT_HDR_ROOT.tmp" && rm -rf "$ORT_HDR_ROOT" && mv "$ORT_HDR_ROOT.tmp" "$ORT_HDR_ROOT"
    ORT_C_API_H="$(find_ort_header)"
    [ -n "$ORT_C_API_H" ] || die "$deb has no onnxruntime_c_api.h."
    echo "[build.sh] ORT headers: $(basename "$deb")"
    step_done "fetch libonnxruntime-dev"
else
    step_done "ORT headers (cached)"
fi
ORT_INCLUDE_DIR="$(dirname "$ORT_C_API_H")"

if [ "$CROSS" = 1 ]; then
    # ---- a. the bookworm cross compiler, unpacked: also the sysroot --------------------------
    CROSS_ROOT="$CACHE/cross-aarch64"
    CROSS_DEBS="$CACHE/debs/cross-aarch64"
    CROSS_STAMP="$CROSS_ROOT/.backdrop-debs"  # the .debs unpacked there, written last
    if [ ! -f "$CROSS_STAMP" ]; then
        # What apt would install here: the cross packages plus the host libraries this machine
        # lacks (resolved against a copy of its dpkg status, only read).
        debian_fetch_unpack "$CROSS_ROOT" "$CROSS_DEBS" "$CACHE/cross-download.log" g++-aarch64-linux-gnu
        echo "[build.sh] cross compiler: $(grep -m1 '^g++-aarch64-linux-gnu_' "$CROSS_STAMP" || true), $(du -sh "$CROSS_DEBS" | cut -f1) of .debs"
    else
        step_done "cross compiler (cached, $(wc -l <"$CROSS_STAMP") .debs)"
    fi
    CROSS_HOSTLIB="$CROSS_ROOT/usr/lib/x86_64-linux-gnu"
    CROSS_LIB="$CROSS_ROOT/usr/aarch64-linux-gnu/lib"
    [ -x "$CROSS_ROOT/usr/bin/aarch64-linux-gnu-g++" ] || die "$CROSS_ROOT has no usr/bin/aarch64-linux-gnu-g++ (remove the folder to fetch it again)."
    # Wrappers: the cross binutils (as, ld: gcc starts them) need libraries from the unpacked
    # folder. Rewritten each run (the folder may have moved).
    mkdir -p "$CROSS_ROOT/backdrop-bin"
    for tool in gcc g++ readelf; do
        w="$CROSS_ROOT/backdrop-bin/aarch64-linux-gnu-$tool"
        printf '#!/bin/sh\n# written by device_tests/native/build.sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
            "$CROSS_HOSTLIB" "$CROSS_ROOT/usr/bin/aarch64-linux-gnu-$tool" > "$w"
        chmod +x "$w"
    done
    XREADELF="$CROSS_ROOT/backdrop-bin/aarch64-linux-gnu-readelf"
    "$CROSS_ROOT/backdrop-bin/aarch64-linux-gnu-g++" --version >/dev/null 2>&1 \
        || die "the cross compiler in $CROSS_ROOT does not start: $("$CROSS_ROOT/backdrop-bin/aarch64-linux-gnu-g++" --version 2>&1 | head -n 3)"

    # ---- b. the aarch64 wheels of the venv's runtime versions -------------------------------
    read -r PY_VERSION ET_VERSION ORT_VERSION < <("$PY" - <<'PYEOF'
import importlib.metadata as md
import sys
print("%d.%d" % sys.version_info[:2], md.version("executorch"), md.version("onnxruntime"))
PYEOF
    )
    [ -n "${ORT_VERSION:-}" ] || die "$PY has no executorch and onnxruntime installed (make install)."
    PLATFORM="${BACKDROP_AARCH64_PLATFORM:-manylinux_2_28_aarch64}"
    WHEELS="$CACHE/wheels-aarch64"
    RT="$CACHE/runtimes-aarch64/executorch-$ET_VERSION-onnxruntime-$ORT_VERSION-py$PY_VERSION"
    if [ ! -f "$RT/.backdrop-unpacked" ]; then
        mkdir -p "$WHEELS"
        pyt="cp${PY_VERSION/./}"
        whl() { ls "$WHEELS"/"$1"-"$2"-"$pyt"-*aarch64*.whl 2>/dev/null | head -n1 || true; }
        if [ -z "$(whl executorch "$ET_VERSION")" ] || [ -z "$(whl onnxruntime "$ORT_VERSION")" ]; then
            "$PY" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
                --platform "$PLATFORM" --python-version "$PY_VERSION" \
                "executorch==$ET_VERSION" "onnxruntime==$ORT_VERSION" -d "$WHEELS" \
                || die "pip download of the $PLATFORM wheels failed (BACKDROP_AARCH64_PLATFORM sets the tag)."
            step_done "pip download aarch64 wheels"
        fi
        ET_WHL="$(whl executorch "$ET_VERSION")"; ORT_WHL="$(whl onnxruntime "$ORT_VERSION")"
        [ -n "$ET_WHL" ] && [ -n "$ORT_WHL" ] || die "no aarch64 wheels for executorch $ET_VERSION / onnxruntime $ORT_VERSION in $WHEELS."
        rm -rf "$RT.tmp"
        "$PY" - "$RT.tmp" "$ET_WHL" "$ORT_WHL" <<'PYEOF'
import os, re, sys, zipfile
dest, wheels = sys.argv[1], sys.argv[2:]
keep = re.compile(r"^(executorch/include/.*|executorch/lib/[^/]+\.so[.0-9]*|onnxruntime/capi/libonnxruntime\.so\.[0-9.]+)$")
for w in wheels:
    with zipfile.ZipFile(w) as z:
        for m in z.infolist():
            if keep.match(m.filename) and not m.is_dir():
                path = z.extract(m, dest)
                os.chmod(path, 0o755 if ".so" in m.filename else 0o644)
PYEOF
        touch "$RT.tmp/.backdrop-unpacked"
        rm -rf "$RT" && mv "$RT.tmp" "$RT"
        echo "[build.sh] aarch64 wheels: $(basename "$ET_WHL"), $(basename "$ORT_WHL")"
        step_done "unpack aarch64 runtimes"
    else
        step_done "aarch64 runtimes (cached)"
    fi
    ET_ROOT="$RT/executorch"
    ORT_CAPI="$RT/onnxruntime/capi"

    # ---- c. qemu-aarch64 from Debian trixie's qemu-user ---------------------------------------
    QEMU_DIR="$CACHE/qemu-user"
    QEMU_BIN="$QEMU_DIR/qemu-aarch64"
    if [ ! -x "$QEMU_BIN" ]; then
        debian_ready
        rm -f "$CACHE/debs"/qemu-user_*.deb
        debian_download "$CACHE/debs" "$CACHE/qemu-download.log" qemu-user/trixie
        deb="$(ls "$CACHE/debs"/qemu-user_*.deb | head -n1)"
        step_done "download qemu-user ($(du -h "$deb" | cut -f1))"
        rm -rf "$QEMU_DIR.tmp" && mkdir -p "$QEMU_DIR.tmp"
        dpkg --fsys-tarfile "$deb" | tar -x -C "$QEMU_DIR.tmp" ./usr/bin/qemu-aarch64 \
            || die "$deb has no usr/bin/qemu-aarch64."
        mv "$QEMU_DIR.tmp/usr/bin/qemu-aarch64" "$QEMU_DIR.tmp/qemu-aarch64" && rm -rf "$QEMU_DIR.tmp/usr"
        basename "$deb" > "$QEMU_DIR.tmp/.backdrop-deb"
        rm -rf "$QEMU_DIR" && mv "$QEMU_DIR.tmp" "$QEMU_DIR"
        step_done "unpack qemu-aarch64"
    else
        step_done "qemu-aarch64 (cached)"
    fi
    mkdir -p "$OUT"
    cp -p "$QEMU_BIN" "$OUT/qemu-aarch64"
    echo "[build.sh] $("$OUT/qemu-aarch64" --version | head -n1) ($(cat "$QEMU_DIR/.backdrop-deb" 2>/dev/null || echo '?'))"
else
    # ---- 2. the runtimes in the venv ----------------------------------------------------------
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
fi
ORT_SO="$(ls "$ORT_CAPI"/libonnxruntime.so.* 2>/dev/null | grep -E 'libonnxruntime\.so\.[0-9.]+$' | sort -V | tail -n1 || true)"
[ -n "$ORT_SO" ] || die "no libonnxruntime.so.<version> in $ORT_CAPI (onnxruntime wheel)."
[ -d "$ET_ROOT/include/executorch" ] && [ -f "$ET_ROOT/lib/libexecutorch.so" ] \
    || die "$ET_ROOT has no include/executorch or lib/libexecutorch.so (executorch wheel)."
echo "[build.sh] executorch $ET_VERSION: $ET_ROOT"
echo "[build.sh] onnxruntime $ORT_VERSION: $ORT_SO"
[ "$CROSS" = 1 ] || step_done "locate runtimes in $VENV"

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
cross_args=()
if [ "$CROSS" = 1 ]; then
    cross_args=(-DCMAKE_TOOLCHAIN_FILE="$ROOT/device_tests/native/toolchain-aarch64-linux-gnu.cmake"
                -DBACKDROP_CROSS_ROOT="$CROSS_ROOT")
fi
"$CMAKE" -S "$ROOT/device_tests/native" -B "$OUT/cmake" "${generator[@]}" "${cross_args[@]}" \
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

if [ "$CROSS" = 0 ]; then
    "$OUT/backdrop-runner" --version >/dev/null || die "$OUT/backdrop-runner does not start."
    "$OUT/backdrop-conformance" --version >/dev/null || die "$OUT/backdrop-conformance does not start."
    awk -v a="$T_ALL" -v b="$(now)" 'BEGIN { printf "[build.sh] %-40s %6.1f s\n", "total", b - a }'
    echo "$OUT/backdrop-runner"
    exit 0
fi

# ---- 5. (aarch64) the self-contained bundle ---------------------------------------------------
# The runner and backdrop-conformance, the runtimes' libraries under the names the loader wants, and from the cross
# sysroot glibc's loader and every library in the NEEDED closure (libc, libm, libstdc++,
# libgcc_s, and libpthread / libdl / librt where the wheels' libraries, built for glibc 2.28,
# still name them). Copies, not links: the folder is what gets pushed to a device.
BUNDLE="$OUT/bundle"
rm -rf "$BUNDLE.tmp" && mkdir -p "$BUNDLE.tmp"
cp "$OUT/backdrop-runner" "$OUT/backdrop-conformance" "$BUNDLE.tmp/"
interp="$("$XREADELF" -l "$OUT/backdrop-runner" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')"
[ -n "$interp" ] && [ -f "$CROSS_LIB/$(basename "$interp")" ] || die "the runner's loader ${interp:-?} is not in $CROSS_LIB."
loader="$(basename "$interp")"
cp -L "$CROSS_LIB/$loader" "$BUNDLE.tmp/"
queue=("$BUNDLE.tmp/backdrop-runner" "$BUNDLE.tmp/backdrop-conformance")
while [ "${#queue[@]}" -gt 0 ]; do
    f="${queue[0]}"; queue=("${queue[@]:1}")
    for n in $("$XREADELF" -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
        [ -e "$BUNDLE.tmp/$n" ] && continue
        src=""
        for d in "$LIBDIR" "$CROSS_LIB"; do
            if [ -e "$d/$n" ]; then src="$d/$n"; break; fi
        done
        [ -n "$src" ] || die "bundle: $n (needed by $(basename "$f")) is neither in $LIBDIR nor in $CROSS_LIB."
        cp -L "$src" "$BUNDLE.tmp/$n"
        queue+=("$BUNDLE.tmp/$n")
    done
done
cat > "$BUNDLE.tmp/run.sh" <<RUNSH
#!/bin/sh
# backdrop-runner with the glibc and runtimes next to it (an arm64 device; no glibc needed there):
#   sh run.sh --artifact A --kind K --state-form F --sequence S --out DIR
d="\$(cd "\$(dirname "\$0")" && pwd)"
exec "\$d/$loader" --library-path "\$d" "\$d/backdrop-runner" "\$@"
RUNSH
chmod +x "$BUNDLE.tmp/run.sh"
rm -rf "$BUNDLE" && mv "$BUNDLE.tmp" "$BUNDLE"
echo "[build.sh] bundle: $(cd "$BUNDLE" && ls | tr '\n' ' ')($(du -sh "$BUNDLE" | cut -f1))"
step_done "bundle ${BUNDLE#"$ROOT"/}"

RUN_BUNDLE=("$OUT/qemu-aarch64" -cpu cortex-a76 "$BUNDLE/$loader" --library-path "$BUNDLE" "$BUNDLE/backdrop-runner")
"${RUN_BUNDLE[@]}" --version >/dev/null || die "the bundle does not start under qemu: ${RUN_BUNDLE[*]} --version"
"${RUN_BUNDLE[@]:0:${#RUN_BUNDLE[@]}-1}" "$BUNDLE/backdrop-conformance" --version >/dev/null \
    || die "the bundle's backdrop-conformance does not start under qemu."
step_done "bundle --version under qemu"
awk -v a="$T_ALL" -v b="$(now)" 'BEGIN { printf "[build.sh] %-40s %6.1f s\n", "total", b - a }'
echo "[build.sh] the bundle, with no sysroot:"
echo "  ${RUN_BUNDLE[*]//"$ROOT"\//} ARGS"
echo "[build.sh] the runner, with the cross sysroot:"
echo "  ${OUT#"$ROOT"/}/qemu-aarch64 -cpu cortex-a76 -L ${CROSS_LIB%/lib} ${OUT#"$ROOT"/}/backdrop-runner ARGS" | sed "s#$ROOT/##g"
echo "$OUT/backdrop-runner"
