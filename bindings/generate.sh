#!/usr/bin/env bash
# Builds the bindings library for this host, generates Kotlin, Swift and Python from the UNSTRIPPED
# library (library-mode bindgen reads the UniFFI metadata that stripping removes), and ships a
# stripped copy: in OUT/lib and beside the Python module.
#
#   bindings/generate.sh [OUT]        OUT defaults to target/bindings; PROFILE=release for apps.
#
# BUILT=1 skips the build: scripts/test.sh uses what scripts/run-tests.py built with the tests
# (building the bindings crate alone would unify fewer features and rebuild the core and tokio).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bindings}
profile=${PROFILE:-dev}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

[ -n "${BUILT:-}" ] || cargo build --quiet --profile "$profile" -p meshdrop-ffi --lib --bin uniffi-bindgen
case "$(uname -s)" in
  Darwin) lib=libmeshdrop_ffi.dylib ;;
  *) lib=libmeshdrop_ffi.so ;;
esac
unstripped="$target_dir/$dir/$lib"
bindgen="$target_dir/$dir/uniffi-bindgen"

rm -rf "$out"
mkdir -p "$out/lib"
for language in python kotlin swift; do
  "$bindgen" generate --no-format --library "$unstripped" --language "$language" --out-dir "$out/$language"
done

cp "$unstripped" "$out/lib/$lib"
strip --strip-unneeded "$out/lib/$lib" 2>/dev/null || strip -x "$out/lib/$lib"
cp "$out/lib/$lib" "$out/python/$lib"
echo "bindings in $out: $(cd "$out" && find python kotlin swift -type f | sort | tr '\n' ' ')"
