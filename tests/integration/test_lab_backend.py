"""The netns backend: bring-up, exec, processes, and teardown that leaves nothing behind."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from lab.backends import registry
from lab.backends.base import LabError, NodeError, wait_for
from lab.backends.netns.clean import lab_processes
from lab.backends.netns.host import lab_cgroups
from lab.backends.netns.lab import NetnsLab
from lab.image import IMAGE
from lab.model.topology import load_topology
from tests.integration.nodes import host_snapshot

pytestmark = pytest.mark.root


def test_up_exec_down_leaves_nothing() -> None:
    before = host_snapshot()
    assert registry.existing_labs() == []
    lab = NetnsLab(load_topology(None))
    try:
        lab.up()
        loaded = registry.load_lab()
        assert loaded.run_id == lab.run_id
        # the underlay: node1 reaches node2 through the ToR; the ToR routes to pod CIDRs
        ping = loaded.node("node1").cmd(
            "busybox", "ping", "-c", "1", "-W", "2", lab.topology.node_ip("node2"), check=False
        )
        assert ping.returncode == 0, ping.stdout
        tor_routes = loaded.node("tor").cmd("ip", "route").stdout
        assert f"{lab.pod_cidr('node1')} via 192.168.50.2" in tor_routes
        assert lab.pod_cidr("node1") != lab.pod_cidr("node2")
        # a container makes the node's cgroup in every mounted hierarchy (v1 controllers and unified here)
        loaded.node("node1").docker("run", "--rm", IMAGE, "true")
        made = lab_cgroups(f"pn-{lab.run_id}-node1")
        assert len(made) > 1 and len({p.parent for p in made}) == len(made), made
        # nothing of the lab in the machine's own namespace
        assert host_snapshot()["links"] <= before["links"]
        with pytest.raises(LabError, match="run `lab down` or `lab clean` first"):
            NetnsLab(load_topology(None)).up()
    finally:
        loaded_or_lab = registry.load_lab() if registry.existing_labs() else lab
        assert loaded_or_lab.down() == []
    after = host_snapshot()
    assert after["netns"] == before["netns"] and after["links"] <= before["links"]
    assert after["mounts"] <= before["mounts"] and after["pins"] <= before["pins"]
    assert after["cgroups"] <= before["cgroups"], f"cgroups left: {after['cgroups'] - before['cgroups']}"
    assert registry.existing_labs() == [] and lab_processes() == {}


def test_processes_can_be_killed_and_started_by_a_later_command() -> None:
    """What `lab process` does: a process started by `lab up` is killed and restarted from the
    lab's record alone, and its state says how it ended."""
    lab = NetnsLab(load_topology(None))
    lab.up()
    try:
        again = registry.load_lab()  # as another `lab` command would
        node = again.node("node1")
        # node1's agent serves the docker plugin (docker_plugin: agent); node2 runs podnet-docker
        assert node.plugin_ready() and "podnet-docker" not in node.processes()
        with pytest.raises(NodeError, match="node1 runs no podnet-docker: its podnet-agent serves"):
            node.require_process("podnet-docker")
        again.node("node2").signal_process("podnet-docker", signal.SIGKILL)
        again.save()
        state = registry.load_lab().node("node2").processes()["podnet-docker"]
        assert not state.running and state.detail == "killed by SIGKILL", state
        third = registry.load_lab()
        third.start_process("node2", "podnet-docker")
        assert third.node("node2").plugin_ready()
        # node1's bird is podnet-agent's speaker: killed, the agent starts it again and says so
        speaker = node.processes()["bird"]
        assert speaker.running and speaker.pid is not None
        node.signal_process("bird", signal.SIGKILL)
        wait_for(
            lambda: (s := node.processes()["bird"]).running and s.pid != speaker.pid, 10, "the agent to restart bird"
        )
        wait_for(
            lambda: "restarted 1x; last: killed by SIGKILL" in node.agent().healthz()["bgp"]["message"],
            20,
            "healthz to say the speaker was restarted",
        )
        with pytest.raises(NodeError, match="the agent starts it by itself"):
            node.start_process("bird")
        # the new speaker's session comes up again (its connect retry): then the agent is ok again
        wait_for(lambda: node.agent().healthz()["state"] == "ok", 30, "node1's agent to be ok again")
        status = registry.load_lab().status()
        node1 = next(n for n in status.nodes if n.name == "node1")
        node2 = next(n for n in status.nodes if n.name == "node2")
        assert {p.name: p.running for p in node2.processes}["podnet-docker"] is True
        assert node1.pod_cidr and node1.role == "worker" and node1.agent is not None and node1.agent.state == "ok"
    finally:
        registry.load_lab().down()


def test_clean_after_a_crash() -> None:
    lab = NetnsLab(load_topology(None))
    lab.up()
    # simulate a crashed `lab` command: its state file is gone, its processes and namespaces are not
    (lab.root / "lab.json").unlink()
    lab.node("node1").docker("run", "--rm", IMAGE, "true")
    assert lab_processes()
    assert len(lab_cgroups(f"pn-{lab.run_id}-node1")) > 1, "the container made no cgroups to clean"
    removed = registry.clean()
    assert removed["namespaces"] and removed["processes"] and removed["bpf pins"] and removed["cgroups"]
    assert not list(Path("/sys/fs/bpf/podnet").glob("pn-*"))
    assert lab_cgroups() == [], "lab clean left cgroups in some hierarchy"
    assert registry.existing_labs() == [] and lab_processes() == {}
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "pn-" not in out
