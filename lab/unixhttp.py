"""One raw HTTP POST over a unix socket (how dockerd talks to a plugin), for tests and benchmarks."""

from __future__ import annotations

import json
import socket
import time
from typing import Any


def post(sock_path: str, path: str, body: bytes) -> tuple[int, Any, float]:
    """(status, decoded JSON reply, seconds)."""
    t0 = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock_path)
        request = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        s.sendall(request.encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    elapsed = time.perf_counter() - t0
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload) if payload else None, elapsed
