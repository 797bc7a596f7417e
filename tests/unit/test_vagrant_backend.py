"""The Vagrant backend's pure parts: node configuration, staging, ssh command lines."""

from __future__ import annotations

import base64
import json
import shlex
import tomllib
from pathlib import Path

import pytest

from lab.backends.base import NodeError
from lab.backends.vagrant.lab import root_ssh_config
from lab.backends.vagrant.node import VagrantNode
from lab.backends.vagrant.provision import link_mac, node_files, store_url
from lab.model.cluster import agent_settings, as_flags, as_toml
from lab.model.topology import Topology, load_topology
from podnet.agent.config import load_config
from podnet.kvstore import keys


def no_control() -> Topology:
    return Topology.model_validate(
        {"name": "flat", "cluster_cidrs": ["10.9.0.0/16"], "mask_size": 24, "nodes": [{"name": "a"}, {"name": "b"}]}
    )


def test_agent_toml_is_what_the_agent_loads(tmp_path: Path) -> None:
    topology = load_topology("default")
    settings = {"node_name": "node2", **agent_settings(topology, "node2", store_url(topology, "node2"))}
    path = tmp_path / "agent.toml"
    path.write_text(as_toml(settings))
    config = load_config(str(path), {})
    assert config.node_name == "node2"
    assert config.node_ip == "192.168.50.6" and config.bgp_peer == "192.168.50.5"
    assert config.bgp_asn == 65002 and config.bgp_peer_asn == 65000
    assert config.ipam_mode == "operator" and config.store == "etcd://192.168.50.10:2379"
    assert config.cluster_cidrs == topology.cluster_cidrs and config.mask_size == topology.mask_size


def test_flags_carry_the_same_settings() -> None:
    topology = load_topology("default")
    flags = as_flags(agent_settings(topology, "node1", "etcd://x:2379"))
    assert flags.count("--cluster-cidr") == 2
    pairs = dict(zip(flags[::2], flags[1::2], strict=True))
    assert pairs["--node-ip"] == "192.168.50.2" and pairs["--bgp-asn"] == "65001" and pairs["--ipam-mode"] == "operator"


def test_toml_quotes_strings() -> None:
    assert tomllib.loads(as_toml({"s": 'a "b" \\c', "n": 3, "l": ["x", "y"], "t": True})) == {
        "s": 'a "b" \\c',
        "n": 3,
        "l": ["x", "y"],
        "t": True,
    }


def test_staged_files_per_role() -> None:
    topology = load_topology("three-nodes")
    tor = node_files(topology, "tor")
    assert tor["role"] == "tor\n"
    assert tor["links"].splitlines() == [
        "192.168.50.1/30 to-node1 52:54:00:51:00:00",
        "192.168.50.5/30 to-node2 52:54:00:51:00:01",
        "192.168.50.9/30 to-node3 52:54:00:51:00:02",
        "192.168.50.13/30 to-ctrl 52:54:00:51:00:03",
    ]
    assert tor["hostname"] == "tor\n"
    assert "neighbor 192.168.50.10 as 65003;" in tor["bird.conf"] and "etcd.env" not in tor
    ctrl = node_files(topology, "ctrl")
    assert ctrl["register"].splitlines() == ["node1 192.168.50.2", "node2 192.168.50.6", "node3 192.168.50.10"]
    assert "ETCD_ADVERTISE_CLIENT_URLS=http://192.168.50.14:2379" in ctrl["etcd.env"]
    operator_args = shlex.split(ctrl["operator.env"].split("=", 1)[1])
    assert operator_args[:2] == ["--store", "etcd://192.168.50.14:2379"]
    node3 = node_files(topology, "node3")
    assert node3["links"] == "192.168.50.10/30 uplink 52:54:00:52:00:02\n" and node3["gateway"] == "192.168.50.9\n"
    assert tomllib.loads(node3["agent.toml"])["node_name"] == "node3"
    assert node3["registered_by"] == "ctrl\n"  # its agent waits for the registration in topology order


def test_a_worker_waits_for_its_registration_with_one_etcd_request() -> None:
    """provision.sh asks etcd itself (curl) for the key podnet's registry writes, instead of
    running `podnet node list` (seconds of emulated CPU) every two seconds."""
    topology = load_topology("three-nodes")
    url, request = node_files(topology, "node2")["registration"].split()
    assert url == "http://192.168.50.14:2379/v3/kv/range"
    body = json.loads(request)
    assert base64.b64decode(body["key"]).decode() == keys.cluster_node("node2") and body["count_only"] is True


def test_link_macs_are_distinct_per_end_and_link() -> None:
    topology = load_topology("nine-nodes")
    macs = [link_mac(link.index, side) for link in topology.links() for side in (1, 2)]
    assert len(set(macs)) == len(macs) and all(m.startswith("52:54:00:") for m in macs)
    assert link_mac(300, 2) == "52:54:00:52:01:2c"


def test_without_a_control_node_the_tor_holds_the_store() -> None:
    topology = no_control()
    assert "etcd.env" in node_files(topology, "tor")
    assert store_url(topology, "a") == "etcd://192.168.50.1:2379"
    assert store_url(topology, "b") == "etcd://192.168.50.5:2379"  # the same etcd, through the node's own link
    assert "ipam_mode" not in tomllib.loads(node_files(topology, "b")["agent.toml"])
    assert "registered_by" not in node_files(topology, "b")


def test_ssh_config_logs_in_as_root_through_each_vms_master(tmp_path: Path) -> None:
    vagrant = "Host node1\n  HostName 192.168.121.5\n  User vagrant\n  Port 22\nHost tor\n  User vagrant\n"
    text = root_ssh_config(vagrant, tmp_path)
    assert "User vagrant" not in text and text.count("User root") == 2
    assert text.count("StreamLocalBindUnlink yes") == 2
    # %n is the name ssh was given: node1's master socket is the one VagrantNode("node1") opens
    assert text.count(f"ControlPath {tmp_path}/%n/ssh.ctl") == 2
    node = VagrantNode("node1", tmp_path / "node1", tmp_path / "ssh_config")
    assert str(node.control_path) == f"{tmp_path}/%n/ssh.ctl".replace("%n", "node1")


def test_commands_run_over_the_master_connection(tmp_path: Path) -> None:
    node = VagrantNode("node1", tmp_path / "node1", tmp_path / "ssh_config")
    argv = node.argv_for(["sh", "-c", "echo 'a b' > /tmp/x"])
    assert argv[:3] == ["ssh", "-F", str(tmp_path / "ssh_config")]
    assert f"ControlPath={tmp_path / 'node1' / 'ssh.ctl'}" in argv and "ControlMaster=no" in argv
    assert argv[-2] == "node1" and shlex.split(argv[-1]) == ["sh", "-c", "echo 'a b' > /tmp/x"]
    assert node.unit("dockerd") == "docker"
    with pytest.raises(NodeError, match="no process 'sshd'"):
        node.unit("sshd")


def test_a_fabric_is_taken_by_the_vagrant_backend_one_vm_per_router() -> None:
    """Issue 18: the Vagrant backend brings fabrics up (capability fabric): a VM per spine and leaf."""
    from lab.backends.vagrant.lab import VagrantLab

    lab = VagrantLab(load_topology("spine-leaf"))
    assert "fabric" in lab.capabilities
    assert list(lab.routers) == ["spine1", "spine2", "leaf1", "leaf2", "leaf3", "leaf4"]
    assert lab.tor.name == "spine1" and len(lab.nodes) == 9
    assert list(VagrantLab(load_topology("three-nodes")).routers) == ["tor"]


def test_a_node_whose_agent_serves_the_docker_plugin_gets_no_podnet_docker(tmp_path: Path) -> None:
    """default: node1's agent serves the plugin (agent.toml, no plugin.env: provision.sh installs no
    podnet-docker unit); node2 runs podnet-docker (docker_plugin: process)."""
    topology = load_topology("default")
    node1, node2 = node_files(topology, "node1"), node_files(topology, "node2")
    assert "plugin.env" not in node1 and "plugin.env" in node2
    path = tmp_path / "agent.toml"
    path.write_text(node1["agent.toml"])
    config = load_config(str(path), {})
    assert config.docker_plugin_socket == "/run/docker/plugins/podnet.sock"
    assert (config.docker_gc_interval_s, config.docker_gc_grace_s, config.docker_plugin_log_level) == (5, 10, "debug")
    assert "docker_plugin_socket" not in tomllib.loads(node2["agent.toml"])


def test_the_netns_lab_gives_the_agent_the_same_plugin_settings_as_flags() -> None:
    from lab.model.cluster import in_agent_plugin_flags, in_agent_plugin_settings
    from podnet.cmd.agent import parse_args

    args = vars(parse_args(in_agent_plugin_flags()))
    assert {key: args[key] for key in in_agent_plugin_settings()} == in_agent_plugin_settings()


def test_a_vms_processes_in_one_ssh_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lab status` on a VM: enabled is a link in multi-user.target.wants, the state one `systemctl
    show` for every unit (as a VM answers it); a not-found or disabled unit is not listed."""
    import subprocess

    node = VagrantNode("node2", tmp_path / "node2", tmp_path / "ssh_config")
    answer = (
        "@@enabled docker.service podnet-agent.service podnet-docker.service podnet-underlay.service \n"
        "Id=docker.service\nActiveState=active\nSubState=running\nMainPID=612\nExecMainStatus=0\nResult=success\n\n"
        "Id=podnet-agent.service\nActiveState=activating\nSubState=auto-restart\nMainPID=0\n"
        "ExecMainStatus=1\nResult=exit-code\n\n"
        "Id=podnet-docker.service\nActiveState=failed\nSubState=failed\nMainPID=0\nExecMainStatus=2\n"
        "Result=exit-code\n\n"
        "Id=podnet-operator.service\nActiveState=inactive\nSubState=dead\nMainPID=0\nExecMainStatus=0\n"
        "Result=success\n\n"
        "Id=bird.service\nActiveState=inactive\nSubState=dead\nMainPID=0\nExecMainStatus=0\nResult=success\n\n"
        "Id=etcd.service\nActiveState=inactive\nSubState=dead\nMainPID=0\nExecMainStatus=0\nResult=success\n"
        "@@speaker 733 up\n"
    )
    calls: list[tuple[str, ...]] = []

    def cmd(*argv: str, **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, answer, "")

    monkeypatch.setattr(node, "cmd", cmd)
    states = node.processes()
    assert len(calls) == 1
    assert sorted(states) == ["bird", "dockerd", "podnet-agent", "podnet-docker"]
    assert states["dockerd"].running and states["dockerd"].pid == 612 and states["dockerd"].unit == "docker"
    assert states["podnet-agent"].detail == "restarting after exit-code (exit status 1)"
    assert not states["podnet-docker"].running and states["podnet-docker"].detail == "failed (exit-code, exit status 2)"
    assert states["bird"].running and states["bird"].pid == 733 and states["bird"].unit is None  # the agent's speaker
