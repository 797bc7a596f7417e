"""scale-64 (64 CNI workers on a spine-leaf) and the smaller labs bench/scale.py derives from it:
the model accepts them, 64 distinct pod CIDRs, names, links, racks, AS numbers, round trips."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lab.model import cluster, scale
from lab.model.topology import TopologyError, load_topology
from podnet.agent.config import load_config
from podnet.ipam import ClusterPool


def test_scale_64_is_64_cni_workers_and_a_control_node_on_a_spine_leaf() -> None:
    topo = load_topology("scale-64")
    workers = topo.workers()
    assert [w.name for w in workers] == [f"node{i}" for i in range(1, 65)]
    assert {w.runtime for w in workers} == {"cni"}
    control = topo.control()
    assert control is not None and control.name == "ctrl"
    assert [link.upper for link in topo.uplinks("ctrl")] == ["leaf1"]
    assert [s.name for s in topo.spines] == ["spine1", "spine2"]
    assert [leaf.name for leaf in topo.leaves] == [f"leaf{i}" for i in range(1, 9)]
    assert topo.bpf_maps is not None and topo.bpf_maps.endpoints is not None and topo.bpf_maps.endpoints <= 256


def test_scale_64_cluster_pool_hands_out_64_distinct_pod_cidrs() -> None:
    topo = load_topology("scale-64")
    pool = ClusterPool(topo.cluster_cidrs, topo.mask_size)
    assert pool.capacity >= len(topo.workers()) == 64
    cidrs = [pool.allocate() for _ in topo.workers()]
    assert len(set(cidrs)) == 64
    assert all(not a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])
    underlay = ipaddress.ip_network(topo.underlay)
    assert not any(c.overlaps(underlay) for c in cidrs)
    # 10 pods a node, the bench's load, fit each CIDR
    assert all(c.num_addresses - 2 >= 10 for c in cidrs)


def test_scale_64_racks_links_and_interface_names() -> None:
    topo = load_topology("scale-64")
    links = topo.links()
    assert len(links) == 64 * 2 + 1 + 8 * 2  # dual-homed workers, the control node's one, leaf–spine
    assert len({link.subnet for link in links}) == len(links)
    underlay = ipaddress.ip_network(topo.underlay)
    assert all(ipaddress.ip_network(link.subnet).subnet_of(underlay) for link in links)  # type: ignore[arg-type]
    for i in range(1, 65):
        rack = (i - 1) // 16
        assert [link.upper for link in topo.uplinks(f"node{i}")] == [f"leaf{2 * rack + 1}", f"leaf{2 * rack + 2}"]
        assert topo.multi_homed(f"node{i}")
    for leaf in topo.leaves:
        assert [link.upper for link in topo.uplinks(leaf.name)] == ["spine1", "spine2"]
    names = [n for link in links for n in (link.upper_if, link.lower_if)]
    assert max(len(n) for n in names) <= 15  # Linux's IFNAMSIZ - 1
    node_ips = [topo.node_ip(w.name) for w in topo.workers()]
    assert len(set(node_ips)) == 64


def test_scale_64_as_numbers_per_rfc_7938() -> None:
    topo = load_topology("scale-64")
    assert {topo.asn(s.name) for s in topo.spines} == {65000}
    leaves = [topo.asn(leaf.name) for leaf in topo.leaves]
    nodes = [topo.asn(n.name) for n in topo.nodes]
    assert leaves == list(range(65001, 65009))
    assert len(set(nodes)) == len(nodes) and min(nodes) == 65009 and max(nodes) <= 65534


def test_scale_64_agents_take_their_settings() -> None:
    """Every worker's agent flags (two BGP peers, small maps, operator IPAM) are a valid agent config."""
    topo = load_topology("scale-64")
    settings = cluster.agent_settings(topo, "node64", "etcd://192.168.50.1:2379")
    assert settings["bgp_peer"] == [link.upper_ip for link in topo.uplinks("node64")]
    assert settings["bpf_map_entries"]["endpoints"] == topo.bpf_maps.endpoints  # type: ignore[union-attr]
    assert settings["ipam_mode"] == "operator"
    config = load_config(None, dict(settings))
    assert config.bpf_map_entries == settings["bpf_map_entries"]


@pytest.mark.parametrize(("workers", "leaves"), [(8, 2), (16, 2), (32, 4), (64, 8)])
def test_derived_labs_keep_the_shape_and_fill_racks_in_order(workers: int, leaves: int) -> None:
    base = load_topology("scale-64")
    topo = scale.derive(base, workers)
    assert topo.name == f"scale-{workers}"
    assert [w.name for w in topo.workers()] == [f"node{i}" for i in range(1, workers + 1)]
    assert [leaf.name for leaf in topo.leaves] == [f"leaf{i}" for i in range(1, leaves + 1)]
    assert topo.spines == base.spines
    assert topo.control() == base.control()
    for field in ("underlay", "loopbacks", "cluster_cidrs", "mask_size", "bpf_maps", "bfd", "datapath"):
        assert getattr(topo, field) == getattr(base, field)
    # the same node keeps its node IP, AS and (within its rack) its uplinks
    assert topo.node_ip("node8") == base.node_ip("node8")
    assert topo.asn("node1") == base.asn("node1") - (8 - leaves)  # fewer leaves before the nodes' ASes
    assert len(topo.links()) == workers * 2 + 1 + leaves * 2


def test_derived_64_is_scale_64_itself() -> None:
    base = load_topology("scale-64")
    assert scale.derive(base, 64) == base


def test_derived_lab_written_and_read_back(tmp_path: Path) -> None:
    topo = scale.derive(load_topology("scale-64"), 16)
    path = scale.write(topo, tmp_path)
    assert path.name == "scale-16.yaml"
    assert load_topology(path) == topo


@pytest.mark.parametrize("workers", [0, 65, -1])
def test_derive_refuses_counts_it_does_not_have(workers: int) -> None:
    with pytest.raises(TopologyError, match=r"scale-64: cannot derive -?\d+ workers \(it has 1 to 64\)"):
        scale.derive(load_topology("scale-64"), workers)


def test_derive_names_another_topology_by_count() -> None:
    topo = scale.derive(load_topology("spine-leaf"), 4)
    assert topo.name == "spine-leaf-w4"
    assert [leaf.name for leaf in topo.leaves] == ["leaf1", "leaf2"]


def test_agents_starting_together_get_time_for_each_other() -> None:
    """64 agents start at once on 2 cores: a flat 30 s failed scale-64's bring-up once (an agent
    serving, its healthz not yet answering the lab); one agent alone keeps the 30 s it always had."""
    from lab.backends.netns.lab import agent_start_timeout

    assert agent_start_timeout(1) == 30.0
    assert agent_start_timeout(2) == 30.5
    assert agent_start_timeout(64) >= 60.0
