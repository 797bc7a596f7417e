"""The agent's speaker, started before the node has a pod CIDR, announces it later without
dropping its session: real bird2 on both sides, a peer in one namespace, the speaker in another."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lab.backends.base import wait_for
from lab.backends.netns.node import NetnsNode
from lab.backends.netns.standalone import bare_node

pytestmark = pytest.mark.root

POD_CIDR = "10.99.0.64/26"
PEER_CONF = """\
router id 192.168.99.1;
protocol device { scan time 10; }
protocol bgp node {
  local 192.168.99.1 as 65000;
  neighbor 192.168.99.2 as 65001;
  hold time 9; keepalive time 3;
  ipv4 { import all; export none; };
}
"""
# The speaker, as podnet-agent runs it: started with no pod CIDR; told one on a line of stdin.
SPEAKER = """\
import sys
from pathlib import Path
from podnet.bgp.bird import BGPConfig, BirdSpeaker, Peer

speaker = BirdSpeaker(BGPConfig("192.168.99.2", 65001, (Peer("192.168.99.1", 65000),)), None, Path(sys.argv[1]))
speaker.start()
try:
    print(speaker.proc.pid, flush=True)
    cidr = sys.stdin.readline().strip()
    if cidr:
        speaker.announce(cidr)
        print(speaker.proc.pid, flush=True)
        sys.stdin.readline()
        print(speaker.established(), flush=True)  # read from bird's control socket, as the watchdog does
        sys.stdin.readline()
finally:
    speaker.stop()
"""


def birdc(node: NetnsNode, *command: str) -> str:
    return node.cmd("birdc", *node.bird_socket, *command).stdout


@pytest.fixture
def peer() -> Iterator[NetnsNode]:
    with bare_node("bgppeer") as node:
        node.path("run", "bird.conf").write_text(PEER_CONF)
        proc = subprocess.Popen(
            node.argv_for(["bird", "-f", "-c", str(node.path("run", "bird.conf")), *node.bird_socket]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: node.path("run", "bird.ctl").exists(), 5, "the peer's bird")
            yield node
        finally:
            proc.terminate()
            proc.wait(5)


def test_a_pod_cidr_announced_after_the_session_is_up_keeps_the_session(peer: NetnsNode) -> None:
    with bare_node("bgpspeaker") as node:
        peer.cmd("ip", "link", "add", "to-node", "type", "veth", "peer", "name", "to-peer", "netns", node.netns)
        peer.cmd("ip", "addr", "add", "192.168.99.1/30", "dev", "to-node")
        peer.cmd("ip", "link", "set", "to-node", "up")
        node.cmd("ip", "addr", "add", "192.168.99.2/30", "dev", "to-peer")
        node.cmd("ip", "link", "set", "to-peer", "up")
        speaker = subprocess.Popen(
            node.argv_for([sys.executable, "-c", SPEAKER, str(node.path("run", "bgp"))]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert speaker.stdin is not None and speaker.stdout is not None
        try:
            bird_pid = speaker.stdout.readline().strip()
            assert bird_pid, "the speaker did not start"

            def session() -> str:
                return birdc(peer, "show", "protocols", "node")

            wait_for(lambda: "Established" in session(), 15, "the session, with nothing announced yet")
            since = re.search(r"node\s+BGP\s+\S+\s+up\s+(\S+)", session())
            assert since is not None, session()
            assert POD_CIDR not in birdc(peer, "show", "route")
            speaker.stdin.write(POD_CIDR + "\n")
            speaker.stdin.flush()
            assert speaker.stdout.readline().strip() == bird_pid, "bird was restarted, not reconfigured"
            wait_for(lambda: POD_CIDR in birdc(peer, "show", "route"), 5, "the peer to learn the pod CIDR")
            assert f"up     {since.group(1)}" in session(), f"the session went down and up again: {session()}"
            speaker.stdin.write("\n")
            speaker.stdin.flush()
            assert speaker.stdout.readline().strip() == "True", "the speaker does not see its session Established"
        finally:
            speaker.stdin.close()  # the speaker stops its bird and exits
            speaker.wait(10)
