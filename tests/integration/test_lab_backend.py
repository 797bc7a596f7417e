"""The netns backend: bring-up, exec, and teardown that leaves nothing behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.clean import clean, lab_processes
from lab.lab import Lab, LabError, existing_labs
from lab.topology import load_topology
from tests.integration.nodes import host_snapshot

pytestmark = pytest.mark.root


def test_up_exec_down_leaves_nothing() -> None:
    before = host_snapshot()
    assert existing_labs() == []
    lab = Lab(load_topology(None))
    try:
        lab.up()
        loaded = Lab.load()
        assert loaded.run_id == lab.run_id
        # the underlay: node1 reaches node2 through the ToR; the ToR routes to pod CIDRs
        ping = loaded.node("node1").cmd(
            "busybox", "ping", "-c", "1", "-W", "2", lab.topology.node_ip("node2"), check=False
        )
        assert ping.returncode == 0, ping.stdout
        tor_routes = loaded.node("tor").cmd("ip", "route").stdout
        assert f"{lab.pod_cidr('node1')} via 192.168.50.2" in tor_routes
        assert lab.pod_cidr("node1") != lab.pod_cidr("node2")
        # nothing of the lab in the machine's own namespace
        assert host_snapshot()["links"] <= before["links"]
        with pytest.raises(LabError, match="run `lab down` or `lab clean` first"):
            Lab(load_topology(None)).up()
    finally:
        loaded_or_lab = Lab.load() if existing_labs() else lab
        assert loaded_or_lab.down() == []
    after = host_snapshot()
    assert after["netns"] == before["netns"] and after["links"] <= before["links"]
    assert after["mounts"] <= before["mounts"] and after["pins"] <= before["pins"]
    assert existing_labs() == [] and lab_processes() == {}


def test_clean_after_a_crash() -> None:
    lab = Lab(load_topology(None))
    lab.up()
    # simulate a crashed `lab` command: its state file is gone, its processes and namespaces are not
    (lab.root / "lab.json").unlink()
    assert lab_processes()
    removed = clean()
    assert removed["namespaces"] and removed["processes"] and removed["bpf pins"]
    assert not list(Path("/sys/fs/bpf/podnet").glob("pn-*"))
    assert existing_labs() == [] and lab_processes() == {}
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "pn-" not in out
