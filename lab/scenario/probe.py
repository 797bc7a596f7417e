"""A long-lived connection probe: a sender and a receiver, each writing what it saw to a JSON file.

Standard library only: the `connections` step runs this file's source with the
node's own `python3` (on this machine or in a VM) inside a container's network
namespace. The sender writes a sequence number every `interval` seconds (TCP:
one line each, on one connection; UDP: one datagram each); the receiver
records how many arrived, gaps in the sequence, the longest silence between
two arrivals, and whether the connection was reset. Both rewrite their file
every 0.2 s, so a check reads the flow while it runs.

    python3 probe.py receive tcp|udp PORT OUT
    python3 probe.py send tcp|udp HOST PORT INTERVAL OUT
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any


class Stats:
    def __init__(self, out: str, role: str, proto: str):
        self.out = out
        self.data: dict[str, Any] = {
            "role": role,
            "proto": proto,
            "count": 0,
            "last_seq": -1,
            "gaps": 0,  # sequence numbers never seen (lost or skipped)
            "out_of_order": 0,
            "max_silence_ms": 0.0,
            "reset": False,
            "closed": False,
            "error": "",
            "started": time.time(),
        }
        self.last = time.monotonic()
        self.flushed = 0.0

    def seen(self, seq: int) -> None:
        now = time.monotonic()
        d = self.data
        if d["count"]:
            d["max_silence_ms"] = max(d["max_silence_ms"], round((now - self.last) * 1000, 1))
        self.last = now
        if seq > d["last_seq"] + 1 and d["last_seq"] >= 0:
            d["gaps"] += seq - d["last_seq"] - 1
        elif seq <= d["last_seq"]:
            d["out_of_order"] += 1
        d["last_seq"] = max(d["last_seq"], seq)
        d["count"] += 1
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.flushed < 0.2:
            return
        self.flushed = now
        self.data["silent_now_ms"] = round((now - self.last) * 1000, 1)
        tmp = f"{self.out}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.out)


def receive(proto: str, port: int, out: str) -> None:
    stats = Stats(out, "receiver", proto)
    stats.flush(force=True)
    if proto == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))
        sock.settimeout(0.2)
        while True:
            try:
                data, _ = sock.recvfrom(64)
                stats.seen(int(data))
            except TimeoutError:
                stats.flush()
            except ValueError:
                continue
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(1)
    conn, _ = server.accept()
    conn.settimeout(0.2)
    pending = b""
    while True:
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            stats.flush()
            continue
        except ConnectionResetError:
            stats.data["reset"] = True
            break
        if not chunk:
            stats.data["closed"] = True
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            stats.seen(int(line))
    stats.flush(force=True)


def send(proto: str, host: str, port: int, interval: float, out: str) -> None:
    stats = Stats(out, "sender", proto)
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    sock = socket.socket(socket.AF_INET, kind)
    if proto == "tcp":
        deadline = time.monotonic() + 10
        while True:  # the receiver may still be starting
            try:
                sock.connect((host, port))
                break
            except OSError as err:
                if time.monotonic() > deadline:
                    stats.data["error"] = f"connect: {err}"
                    stats.flush(force=True)
                    return
                sock.close()
                sock = socket.socket(socket.AF_INET, kind)
                time.sleep(0.1)
    seq, next_at = 0, time.monotonic()
    while True:
        try:
            if proto == "udp":
                sock.sendto(f"{seq}".encode(), (host, port))
            else:
                sock.sendall(f"{seq}\n".encode())
        except OSError as err:  # TCP: reset, broken pipe; UDP: e.g. no route for a moment
            if proto == "tcp":
                stats.data["reset"] = isinstance(err, ConnectionResetError | BrokenPipeError)
                stats.data["error"] = str(err)
                stats.flush(force=True)
                return
            stats.data["error"] = str(err)
        else:
            stats.seen(seq)
        seq += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def main(argv: list[str]) -> None:
    if argv[0] == "receive":
        receive(argv[1], int(argv[2]), argv[3])
    else:
        send(argv[1], argv[2], int(argv[3]), float(argv[4]), argv[5])


if __name__ == "__main__":
    main(sys.argv[1:])
