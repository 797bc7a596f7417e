"""The long-lived connection probe on loopback: a steady flow is seen whole; a reset and a silence are seen."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from lab.scenario import probe

PROBE = str(Path(probe.__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stats(path: Path) -> dict[str, object]:
    for _ in range(50):
        try:
            data: dict[str, object] = json.loads(path.read_text())
            return data
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError(f"no stats in {path}")


def test_a_steady_tcp_flow_has_no_gap_and_a_killed_receiver_is_a_reset(tmp_path: Path) -> None:
    port = free_port()
    recv_out, send_out = tmp_path / "r.json", tmp_path / "s.json"
    receiver = subprocess.Popen([sys.executable, PROBE, "receive", "tcp", str(port), str(recv_out)])
    sender = subprocess.Popen([sys.executable, PROBE, "send", "tcp", "127.0.0.1", str(port), "0.01", str(send_out)])
    try:
        time.sleep(1.5)
        seen = stats(recv_out)
        assert int(seen["count"]) > 50 and seen["gaps"] == 0 and not seen["reset"]
        assert float(seen["max_silence_ms"]) < 500
        receiver.kill()
        receiver.wait(5)
        sender.wait(10)
        assert stats(send_out)["reset"] is True or "Broken pipe" in str(stats(send_out)["error"])
    finally:
        for proc in (receiver, sender):
            proc.kill()


def test_udp_gaps_and_silence_are_counted(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "r.json"
    receiver = subprocess.Popen([sys.executable, PROBE, "receive", "udp", str(port), str(out)])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            time.sleep(0.3)
            for seq in (0, 1, 2, 5, 6):  # 3 and 4 lost
                s.sendto(str(seq).encode(), ("127.0.0.1", port))
                time.sleep(0.01)
            time.sleep(0.6)
            s.sendto(b"7", ("127.0.0.1", port))
            time.sleep(0.4)
        seen = stats(out)
        assert seen["count"] == 6 and seen["gaps"] == 2 and float(seen["max_silence_ms"]) >= 550
    finally:
        receiver.kill()
