#!/usr/bin/env python3
"""Browse for meshdrop nodes with python-zeroconf, a DNS-SD client meshdrop did not write.

Prints one JSON object per line on stdout:
  {"event": "browsing", "type": "_meshdrop._udp.local."}
  {"event": "service", "change": "added"|"updated", "name": ..., "server": ..., "port": ...,
   "addresses": [...], "properties": {"peer": ..., "name": ..., ...}, "elapsed_ms": ...}
  {"event": "removed", "name": ...}
  {"event": "done", "found": true|false}

Exits 0 when a service was resolved (with --expect-peer: when one whose TXT `peer` equals it was),
2 on timeout, so it can never hang a test. Meant to run inside a test network namespace only.
"""

import argparse
import json
import queue
import sys
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

SERVICE_TYPE = "_meshdrop._udp.local."


def emit(obj):
    print(json.dumps(obj), flush=True)


def decode(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--type", default=SERVICE_TYPE, help="service type to browse")
    ap.add_argument("--timeout", type=float, default=20.0, help="give up after this many seconds")
    ap.add_argument("--expect-peer", help="stop as soon as a service with this TXT `peer` is resolved")
    ap.add_argument("--keep-going", action="store_true", help="browse until the timeout")
    args = ap.parse_args()

    start = time.monotonic()
    deadline = start + args.timeout
    changes = queue.Queue()

    def on_change(zeroconf, service_type, name, state_change):
        changes.put((name, state_change))

    zc = Zeroconf(ip_version=IPVersion.V4Only)
    found = False
    try:
        ServiceBrowser(zc, args.type, handlers=[on_change])
        emit({"event": "browsing", "type": args.type})
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                name, change = changes.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if change is ServiceStateChange.Removed:
                emit({"event": "removed", "name": name})
                continue
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            info = zc.get_service_info(args.type, name, timeout=min(3000, remaining_ms))
            if info is None:
                emit({"event": "unresolved", "name": name})
                continue
            props = {decode(k): decode(v) for k, v in info.properties.items()}
            emit(
                {
                    "event": "service",
                    "change": "added" if change is ServiceStateChange.Added else "updated",
                    "name": name,
                    "server": info.server,
                    "port": info.port,
                    "addresses": info.parsed_addresses(),
                    "properties": props,
                    "elapsed_ms": int((time.monotonic() - start) * 1000),
                }
            )
            if args.keep_going:
                found = True
                continue
            if args.expect_peer is None or props.get("peer") == args.expect_peer:
                found = True
                break
    finally:
        emit({"event": "done", "found": found})
        zc.close()
    return 0 if found else 2


if __name__ == "__main__":
    sys.exit(main())
