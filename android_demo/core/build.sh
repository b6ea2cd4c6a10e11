#!/usr/bin/env bash
# Build and test android_demo/core on the JVM with Debian's Kotlin 1.3.31, JUnit 4 and Gson,
# unpacked into the project's cache (nothing installed; device_tests/native/debian.sh).
#
#   android_demo/core/build.sh            fetch the toolchain (once), compile, run the JUnit tests
#   android_demo/core/build.sh toolchain  fetch the toolchain only
#   android_demo/core/build.sh compile    fetch (once) and compile only (build/android-core/, the
#                                         conformance harness's class path in its classpath file)
#
# The JUnit tests read the goldens of BACKDROP_GOLDEN_DIST (default dist/android-arm64).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="$ROOT/.cache/backdrop-kotlin"
TOOLS="$CACHE/root"
OUT="$ROOT/build/android-core"
die() { echo "android-core: error: $*" >&2; exit 1; }
step_done() { echo "[android-core] $1"; }
DEBIAN_APT="$ROOT/.cache/backdrop-native/apt"
# shellcheck source=../../device_tests/native/debian.sh
. "$ROOT/device_tests/native/debian.sh"
trap debian_cleanup EXIT

command -v java >/dev/null || die "java (OpenJDK 17, Debian's openjdk-17-jdk-headless) is needed."

toolchain() {
    mkdir -p "$CACHE"
    if [ ! -x "$TOOLS/usr/bin/kotlinc" ] || [ ! -s "$TOOLS/usr/share/java/gson.jar" ]; then
        debian_fetch_unpack "$TOOLS" "$CACHE/debs" "$CACHE/download.log" kotlin junit4 libgoogle-gson-java
    fi
}

classpath() {  # the jars a name matches under the unpacked root, ':'-joined
    local j out=()
    for j in "$@"; do
        local f
        f="$(find "$TOOLS/usr/share/java" -maxdepth 1 -name "$j" | sort | head -n1)"
        [ -n "$f" ] || die "$j not found under $TOOLS/usr/share/java"
        out+=("$f")
    done
    local IFS=:; echo "${out[*]}"
}

toolchain
[ "${1:-}" = toolchain ] && exit 0
KOTLIN_HOME="$TOOLS/usr/share/kotlin"
export KOTLIN_HOME
KOTLINC=("$TOOLS/usr/bin/kotlinc")
GSON="$(classpath gson.jar)"
JUNIT="$(classpath junit4.jar hamcrest-core.jar)"
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
t0=$(date +%s)
"${KOTLINC[@]}" -nowarn -cp "$GSON" -d "$OUT.tmp/core.jar" "$HERE"/src/main/kotlin/*.kt
"${KOTLINC[@]}" -nowarn -cp "$GSON:$JUNIT:$OUT.tmp/core.jar" -d "$OUT.tmp/tests.jar" "$HERE"/src/test/kotlin/*.kt
STDLIB="$(find "$TOOLS" -name 'kotlin-stdlib.jar' | head -n1)"
[ -n "$STDLIB" ] || die "kotlin-stdlib.jar not found under $TOOLS"
# The class path of the conformance harness (backdrop conformance --impl kotlin reads it).
echo "$OUT/core.jar:$GSON:$STDLIB" > "$OUT.tmp/classpath"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
step_done "compiled in $(( $(date +%s) - t0 )) s"
[ "${1:-}" = compile ] && exit 0
# Every test class: one per file under src/test/kotlin, named as its file.
TESTS=()
for f in "$HERE"/src/test/kotlin/*.kt; do TESTS+=("ai.backdrop.core.$(basename "$f" .kt)"); done
java -cp "$OUT/core.jar:$OUT/tests.jar:$GSON:$JUNIT:$STDLIB" org.junit.runner.JUnitCore "${TESTS[@]}"
