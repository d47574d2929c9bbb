#!/usr/bin/env python3
"""Tiny network probes for the netns lab's self-tests. Prints JSON lines; every mode ends by itself.

  udp-echo   --port P [--timeout S]                 echo datagrams back; prints {"event":"ready"}
  udp-probe  --to IP --port P [--count N] [--wait-ms MS]
                                                    prints {"event":"result","sent":N,"received":K}
  mcast-listen --group G --port P [--timeout S] [--count N]
                                                    prints ready, then {"event":"recv","from":IP,"data":...}
  mcast-send --group G --port P --iface IP [--count N]
  tcp-sink   --port P [--timeout S]                 prints ready, then {"event":"received","bytes":N,"ms":T}
  tcp-send   --to IP --port P --bytes N             prints {"event":"sent","bytes":N,"ms":T}

Only for use inside the lab's network namespaces.
"""

import argparse
import json
import socket
import struct
import sys
import time


def emit(obj):
    print(json.dumps(obj), flush=True)


def udp_echo(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", a.port))
    s.settimeout(a.timeout)
    emit({"event": "ready", "port": a.port})
    try:
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)
    except socket.timeout:
        return 0


def udp_probe(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(a.wait_ms / 1000)
    received = 0
    for i in range(a.count):
        payload = f"probe-{i}".encode()
        try:
            s.sendto(payload, (a.to, a.port))
        except OSError as e:  # e.g. network unreachable while the link is down
            emit({"event": "send_error", "error": str(e)})
            continue
        deadline = time.monotonic() + a.wait_ms / 1000
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(2048)
            except socket.timeout:
                break
            if data == payload:
                received += 1
                break
    emit({"event": "result", "sent": a.count, "received": received})
    return 0


def mcast_listen(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", a.port))
    mreq = struct.pack("4s4s", socket.inet_aton(a.group), socket.inet_aton("0.0.0.0"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.settimeout(a.timeout)
    emit({"event": "ready", "group": a.group, "port": a.port})
    n = 0
    try:
        while n < a.count:
            data, peer = s.recvfrom(2048)
            emit({"event": "recv", "from": peer[0], "data": data.decode("utf-8", "replace")})
            n += 1
    except socket.timeout:
        pass
    return 0


def mcast_send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(a.iface))
    for i in range(a.count):
        s.sendto(f"hello-{i}".encode(), (a.group, a.port))
    emit({"event": "sent", "count": a.count})
    return 0


def tcp_sink(a):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", a.port))
    srv.listen(1)
    srv.settimeout(a.timeout)
    emit({"event": "ready", "port": a.port})
    conn, _ = srv.accept()
    conn.settimeout(a.timeout)
    start = time.monotonic()
    total = 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        total += len(chunk)
    emit({"event": "received", "bytes": total, "ms": int((time.monotonic() - start) * 1000)})
    return 0


def tcp_send(a):
    s = socket.create_connection((a.to, a.port), timeout=30)
    start = time.monotonic()
    block = b"x" * 65536
    left = a.bytes
    while left > 0:
        n = min(left, len(block))
        s.sendall(block[:n])
        left -= n
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # wait for the sink to close: all bytes arrived
    emit({"event": "sent", "bytes": a.bytes, "ms": int((time.monotonic() - start) * 1000)})
    return 0


def main():
    ap = argparse.ArgumentParser(description="network probes for the netns lab")
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("udp-echo")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30)
    p = sub.add_parser("udp-probe")
    p.add_argument("--to", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--wait-ms", type=int, default=300)
    p = sub.add_parser("mcast-listen")
    p.add_argument("--group", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--count", type=int, default=1)
    p = sub.add_parser("mcast-send")
    p.add_argument("--group", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--iface", required=True)
    p.add_argument("--count", type=int, default=3)
    p = sub.add_parser("tcp-sink")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30)
    p = sub.add_parser("tcp-send")
    p.add_argument("--to", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bytes", type=int, required=True)
    a = ap.parse_args()
    return {
        "udp-echo": udp_echo,
        "udp-probe": udp_probe,
        "mcast-listen": mcast_listen,
        "mcast-send": mcast_send,
        "tcp-sink": tcp_sink,
        "tcp-send": tcp_send,
    }[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
