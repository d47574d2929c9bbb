#!/usr/bin/env bash
# Builds the meshdrop core for Android (arm64-v8a, armeabi-v7a, x86_64) with cargo-ndk into the
# library module's jniLibs, and generates the Kotlin bindings from the UNSTRIPPED host library
# (library-mode bindgen needs the UniFFI metadata; cargo-ndk strips what it ships) into
# <repo>/target/bindings, where both the Gradle and the Maven build read them.
#
# Needs: rustup targets aarch64-linux-android armv7-linux-androideabi x86_64-linux-android,
# `cargo install cargo-ndk`, ANDROID_NDK_HOME pointing at an NDK (r26 or newer), cmake (the QUIC
# stack's aws-lc builds with it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
profile=${PROFILE:-release}

cd "$repo"
cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 -o "$here/meshdrop/src/main/jniLibs" \
  build --profile "$profile" -p meshdrop-ffi --lib

# Kotlin from the host build (same sources, so the same interface and checksums).
PROFILE=$profile bindings/generate.sh "$repo/target/bindings"
echo "jniLibs and Kotlin bindings ready; now: ./gradlew :app:assembleDebug"
