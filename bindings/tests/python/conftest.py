"""Puts the generated Python bindings (bindings/generate.sh) on the import path."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BINDINGS = Path(os.environ.get("MESHDROP_BINDINGS", ROOT / "target" / "bindings")) / "python"

if not (BINDINGS / "meshdrop_ffi.py").exists():
    raise RuntimeError(f"no generated bindings in {BINDINGS}: run bindings/generate.sh first")
sys.path.insert(0, str(BINDINGS))
