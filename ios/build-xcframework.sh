#!/usr/bin/env bash
# Builds the binary half of the MeshdropKit Swift package on a Mac with Xcode, then checks it:
# - the Rust library as a static library for the iOS device (aarch64-apple-ios) and the simulator
#   (aarch64-apple-ios-sim and x86_64-apple-ios, merged with lipo), stripped of debug info;
# - the Swift, header and modulemap generated from the UNSTRIPPED host library (library-mode
#   bindgen reads the UniFFI metadata that stripping removes; the interface is the same on every
#   target);
# - MeshdropKit/<ffi_module_name>.xcframework from both, and the Swift in
#   MeshdropKit/Sources/<module_name>/ (names from bindings/uniffi.toml, [bindings.swift]).
# It stops with a message when a slice, architecture, header, modulemap or exported function is
# missing, or when the library needs a system framework or library that Package.swift does not link.
#
#   ios/build-xcframework.sh           build (PROFILE=release unless set)
#   ios/build-xcframework.sh --names   print the names it uses, build nothing (scripts/check-swift.sh)
#
# Needs Xcode and: rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
kit="$here/MeshdropKit"
lib=libmeshdrop_ffi.a
namespace=meshdrop_ffi # the prefix of every exported function: uniffi_<namespace>_…, ffi_<namespace>_…
device=aarch64-apple-ios
simulators=(aarch64-apple-ios-sim x86_64-apple-ios)

die() {
  echo "build-xcframework.sh: $*" >&2
  exit 1
}

# swift_name KEY: the value of KEY in the [bindings.swift] table of bindings/uniffi.toml.
swift_name() {
  local value
  value=$(awk -v key="$1" '
    /^\[/ { table = $0; next }
    table == "[bindings.swift]" && $1 == key && $2 == "=" { gsub(/"/, "", $3); print $3 }
  ' "$repo/bindings/uniffi.toml")
  [ -n "$value" ] || die "bindings/uniffi.toml has no $1 in [bindings.swift]"
  echo "$value"
}
module=$(swift_name module_name)           # the generated Swift: target Sources/$module
ffi_module=$(swift_name ffi_module_name)   # the C module: binary target, xcframework, modulemap
ffi_file=$(swift_name ffi_module_filename) # the header's and the modulemap's file names
xcframework="$kit/$ffi_module.xcframework"

if [ "${1:-}" = --names ]; then
  printf '%s\n' "module=$module" "ffi_module=$ffi_module" "ffi_file=$ffi_file" \
    "xcframework=${xcframework#"$here/"}" \
    "swift=${kit#"$here/"}/Sources/$module/$module.swift" \
    "slices=ios-arm64 ios-arm64_x86_64-simulator"
  exit 0
fi

# check_linked LOG: every framework and library in the native-static-libs line of LOG is linked by
# Package.swift (libSystem, which holds libc and libm, is linked into every iOS binary anyway).
check_linked() {
  local line words missing=() i
  line=$(grep -o 'native-static-libs: .*' "$1" | tail -n 1 || true)
  [ -n "$line" ] ||
    die "no native-static-libs line in $1 (cargo prints it when it builds the library: cargo clean -p meshdrop-ffi)"
  read -r -a words <<<"${line#native-static-libs: }"
  for ((i = 0; i < ${#words[@]}; i++)); do
    case "${words[i]}" in
      -framework)
        i=$((i + 1))
        grep -q "linkedFramework(\"${words[i]}\")" "$kit/Package.swift" || missing+=("framework ${words[i]}")
        ;;
      -lSystem | -lc | -lm) ;;
      -l*) grep -q "linkedLibrary(\"${words[i]#-l}\")" "$kit/Package.swift" || missing+=("library ${words[i]#-l}") ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] || die "Package.swift does not link ${missing[*]} (needed per $1)"
}

# check_slice ID ARCHS: the slice ID of the xcframework has the library with exactly ARCHS, the
# header and the modulemap of module $ffi_module, and defines every function the header declares.
check_slice() {
  local dir="$xcframework/$1" undefined
  [ -f "$dir/$lib" ] || die "$1: no $lib in $dir"
  [ -f "$dir/Headers/$ffi_file.h" ] || die "$1: no Headers/$ffi_file.h"
  grep -qx "module $ffi_module {" "$dir/Headers/module.modulemap" ||
    die "$1: Headers/module.modulemap does not declare module $ffi_module"
  [ "$(lipo -archs "$dir/$lib" | tr ' ' '\n' | sort | xargs)" = "$2" ] ||
    die "$1: architectures $(lipo -archs "$dir/$lib"), expected $2"
  undefined=$(comm -23 \
    <(grep -oE "(uniffi|ffi)_${namespace}_[A-Za-z0-9_]+" "$dir/Headers/$ffi_file.h" | sort -u) \
    <(nm -gU "$dir/$lib" 2>/dev/null | awk '{ sub(/^_/, "", $NF); print $NF }' | sort -u))
  [ -z "$undefined" ] || die "$1: the library lacks functions the header declares: $undefined"
}

cd "$repo"
profile=${PROFILE:-release}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work="$target_dir/xcframework"
rm -rf "$work"
mkdir -p "$work/headers" "$work/sim"

for target in "$device" "${simulators[@]}"; do
  cargo rustc --profile "$profile" -p meshdrop-ffi --lib --crate-type staticlib --target "$target" \
    -- --print native-static-libs 2>&1 | tee "$work/$target.log"
  check_linked "$work/$target.log"
done

PROFILE=$profile bindings/generate.sh "$work/bindings"
gen="$work/bindings/swift"
for file in "$module.swift" "$ffi_file.h" "$ffi_file.modulemap"; do
  [ -f "$gen/$file" ] || die "bindings/generate.sh wrote no $gen/$file"
done
grep -qx "module $ffi_module {" "$gen/$ffi_file.modulemap" ||
  die "$gen/$ffi_file.modulemap does not declare module $ffi_module"

cp "$gen/$ffi_file.h" "$work/headers/"
cp "$gen/$ffi_file.modulemap" "$work/headers/module.modulemap"
cp "$target_dir/$device/$dir/$lib" "$work/$lib"
sim_libs=()
for target in "${simulators[@]}"; do sim_libs+=("$target_dir/$target/$dir/$lib"); done
lipo -create "${sim_libs[@]}" -output "$work/sim/$lib"
strip -S "$work/$lib" "$work/sim/$lib"

rm -rf "$xcframework"
xcodebuild -create-xcframework \
  -library "$work/$lib" -headers "$work/headers" \
  -library "$work/sim/$lib" -headers "$work/headers" \
  -output "$xcframework"
check_slice ios-arm64 "arm64"
check_slice ios-arm64_x86_64-simulator "arm64 x86_64"

mkdir -p "$kit/Sources/$module"
cp "$gen/$module.swift" "$kit/Sources/$module/$module.swift"
echo "MeshdropKit ready: ${xcframework#"$repo/"} and ${kit#"$repo/"}/Sources/$module/$module.swift"
