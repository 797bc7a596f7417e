"""What the Vagrant backend stages for a fabric's VMs (lab/backends/vagrant/provision.py): a leaf's, a
spine's and a dual-homed node's files are what the netns backend sets in their namespaces (the same
lab/model code: underlay.plan, cluster.router_config, cluster.agent_settings), nothing lost."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest

from lab.backends.vagrant.placement import vagrant_plan
from lab.backends.vagrant.provision import StagingError, node_files
from lab.model import cluster, underlay
from lab.model.topology import Topology, load_topology
from podnet.agent.config import load_config

ROUTER_SYSCTLS = [
    "net.ipv4.ip_forward=1",
    "net.ipv4.fib_multipath_hash_policy=1",
    "net.ipv4.conf.all.ignore_routes_with_linkdown=1",
]


def commands(script: str) -> list[list[str]]:
    lines = script.splitlines()
    assert lines[0] == "set -e"
    return [shlex.split(line) for line in lines[1:]]


def test_a_leaf_gets_its_links_both_ways_its_sysctls_its_default_over_the_spines_and_its_bird() -> None:
    topology = load_topology("spine-leaf")
    leaf1 = node_files(topology, "leaf1")
    assert leaf1["role"] == "leaf\n" and leaf1["hostname"] == "leaf1\n"
    # down to its four dual-homed nodes and the control node (upper end: side 1), up to both spines (side 2)
    assert leaf1["links"].splitlines() == [
        "192.168.50.1/30 to-node1 52:54:00:51:00:00",
        "192.168.50.9/30 to-node2 52:54:00:51:00:02",
        "192.168.50.17/30 to-node3 52:54:00:51:00:04",
        "192.168.50.25/30 to-node4 52:54:00:51:00:06",
        "192.168.50.65/30 to-ctrl 52:54:00:51:00:10",
        "192.168.50.70/30 to-spine1 52:54:00:52:00:11",
        "192.168.50.74/30 to-spine2 52:54:00:52:00:12",
    ]
    assert leaf1["sysctl.conf"].splitlines()[:3] == ROUTER_SYSCTLS
    assert leaf1["sysctl.conf"].splitlines()[3].startswith("net.ipv4.fib_multipath_hash_seed=")
    assert commands(leaf1["underlay.sh"]) == [
        ["ip", "route", "replace", "default",
         "nexthop", "via", "192.168.50.69", "dev", "to-spine1", "nexthop", "via", "192.168.50.73", "dev", "to-spine2"],
    ]  # fmt: skip
    assert leaf1["bird.conf"] == cluster.router_config(topology, "leaf1")
    assert "local 192.168.50.70 as 65001;\n  neighbor 192.168.50.69 as 65000;" in leaf1["bird.conf"]
    assert "bfd on;" in leaf1["bird.conf"] and "merge paths on;" in leaf1["bird.conf"]
    assert not {"etcd.env", "agent.toml", "profile.sh", "gateway"} & set(leaf1)


def test_a_spine_gets_a_link_to_every_leaf_and_no_routes_of_its_own() -> None:
    topology = load_topology("spine-leaf")
    spine2 = node_files(topology, "spine2")
    assert spine2["role"] == "spine\n"
    assert spine2["links"].splitlines() == [
        f"192.168.50.{73 + 8 * i}/30 to-leaf{i + 1} 52:54:00:51:00:{0x12 + 2 * i:02x}" for i in range(4)
    ]
    assert spine2["sysctl.conf"].splitlines()[:3] == ROUTER_SYSCTLS
    assert "underlay.sh" not in spine2  # everything it routes it learns over BGP (its default is bird's only)
    assert spine2["bird.conf"] == cluster.router_config(topology, "spine2")
    assert "protocol static fabric_default" in spine2["bird.conf"]


def test_a_dual_homed_node_gets_two_uplinks_its_node_ip_on_lo_and_a_fallback_default_over_both() -> None:
    topology = load_topology("spine-leaf")
    node5 = node_files(topology, "node5")
    assert node5["role"] == "worker\n"
    assert node5["links"].splitlines() == [
        "192.168.50.34/30 to-leaf3 52:54:00:52:00:08",
        "192.168.50.38/30 to-leaf4 52:54:00:52:00:09",
    ]
    assert "gateway" not in node5  # no single uplink: its default comes over BGP, the fallback below
    assert node5["sysctl.conf"].splitlines()[:2] == ROUTER_SYSCTLS[1:]  # ECMP hashing, no forwarding
    assert commands(node5["underlay.sh"]) == [
        ["ip", "addr", "replace", "192.168.51.5/32", "dev", "lo"],
        ["ip", "route", "replace", "default", "metric", str(underlay.FALLBACK_METRIC),
         "nexthop", "via", "192.168.50.33", "dev", "to-leaf3", "nexthop", "via", "192.168.50.37", "dev", "to-leaf4"],
    ]  # fmt: skip
    # runtime cni: the agent only (no dockerd, no plugin, no image)
    assert node5["runtime"] == "cni\n" and "plugin.env" not in node5
    assert node5["registered_by"] == "ctrl\n"


def test_a_dual_homed_nodes_agent_toml_peers_with_both_leaves(tmp_path: Path) -> None:
    topology = load_topology("spine-leaf")
    path = tmp_path / "agent.toml"
    path.write_text(node_files(topology, "node5")["agent.toml"])
    config = load_config(str(path), {})
    assert config.node_name == "node5" and config.node_ip == "192.168.51.5"
    assert tomllib.loads(path.read_text())["bgp_peer"] == ["192.168.50.33", "192.168.50.37"]
    assert tomllib.loads(path.read_text())["bgp_peer_asn"] == [65003, 65004]
    assert config.store == "etcd://192.168.50.66:2379"


def test_the_control_node_of_a_fabric_serves_etcd_at_its_link_address() -> None:
    topology = load_topology("spine-leaf")
    ctrl = node_files(topology, "ctrl")
    assert ctrl["links"] == "192.168.50.66/30 uplink 52:54:00:52:00:10\n" and ctrl["gateway"] == "192.168.50.65\n"
    assert commands(ctrl["underlay.sh"]) == [["ip", "route", "replace", "default", "via", "192.168.50.65"]]
    assert "ETCD_ADVERTISE_CLIENT_URLS=http://192.168.50.66:2379" in ctrl["etcd.env"]
    assert ctrl["register"].splitlines()[4] == "node5 192.168.51.5"


@pytest.mark.parametrize("name", ["spine-leaf", "fabric-mini", "three-nodes"])
def test_every_vm_stages_all_the_netns_backend_sets_in_its_namespace(name: str) -> None:
    """Each command of lab/model/underlay.py's plan for a VM is in its staged files: a link's address
    and `up` in `links` (per NIC, by MAC), a sysctl in `sysctl.conf`, the rest in `underlay.sh`
    (made idempotent: add -> replace); and nothing else is there."""
    topology = load_topology(name)
    plan = underlay.plan(topology)
    for vm in [*(r.name for r in topology.routers()), *(n.name for n in topology.nodes)]:
        files = node_files(topology, vm)
        links = {line.split()[1]: line.split()[0] for line in files["links"].splitlines()}
        sysctls = files.get("sysctl.conf", "").splitlines()
        script = commands(files["underlay.sh"]) if "underlay.sh" in files else []
        expected_script = []
        for command in plan[vm]:
            if command[:3] == ["ip", "addr", "add"] and command[-1] in links:
                assert links[command[-1]] == command[3], (vm, command)
            elif command[:3] == ["ip", "link", "set"] and command[3] in links:
                assert command[4:] == ["up"]
            elif command[0] == "sysctl":
                assert command[2] in sysctls, (vm, command)
            else:
                expected_script.append([*command[:2], "replace", *command[3:]])
        assert script == expected_script, vm
        assert len(sysctls) == sum(c[0] == "sysctl" for c in plan[vm])
        assert len(links) == sum(c[:3] == ["ip", "link", "set"] for c in plan[vm])


def test_the_vms_links_are_the_plans_links() -> None:
    """The NICs provision.sh names and addresses are the ones the Vagrantfile makes (the plan it is
    compared with in tests/integration/test_vagrantfile.py): the same MAC, address and VM per end."""
    topology = load_topology("spine-leaf")
    ends = {
        (lk[side], lk[f"{side}_mac"], lk[f"{side}_ip"])
        for lk in vagrant_plan(topology)["links"]
        for side in ("upper", "lower")
    }
    staged = {
        (vm["name"], line.split()[2], line.split()[0].split("/")[0])
        for vm in vagrant_plan(topology)["vms"]
        for line in node_files(topology, vm["name"])["links"].splitlines()
    }
    assert staged == ends


def test_a_fabric_without_a_control_node_is_refused_naming_why() -> None:
    topology = Topology.model_validate(
        {
            "name": "noctl",
            "loopbacks": "192.168.51.0/24",
            "cluster_cidrs": ["10.9.0.0/16"],
            "mask_size": 24,
            "spines": [{"name": "s1"}],
            "leaves": [{"name": "l1"}, {"name": "l2"}],
            "nodes": [{"name": "a", "uplinks": ["l1", "l2"]}, {"name": "b", "uplinks": ["l2"]}],
        }
    )
    with pytest.raises(StagingError, match="a fabric on the Vagrant backend needs a node with role control"):
        node_files(topology, "a")
    assert node_files(topology, "l1")["role"] == "leaf\n"  # the routers themselves need no store
