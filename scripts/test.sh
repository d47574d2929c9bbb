#!/usr/bin/env bash
# Every test of the project, as CI runs them: formatting, lints, then all Rust tests (unit tests,
# multi-node scenarios in one process and in network namespaces; the latter need root).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
shellcheck scripts/*.sh bindings/generate.sh android/build-rust.sh ios/build-xcframework.sh .ci/run
cargo test --workspace --no-fail-fast
# Bindings: generate Kotlin, Swift and Python from the host-built library (a broken generation
# fails here), then the same two-node scenario through Python and through the Kotlin facade (JVM).
bindings/generate.sh target/bindings
# iOS (no Swift compiler here): every Swift file parses, the shells call only what the generated
# Swift declares, and the package's names agree with uniffi.toml and the xcframework script.
bash scripts/check-swift.sh target/bindings
python3 -m pytest -q bindings/tests/python
mvn -B --no-transfer-progress -f bindings/tests/kotlin/pom.xml test -Dmeshdrop.bindings="$PWD/target/bindings"
# Android: the library compiled against the Android framework jar (Maven Central's android-all)
# and its Robolectric tests, against the same host-built core through JNA.
bash scripts/test-android.sh target/bindings
