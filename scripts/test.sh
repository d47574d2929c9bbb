#!/usr/bin/env bash
# Every test of the project, as CI runs them: formatting, lints, then all Rust tests (unit tests,
# multi-node scenarios in one process and in network namespaces; the latter need root).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
step() { echo "== test.sh at $((SECONDS - start)) s: $*"; }

# Maven's dependencies (Robolectric's Android jars: about 650 MB on a fresh machine) download in
# the background while Rust builds; the Maven steps wait for it and fetch whatever it missed.
mkdir -p target
(
  for pom in bindings/tests/kotlin/pom.xml android/meshdrop/pom.xml; do
    mvn -B -q --no-transfer-progress ${MAVEN_OFFLINE:+-o} -f "$pom" dependency:go-offline
  done
) >target/maven-prefetch.log 2>&1 &
prefetch=$!
trap 'kill "$prefetch" 2>/dev/null || true' EXIT

step "format, lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
shellcheck scripts/*.sh bindings/generate.sh android/build-rust.sh ios/build-xcframework.sh .ci/run
step "Rust tests"
# Every test binary `cargo test --workspace` builds, three at a time (scripts/run-tests.py, which
# builds the bindings library with them), then the doc tests.
python3 scripts/run-tests.py
cargo test --workspace --doc --quiet
step "bindings"
# Bindings: generate Kotlin, Swift and Python from the host-built library (a broken generation
# fails here), then the same two-node scenario through Python and through the Kotlin facade (JVM).
BUILT=1 bindings/generate.sh target/bindings
# iOS (no Swift compiler here): every Swift file parses, the shells call only what the generated
# Swift declares, and the package's names agree with uniffi.toml and the xcframework script.
bash scripts/check-swift.sh target/bindings
python3 -m pytest -q bindings/tests/python
step "Kotlin on the JVM, Android"
wait "$prefetch" || echo "test.sh: the Maven prefetch failed (target/maven-prefetch.log); Maven fetches what it needs"
mvn -B --no-transfer-progress -f bindings/tests/kotlin/pom.xml test -Dmeshdrop.bindings="$PWD/target/bindings"
# Android: the library compiled against the Android framework jar (Maven Central's android-all)
# and its Robolectric tests, against the same host-built core through JNA.
bash scripts/test-android.sh target/bindings
step "all tests passed"
