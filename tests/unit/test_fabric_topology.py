"""Fabric topologies as data: derived links for dual-homed nodes and tiers, AS numbering (RFC 7938),
node IPs, the agent's and routers' settings, and bad files refused naming file and field."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.model import cluster
from lab.model.topology import Topology, TopologyError, load_topology
from podnet.agent.config import load_config

FABRIC = """\
name: f
underlay: 10.1.0.0/24
loopbacks: 10.2.0.0/24
cluster_cidrs: [10.20.0.0/16]
mask_size: 24
spines: [{name: s1}, {name: s2}]
leaves: [{name: l1}, {name: l2}]
nodes:
  - {name: a, uplinks: [l1, l2]}
  - {name: b, uplinks: [l2]}
  - {name: c, role: control, uplinks: [l1]}
"""


def fabric(tmp_path: Path, text: str = FABRIC) -> Topology:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    return load_topology(path)


def test_dual_homed_node_gets_a_link_per_leaf_and_a_loopback_node_ip(tmp_path: Path) -> None:
    topo = fabric(tmp_path)
    a = topo.uplinks("a")
    assert [(link.upper, link.upper_if, link.upper_ip, link.lower_if, link.lower_ip) for link in a] == [
        ("l1", "to-a", "10.1.0.1", "to-l1", "10.1.0.2"),
        ("l2", "to-a", "10.1.0.5", "to-l2", "10.1.0.6"),
    ]
    assert topo.multi_homed("a") and topo.node_ip("a") == "10.2.0.1"  # loopbacks + 1 + its index
    # single-homed nodes keep the one-ToR names and their link address as node IP
    assert [(x.lower_if, x.lower_ip) for x in topo.uplinks("b")] == [("uplink", "10.1.0.10")]
    assert topo.node_ip("b") == "10.1.0.10" and topo.node_ip("c") == "10.1.0.14"


def test_leaf_spine_links_come_after_the_node_links(tmp_path: Path) -> None:
    topo = fabric(tmp_path)
    tiers = [(x.index, x.upper, x.lower, x.lower_if, x.subnet) for x in topo.links() if x.lower_is_router]
    assert tiers == [
        (4, "s1", "l1", "to-s1", "10.1.0.16/30"),
        (5, "s2", "l1", "to-s2", "10.1.0.20/30"),
        (6, "s1", "l2", "to-s1", "10.1.0.24/30"),
        (7, "s2", "l2", "to-s2", "10.1.0.28/30"),
    ]
    assert [x.lower for x in topo.downlinks("l1")] == ["a", "c"] and [x.upper for x in topo.uplinks("l1")] == [
        "s1",
        "s2",
    ]


def test_slash_31_links(tmp_path: Path) -> None:
    topo = fabric(tmp_path, FABRIC.replace("underlay: 10.1.0.0/24", "underlay: 10.1.0.0/24\nlink_prefix: 31"))
    assert [(x.upper_ip, x.lower_ip, x.subnet) for x in topo.links()[:3]] == [
        ("10.1.0.0", "10.1.0.1", "10.1.0.0/31"),
        ("10.1.0.2", "10.1.0.3", "10.1.0.2/31"),
        ("10.1.0.4", "10.1.0.5", "10.1.0.4/31"),
    ]


def test_as_numbers_spines_share_one_leaves_and_nodes_each_their_own(tmp_path: Path) -> None:
    topo = fabric(tmp_path)
    assert {r.name: (r.tier, r.asn) for r in topo.routers()} == {
        "s1": ("spine", 65000),
        "s2": ("spine", 65000),
        "l1": ("leaf", 65001),
        "l2": ("leaf", 65002),
    }
    assert [topo.asn(n) for n in ("a", "b", "c")] == [65003, 65004, 65005]
    one_tor = load_topology("default")  # as before fabrics: the ToR 65000, node i 65001 + i
    assert [one_tor.asn(n) for n in ("tor", "node1", "node2", "ctrl")] == [65000, 65001, 65002, 65003]
    private4 = fabric(tmp_path, FABRIC + "asn_base: 4200000000\n")
    assert private4.asn("s2") == 4200000000 and private4.asn("c") == 4200000005


def test_bgp_sessions_workers_below_spines_above_never_the_control_node(tmp_path: Path) -> None:
    topo = fabric(tmp_path)
    assert [peer for _, peer in topo.bgp_sessions("l1")] == ["a", "s1", "s2"]
    assert [peer for _, peer in topo.bgp_sessions("s1")] == ["l1", "l2"]
    conf = cluster.router_config(topo, "l1")
    assert 'protocol direct { ipv4; interface "to-*"; }' in conf  # the control node's link reaches the fabric
    assert "merge paths on;" in conf and "protocol bgp c " not in conf


def sessions(conf: str) -> dict[str, str]:
    """A bird.conf's BGP sessions: peer name -> its block."""
    blocks = conf.split("protocol bgp ")[1:]
    return {block.split()[0]: block.split("\n}")[0] for block in blocks}


def test_spines_default_reaches_dual_homed_nodes_through_their_leaves_only(tmp_path: Path) -> None:
    """A hung leaf is left by its dual-homed nodes: they learn their default from each leaf over BGP
    (BFD ends the session), the leaf passing on the spines' default; single-homed nodes learn nothing."""
    topo = fabric(tmp_path)
    spine = cluster.router_config(topo, "s1")
    assert "protocol static fabric_default { ipv4; route 0.0.0.0/0 blackhole; }" in spine
    assert "export where source = RTS_BGP; };" in spine  # the spine's own kernel: learned routes only
    assert all('proto = "fabric_default"' in block for block in sessions(spine).values())
    leaf = cluster.router_config(topo, "l2")
    assert "export where source = RTS_BGP && net != 0.0.0.0/0; };" in leaf  # its kernel keeps the lab's default
    down = sessions(leaf)
    assert "export where source = RTS_BGP && net = 0.0.0.0/0;" in down["a"]  # dual-homed: the default
    assert "export none;" in down["b"]  # single-homed: nothing, as before fabrics
    assert all("&& net != 0.0.0.0/0;" in down[s] for s in ("s1", "s2"))  # never back up
    assert cluster.agent_settings(topo, "a", "etcd://x:1")["bgp_import_default"] is True
    assert "bgp_import_default" not in cluster.agent_settings(topo, "b", "etcd://x:1")


def test_dual_homed_agent_settings_load_as_two_peers(tmp_path: Path) -> None:
    topo = fabric(tmp_path, FABRIC + "bfd: {interval_ms: 200}\nbpf_maps: {endpoints: 256, events: 65536}\n")
    settings = cluster.agent_settings(topo, "a", "etcd://10.1.0.14:2379")
    toml = tmp_path / "agent.toml"
    toml.write_text(cluster.as_toml({"node_name": "a", **settings}))
    config = load_config(str(toml), {})
    assert config.node_ip == "10.2.0.1" and config.bgp_asn == 65003 and config.bgp_announce_node_ip
    assert config.bgp_import_default
    assert config.bgp_peers() == [("10.1.0.1", 65001), ("10.1.0.5", 65002)]
    assert config.bgp_bfd_interval_ms == 200 and config.bgp_bfd_multiplier == 3
    assert config.bpf_map_entries == {"endpoints": 256, "events": 65536}
    flags = cluster.as_flags(settings)
    assert flags.count("--bgp-peer") == 2 and "--bgp-announce-node-ip" in flags
    assert flags[flags.index("--bpf-map-entries") + 1] == "endpoints=256"


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 not installed")
@pytest.mark.parametrize("name", ["default", "spine-leaf"])
def test_every_router_config_parses_with_bird(tmp_path: Path, name: str) -> None:
    topo = load_topology(name)
    for router in topo.routers():
        conf = tmp_path / f"{router.name}.conf"
        conf.write_text(cluster.router_config(topo, router.name))
        check = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
        assert check.returncode == 0, f"{router.name}: {check.stderr}"


def test_shipped_spine_leaf_is_the_issues_shape() -> None:
    topo = load_topology("spine-leaf")
    assert [r.tier for r in topo.routers()] == ["spine"] * 2 + ["leaf"] * 4
    pairs = {n.name: tuple(n.uplinks) for n in topo.workers()}
    assert len(pairs) == 8 and all(len(p) == 2 for p in pairs.values())
    assert sorted(set(pairs.values())) == [("leaf1", "leaf2"), ("leaf3", "leaf4")]
    assert [p for p in pairs.values()].count(("leaf1", "leaf2")) == 4
    control = topo.control()
    assert control is not None and len(control.uplinks) == 1 and topo.bfd is not None


HEAD = "name: x\ncluster_cidrs: [10.20.0.0/16]\nmask_size: 24\n"
SL = HEAD + "loopbacks: 10.3.0.0/24\nspines: [{name: s1}]\nleaves: [{name: l1}, {name: l2}]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEAD + "spines: [{name: s1}]\nnodes: [{name: a}]\n", "spines: spines need leaves"),
        (HEAD + "leaves: [{name: l1}, {name: l2}]\nnodes: [{name: a}]\n", "leaves: two or more leaves need spines"),
        (SL + "nodes: [{name: a}]\n", "nodes.0.uplinks: in a fabric each node names its leaf or two leaves"),
        (SL + "nodes: [{name: a, uplinks: [l1, l9]}]\n", "nodes.0.uplinks.1: no leaf 'l9' (leaves: l1, l2)"),
        (SL + "nodes: [{name: a, uplinks: [l1, l1]}]\n", "nodes.0.uplinks: l1 twice"),
        (SL + "nodes: [{name: a, uplinks: [l1, l2, s1]}]\n", "nodes.0.uplinks: List should have at most 2 items"),
        (
            SL.replace("loopbacks: 10.3.0.0/24\n", "") + "nodes: [{name: a, uplinks: [l1, l2]}]\n",
            "nodes.0.uplinks: a node with two uplinks needs `loopbacks`",
        ),
        (HEAD + "nodes: [{name: a, uplinks: [l1]}]\n", "nodes.0.uplinks: with one ToR a node's only uplink is the ToR"),
        (SL + "tor: {name: top}\nnodes: [{name: a, uplinks: [l1]}]\n", "tor: a fabric has no single ToR"),
        (SL + "nodes: [{name: l1, uplinks: [l1]}]\n", "names must be unique (spines and leaves count): l1"),
        (
            SL + "underlay: 10.9.0.0/28\nnodes: [{name: a, uplinks: [l1, l2]}, {name: b, uplinks: [l2]}]\n",
            "underlay: 10.9.0.0/28 has room for 4 links (/30 each), not 5",
        ),
        (SL + "loopbacks: 192.168.50.0/25\nnodes: [{name: a, uplinks: [l1]}]\n", "loopbacks: 192.168.50.0/25 overlaps"),
        (
            SL.replace("10.3.0.0/24", "10.20.9.0/24") + "nodes: [{name: a, uplinks: [l1]}]\n",
            "cluster_cidrs: cluster CIDR 10.20.0.0/16 overlaps the loopbacks 10.20.9.0/24",
        ),
        (SL + "link_prefix: 29\nnodes: [{name: a, uplinks: [l1]}]\n", "link_prefix: Input should be 30 or 31"),
        (SL + "asn_base: 100\nnodes: [{name: a, uplinks: [l1]}]\n", "asn_base: must be a private AS number"),
        (
            SL + "asn_base: 65533\nnodes: [{name: a, uplinks: [l1]}]\n",
            "asn_base: AS numbers 65533–65536 run past 65534",
        ),
        (SL + "bfd: {interval_ms: 5}\nnodes: [{name: a, uplinks: [l1]}]\n", "bfd.interval_ms: Input should be greater"),
        (
            SL + "bpf_maps: {events: 5000}\nnodes: [{name: a, uplinks: [l1]}]\n",
            "bpf_maps.events: 5000 is not a power of 2",
        ),
        (
            SL + "bpf_maps: {endpoint: 5}\nnodes: [{name: a, uplinks: [l1]}]\n",
            "bpf_maps.endpoint: unknown field; did you mean endpoints?",
        ),
        (
            SL + "nodes: [{name: a, uplinks: [l1], runtime: podman}]\n",
            "nodes.0.runtime: Input should be 'docker' or 'cni'",
        ),
        (SL + "nodes: [{name: a, uplink: [l1]}]\n", "nodes.0.uplink: unknown field; did you mean uplinks?"),
    ],
)
def test_bad_fabrics_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), str(err.value)
