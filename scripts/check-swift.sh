#!/usr/bin/env bash
# Checks the iOS side where there is no Swift or Xcode, as CI runs it:
#
#   scripts/check-swift.sh GENERATED_DIR     GENERATED_DIR: bindings/generate.sh's output (target/bindings)
#
# - every Swift file parses with tree-sitter-swift; hand-written Swift uses only what the generated
#   Swift declares; Package.swift, uniffi.toml and ios/build-xcframework.sh agree on names; the
#   app's plists declare what the code uses (scripts/check_swift.py says how);
# - the shell scripts the iOS build runs pass shellcheck;
# - the checker still catches broken copies of the tree (its self-test).
#
# Installs nothing. Needs shellcheck (Debian package) and Python 3.11+ with, from PyPI,
# tree-sitter==0.26.1 and tree-sitter-swift==0.7.4 (the grammar's gaps it works around are these
# versions').
set -euo pipefail
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  echo "usage: scripts/check-swift.sh GENERATED_DIR (a folder bindings/generate.sh wrote)" >&2
  exit 2
fi
generated=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."

missing=()
command -v shellcheck >/dev/null || missing+=("shellcheck (apt-get install shellcheck)")
pins=$(python3 - <<'EOF' 2>&1
import sys
from importlib.metadata import PackageNotFoundError, version
if sys.version_info < (3, 11):
    print(f"Python 3.11 or later (this is {sys.version.split()[0]})")
for name, pin in (("tree-sitter", "0.26.1"), ("tree-sitter-swift", "0.7.4")):
    try:
        found = version(name)
    except PackageNotFoundError:
        found = None
    if found != pin:
        print(f"{name}=={pin} (pip install; found {found or 'none'})")
EOF
) || true
while IFS= read -r line; do
  [ -n "$line" ] && missing+=("$line")
done <<<"$pins"
if [ ${#missing[@]} -gt 0 ]; then
  echo "check-swift: missing tools:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi

shellcheck ios/build-xcframework.sh bindings/generate.sh scripts/check-swift.sh
python3 scripts/check_swift.py "$generated"
python3 scripts/check_swift.py "$generated" --self-test
