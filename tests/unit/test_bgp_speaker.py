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
# birdc -s CTL configure: what it was asked, in a file beside it; answers as bird2 does
FAKE_BIRDC = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/birdc.calls"
echo "Reading configuration from $(dirname "$2")/bird.conf"
echo "Reconfigured"
"""


@pytest.fixture
def speaker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BirdSpeaker]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bird").write_text(FAKE_BIRD)
    (bin_dir / "bird").chmod(0o755)
    (bin_dir / "birdc").write_text(FAKE_BIRDC)
    (bin_dir / "birdc").chmod(0o755)
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
        calls = (tmp_path / "bin" / "birdc.calls").read_text().splitlines()
        assert calls == [f"-s {early.ctl} configure"], calls
        assert early.proc.pid == pid, "bird is reconfigured, not restarted (its sessions stay up)"
        early.announce("10.20.30.64/26")  # the same again: nothing to do
        assert len((tmp_path / "bin" / "birdc.calls").read_text().splitlines()) == 1
        early.start()  # what the agent calls next: a no-op on a running speaker
        assert early.proc.pid == pid
    finally:
        early.stop()


def test_a_pod_cidr_announced_while_bird_is_down_is_in_its_next_start(tmp_path: Path, speaker: BirdSpeaker) -> None:
    down = BirdSpeaker(speaker.config, None, tmp_path / "down")
    down.announce("10.20.30.128/26")
    assert not (tmp_path / "bin" / "birdc.calls").exists()
    down.start()
    try:
        assert "route 10.20.30.128/26 blackhole;" in down.conf.read_text()
    finally:
        down.stop()
