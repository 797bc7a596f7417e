"""The agent's BGP speaker is started again when it dies (a fake `bird` on PATH: no root, no daemon)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.bgp.bird import WATCH_INTERVAL_S, BGPConfig, BGPError, BirdSpeaker, Peer

# bird -p -c CONF: check the config; bird -f -c CONF -s CTL -P PID: run in the foreground and serve
# the control socket as bird2 does. Every command it is asked goes to CTL.calls; `show protocols`
# says the session is in the state written in CTL.state (Active until then).
FAKE_BIRD = """#!{python}
import os, socket, sys
from pathlib import Path

if sys.argv[1] == "-p":
    sys.exit(0)
ctl = sys.argv[sys.argv.index("-s") + 1]
Path(sys.argv[sys.argv.index("-P") + 1]).write_text(str(os.getpid()))
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
Path(ctl).unlink(missing_ok=True)  # a killed bird's socket, as bird2 does
server.bind(ctl)
server.listen(8)
while True:
    conn, _ = server.accept()
    stream = conn.makefile("rwb")
    stream.write(b"0001 BIRD 2.0.12 ready.\\n")
    stream.flush()
    command = stream.readline().decode().strip()
    with open(ctl + ".calls", "a") as calls:
        calls.write(command + "\\n")
    if command == "configure" and Path(ctl + ".refuse").exists():
        stream.write(b"0002-Reading configuration from x\\n8002 x:3:1 syntax error\\n")
    elif command == "configure":
        stream.write(b"0002-Reading configuration from x\\n0003 Reconfigured\\n")
    elif command == "show protocols":
        state = Path(ctl + ".state").read_text() if Path(ctl + ".state").exists() else "Active"
        stream.write(b"2002-Name       Proto      Table      State  Since         Info\\n")
        stream.write(b"1002-device1    Device     ---        up     12:00:00.000  \\n")
        stream.write(f" tor        BGP        ---        start  12:00:00.000  {{state}}\\n".encode())
        stream.write(b"0000 \\n")
    else:
        stream.write(b"9001 syntax error\\n")
    stream.flush()
    conn.close()
"""


def calls(speaker: BirdSpeaker) -> list[str]:
    path = Path(f"{speaker.ctl}.calls")
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def speaker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BirdSpeaker]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bird").write_text(FAKE_BIRD.format(python=sys.executable))
    (bin_dir / "bird").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    s = BirdSpeaker(BGPConfig("192.168.50.2", 65001, (Peer("192.168.50.1", 65000),)), "10.20.30.0/26", tmp_path / "bgp")
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_a_killed_speaker_is_started_again_and_said_so(speaker: BirdSpeaker) -> None:
    assert speaker.proc is not None and speaker.note() == ""
    first = speaker.proc.pid
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 5 * WATCH_INTERVAL_S + 2
    while time.monotonic() < deadline and not (speaker.running() and speaker.proc.pid != first):
        time.sleep(0.05)
    assert speaker.running() and speaker.proc.pid != first, "the agent did not start its speaker again"
    assert speaker.note() == "restarted 1x; last: killed by SIGKILL"


def test_a_stopped_speaker_stays_stopped(speaker: BirdSpeaker) -> None:
    speaker.stop()
    time.sleep(3 * WATCH_INTERVAL_S)
    assert not speaker.running() and speaker.restarts == 0
    with pytest.raises(BGPError, match="not running"):
        speaker.peers()


def test_a_speaker_started_before_the_pod_cidr_announces_it_by_reconfiguring(
    tmp_path: Path, speaker: BirdSpeaker
) -> None:
    early = BirdSpeaker(speaker.config, None, tmp_path / "early")
    early.start()
    try:
        assert early.proc is not None
        pid = early.proc.pid
        assert "route " not in early.conf.read_text(), "a speaker without a pod CIDR announces nothing"
        early.announce("10.20.30.64/26")
        assert "route 10.20.30.64/26 blackhole;" in early.conf.read_text()
        assert calls(early).count("configure") == 1, calls(early)
        assert early.proc.pid == pid, "bird is reconfigured, not restarted (its sessions stay up)"
        early.announce("10.20.30.64/26")  # the same again: nothing to do
        assert calls(early).count("configure") == 1
        early.start()  # what the agent calls next: a no-op on a running speaker
        assert early.proc.pid == pid
    finally:
        early.stop()


def test_a_pod_cidr_announced_while_bird_is_down_is_in_its_next_start(tmp_path: Path, speaker: BirdSpeaker) -> None:
    down = BirdSpeaker(speaker.config, None, tmp_path / "down")
    down.announce("10.20.30.128/26")
    assert "configure" not in calls(down)
    down.start()
    try:
        assert "route 10.20.30.128/26 blackhole;" in down.conf.read_text()
    finally:
        down.stop()


def test_bird_is_asked_often_until_its_session_is_up_then_seldom(speaker: BirdSpeaker) -> None:
    """Asking bird wakes it: an UPDATE it queued when the session came up goes out at once."""
    time.sleep(1.0)
    while_down = calls(speaker).count("show protocols")
    assert while_down >= 5, f"asked {while_down}x in 1 s while the session was down"
    assert not speaker.established()
    Path(f"{speaker.ctl}.state").write_text("Established")
    time.sleep(0.3)
    assert speaker.established()
    before = calls(speaker).count("show protocols")
    time.sleep(1.0)
    assert calls(speaker).count("show protocols") - before <= 3  # every WATCH_INTERVAL_S once it is up


def test_a_control_socket_error_is_a_bgp_error(speaker: BirdSpeaker) -> None:
    deadline = time.monotonic() + 5
    while not speaker.ctl.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(BGPError, match="bird: syntax error"):
        speaker.control("show nonsense")


def test_a_pod_cidr_bird_refuses_is_not_taken_as_announced(tmp_path: Path, speaker: BirdSpeaker) -> None:
    early = BirdSpeaker(speaker.config, None, tmp_path / "refused")
    early.start()
    try:
        Path(f"{early.ctl}.refuse").touch()
        with pytest.raises(BGPError, match="syntax error"):
            early.announce("10.20.30.64/26")
        assert early.pod_cidr is None  # so the agent's next call tries again
        Path(f"{early.ctl}.refuse").unlink()
        early.announce("10.20.30.64/26")
        assert early.pod_cidr == "10.20.30.64/26" and calls(early).count("configure") == 2
    finally:
        early.stop()
