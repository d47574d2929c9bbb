#!/usr/bin/env bash
# Builds MeshdropFFI.xcframework (iOS device + simulator) for the MeshdropKit Swift package, and
# copies in the Swift generated from the UNSTRIPPED host library (library-mode bindgen needs the
# UniFFI metadata; the static libraries shipped in the xcframework are stripped of debug info).
#
# Needs macOS with Xcode, and: rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
kit="$here/MeshdropKit"
profile=${PROFILE:-release}
cd "$repo"

for target in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
  cargo build --profile "$profile" -p meshdrop-ffi --lib --target "$target"
done
# Swift, header and modulemap from the host (macOS) library: same sources, same interface.
PROFILE=$profile bindings/generate.sh "$repo/target/bindings"

work="$repo/target/xcframework"
rm -rf "$work" "$kit/MeshdropFFI.xcframework"
mkdir -p "$work/headers" "$work/sim"
cp target/bindings/swift/meshdrop_ffiFFI.h "$work/headers/"
cp target/bindings/swift/meshdrop_ffiFFI.modulemap "$work/headers/module.modulemap"
lipo -create \
  "target/aarch64-apple-ios-sim/$profile/libmeshdrop_ffi.a" \
  "target/x86_64-apple-ios/$profile/libmeshdrop_ffi.a" \
  -output "$work/sim/libmeshdrop_ffi.a"
cp "target/aarch64-apple-ios/$profile/libmeshdrop_ffi.a" "$work/libmeshdrop_ffi.a"
strip -S "$work/libmeshdrop_ffi.a" "$work/sim/libmeshdrop_ffi.a"
xcodebuild -create-xcframework \
  -library "$work/libmeshdrop_ffi.a" -headers "$work/headers" \
  -library "$work/sim/libmeshdrop_ffi.a" -headers "$work/headers" \
  -output "$kit/MeshdropFFI.xcframework"
cp target/bindings/swift/MeshdropFFI.swift "$kit/Sources/MeshdropFFI/MeshdropFFI.swift"
echo "MeshdropKit ready: open ios/MeshdropApp (xcodegen generate) or add ios/MeshdropKit to a project"
