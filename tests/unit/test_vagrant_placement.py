"""The multi-host plan (lab.backends.vagrant.placement): which VM on which libvirt URI, which tunnel ports,
what each host must accept — for a two-host placement, and one machine as today."""

from __future__ import annotations

import pytest

from lab.backends.vagrant.placement import (
    LOCAL,
    PlacementError,
    firewall,
    per_host,
    placement,
    tunnels,
)
from lab.model.topology import Topology, TopologyError, load_topology

TWO_HOSTS = {
    "name": "two-hosts",
    "cluster_cidrs": ["10.20.30.0/24"],
    "mask_size": 26,
    "hosts": [{"name": "far", "uri": "qemu+ssh://lab@10.0.0.2/system", "address": "10.0.0.2"}],
    "nodes": [
        {"name": "node1"},
        {"name": "node2", "host": "far"},
        {"name": "ctrl", "role": "control"},
    ],
}


def test_one_machine_every_vm_local_and_every_tunnel_on_the_loopback() -> None:
    topology = load_topology("three-nodes")
    assert set(placement(topology).values()) == {LOCAL}
    plan = tunnels(topology)
    assert [t.link for t in plan] == [0, 1, 2, 3]
    first = plan[0]
    assert (first.upper.vm, first.upper.interface, first.lower.vm, first.lower.interface) == (
        "tor", "to-node1", "node1", "uplink",
    )  # fmt: skip
    # each end listens on its own port and sends to the other's
    assert (first.upper.local_port, first.upper.remote_port) == (47000, 47001)
    assert (first.lower.local_port, first.lower.remote_port) == (47001, 47000)
    assert {t.upper.local_ip for t in plan} == {"127.0.0.1"} and not any(t.crosses_hosts for t in plan)
    assert first.upper.mac == "52:54:00:51:00:00" and first.lower.mac == "52:54:00:52:00:00"
    assert firewall(topology) == {} and all(t.guest_mtu == 1500 for t in plan)
    ports = [p for t in plan for p in (t.upper.local_port, t.lower.local_port)]
    assert len(ports) == len(set(ports))


def test_two_hosts_which_vm_where_which_ports_what_to_open() -> None:
    topology = Topology.model_validate(TWO_HOSTS)
    where = placement(topology)
    assert where["node2"].uri == "qemu+ssh://lab@10.0.0.2/system" and where["tor"] is LOCAL
    assert per_host(topology) == {"local": ["tor", "node1", "ctrl"], "far": ["node2"]}
    with pytest.raises(PlacementError, match=r"link 1 \(tor–node2\) crosses to another host: give this machine's"):
        tunnels(topology)
    plan = tunnels(topology, local_address="10.0.0.1")
    node2 = next(t for t in plan if t.lower.vm == "node2")
    assert node2.crosses_hosts and node2.guest_mtu == 1458
    # the ToR's end (here) sends to the far host; node2's end (there) back to this machine
    assert (node2.upper.local_ip, node2.upper.remote_ip, node2.upper.remote_port) == ("10.0.0.1", "10.0.0.2", 47003)
    assert (node2.lower.local_ip, node2.lower.remote_ip, node2.lower.remote_port) == ("10.0.0.2", "10.0.0.1", 47002)
    assert firewall(topology, local_address="10.0.0.1") == {
        "local": ["udp from 10.0.0.2 to port 47002"],
        "far": ["udp from 10.0.0.1 to port 47003"],
    }
    others = [t for t in plan if t.lower.vm != "node2"]
    assert not any(t.crosses_hosts for t in others)


def test_tunnel_ports_must_fit() -> None:
    with pytest.raises(PlacementError, match="do not fit"):
        tunnels(load_topology("default"), base=65533)


def test_a_node_on_an_unknown_host_names_the_field() -> None:
    bad = {**TWO_HOSTS, "nodes": [{"name": "node1", "host": "nowhere"}, {"name": "ctrl", "role": "control"}]}
    with pytest.raises(ValueError, match=r"nodes\.0\.host|no host 'nowhere' \(hosts: far\)"):
        Topology.model_validate(bad)
    assert TopologyError  # load_topology wraps the same error with the file's name


FABRIC_TWO_HOSTS = {
    "name": "fabric-two",
    "loopbacks": "192.168.51.0/24",
    "cluster_cidrs": ["10.20.30.0/24"],
    "mask_size": 26,
    "hosts": [{"name": "far", "uri": "qemu+ssh://lab@10.0.0.2/system", "address": "10.0.0.2"}],
    "spines": [{"name": "spine1"}],
    "leaves": [{"name": "leaf1"}, {"name": "leaf2", "host": "far"}],
    "nodes": [
        {"name": "node1", "uplinks": ["leaf1", "leaf2"]},
        {"name": "node2", "uplinks": ["leaf2"], "host": "far"},
        {"name": "ctrl", "role": "control", "uplinks": ["leaf1"]},
    ],
}


def test_a_fabric_plan_has_a_vm_per_router_and_a_nic_per_uplink() -> None:
    """vagrant_plan (what the Vagrantfile must dump): spines, leaves, then nodes; a dual-homed node
    is an end of two links (two NICs); a rack on another host crosses only where its links leave it."""
    from lab.backends.vagrant.placement import vagrant_plan

    topology = Topology.model_validate(FABRIC_TWO_HOSTS)
    plan = vagrant_plan(topology, local_address="10.0.0.1")
    assert [(vm["name"], vm["role"], vm["uri"].split("@")[-1]) for vm in plan["vms"]] == [
        ("spine1", "spine", "qemu:///system"),
        ("leaf1", "leaf", "qemu:///system"),
        ("leaf2", "leaf", "10.0.0.2/system"),
        ("node1", "worker", "qemu:///system"),
        ("node2", "worker", "10.0.0.2/system"),
        ("ctrl", "control", "qemu:///system"),
    ]
    node1 = [lk for lk in plan["links"] if "node1" in (lk["upper"], lk["lower"])]
    assert [(lk["upper"], lk["lower_ip"], lk["lower_mac"]) for lk in node1] == [
        ("leaf1", "192.168.50.2", "52:54:00:52:00:00"),
        ("leaf2", "192.168.50.6", "52:54:00:52:00:01"),
    ]
    crossing = [(lk["upper"], lk["lower"]) for lk in plan["links"] if lk["tunnel"]["mtu"] == 1458]
    assert crossing == [("leaf2", "node1"), ("spine1", "leaf2")]
    assert per_host(topology) == {"local": ["spine1", "leaf1", "node1", "ctrl"], "far": ["leaf2", "node2"]}
    assert firewall(topology, local_address="10.0.0.1") == {
        # link 1: leaf2 (far) listens on 47002, node1 (here) on 47003; link 5: spine1 (here) 47010, leaf2 47011
        "far": ["udp from 10.0.0.1 to port 47002", "udp from 10.0.0.1 to port 47011"],
        "local": ["udp from 10.0.0.2 to port 47003", "udp from 10.0.0.2 to port 47010"],
    }


def test_pods_fit_the_smallest_underlay_mtu_once_a_link_crosses_hosts() -> None:
    import tomllib

    from lab.backends.vagrant.placement import pod_mtu
    from lab.backends.vagrant.provision import node_files

    two = Topology.model_validate(TWO_HOSTS)
    assert pod_mtu(two) == 1458
    for worker in ("node1", "node2"):  # node1 stays here, yet its pods talk to node2's over the crossing link
        assert tomllib.loads(node_files(two, worker)["agent.toml"])["mtu"] == 1458
    one = load_topology("three-nodes")
    assert pod_mtu(one) is None
    assert "mtu" not in tomllib.loads(node_files(one, "node1")["agent.toml"])
