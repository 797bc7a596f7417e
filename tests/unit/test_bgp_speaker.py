"""The agent's BGP speaker is started again when it dies (a fake `bird` on PATH: no root, no daemon)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.bgp.bird import WATCH_INTERVAL_S, BGPConfig, BGPError, BirdSpeaker, Peer

FAKE_BIRD = """#!/bin/sh
# bird -p -c CONF: check the config; bird -f -c CONF -s CTL -P PID: run in the foreground
[ "$1" = "-p" ] && exit 0
while [ $# -gt 0 ]; do
  case $1 in -s) ctl=$2; shift;; -P) pid=$2; shift;; esac
  shift
done
echo $$ > "$pid"; : > "$ctl"
exec sleep 600
"""


@pytest.fixture
def speaker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BirdSpeaker]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bird").write_text(FAKE_BIRD)
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
