#!/usr/bin/env bash
# The Android library (android/meshdrop) built with Maven against the Android framework jar and
# its Robolectric tests run against the host-built core through JNA.
#
#   scripts/test-android.sh [BINDINGS_DIR]
#
# BINDINGS_DIR is bindings/generate.sh's output (kotlin/ and lib/; default target/bindings).
# Dependencies come from Maven Central on the first run (Robolectric's instrumented Android jar
# among them, as a test dependency); later runs work offline (MAVEN_OFFLINE=1 adds -o).
set -euo pipefail
cd "$(dirname "$0")/.."
bindings=$(cd "${1:-target/bindings}" && pwd)
test -f "$bindings/kotlin/org/meshdrop/ffi/meshdrop_ffi.kt" || { echo "no generated Kotlin in $bindings" >&2; exit 1; }
test -f "$bindings/lib/libmeshdrop_ffi.so" || { echo "no host library in $bindings/lib" >&2; exit 1; }
exec mvn -B --no-transfer-progress ${MAVEN_OFFLINE:+-o} -f android/meshdrop/pom.xml verify -Dmeshdrop.bindings="$bindings"
