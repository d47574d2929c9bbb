#!/usr/bin/env python3
"""Builds every test binary of the workspace once, then runs them a few at a time.

`cargo test` runs one test binary after another; the network scenarios spend most of their time
waiting on rate-limited links and timeouts, so CI runs several binaries at once. Each binary's
output is printed whole when it ends (never interleaved), then a table of the slowest and the
failed ones. Exits non-zero when a build or any binary fails.

    scripts/run-tests.py [--jobs N] [-- ARGS FOR EVERY TEST BINARY]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Binaries that measure the device itself under a flood (its memory, how fast it answers, what
# it keeps): they run alone, first, so no other binary's load is counted against them.
ALONE = {"tests/tests/hostile.rs"}


def test_binaries():
    """Builds the tests as `cargo test --workspace` would (with the libraries and binaries, so
    the bindings library and generator are there too) and lists (name, executable, package dir)."""
    build = subprocess.run(
        [
            "cargo",
            "build",
            "--workspace",
            "--lib",
            "--bins",
            "--tests",
            "--message-format=json-render-diagnostics",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    if build.returncode != 0:
        sys.exit(f"run-tests: building the tests failed (cargo exit {build.returncode})")
    found = []
    for line in build.stdout.splitlines():
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg["profile"]["test"]:
            continue
        package_dir = os.path.dirname(msg["manifest_path"])
        source = os.path.relpath(msg["target"]["src_path"], package_dir)
        found.append((f"{os.path.basename(package_dir)}/{source}", msg["executable"], package_dir))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("TEST_JOBS", "3")))
    parser.add_argument("args", nargs="*", help="passed to every test binary")
    options = parser.parse_args()

    binaries = test_binaries()
    alone = sum(1 for entry in binaries if entry[0] in ALONE)
    print(
        f"run-tests: {len(binaries)} test binaries: {alone} alone, then {options.jobs} at a time",
        flush=True,
    )
    printing = threading.Lock()
    results = []

    def run(entry):
        name, executable, package_dir = entry
        started = time.monotonic()
        # Cargo runs a test binary in its package's directory with CARGO_MANIFEST_DIR set.
        env = dict(os.environ, CARGO_MANIFEST_DIR=package_dir)
        done = subprocess.run(
            [executable, *options.args],
            cwd=package_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        took = time.monotonic() - started
        verdict = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        with printing:
            print(f"\n=== {name}: {verdict} in {took:.1f} s", flush=True)
            print(done.stdout, end="", flush=True)
        results.append((took, name, done.returncode))

    for entry in binaries:
        if entry[0] in ALONE:
            run(entry)
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        list(pool.map(run, [entry for entry in binaries if entry[0] not in ALONE]))

    print("\nrun-tests: slowest test binaries")
    for took, name, _ in sorted(results, reverse=True)[:8]:
        print(f"  {took:6.1f} s  {name}")
    failed = sorted(name for _, name, code in results if code != 0)
    if failed:
        print("run-tests: FAILED: " + ", ".join(failed))
        sys.exit(1)
    print(f"run-tests: all {len(results)} test binaries passed")


if __name__ == "__main__":
    main()
