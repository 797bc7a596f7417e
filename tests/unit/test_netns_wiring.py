"""The netns backend's underlay plan (lab.backends.netns.wiring): what each namespace runs, derived from
the topology — a one-ToR lab exactly as before fabrics, a spine-leaf lab with ECMP, port hashing and
dual-homed nodes' /32 on lo."""

from __future__ import annotations

from lab.backends.netns.wiring import FALLBACK_METRIC, plan, scripts, veth_batch, veth_pairs
from lab.model.topology import load_topology
from podnet.bgp.bird import KERNEL_METRIC


def test_one_tor_lab_is_wired_as_before_fabrics() -> None:
    steps = plan(load_topology("default"))
    assert steps["node1"] == [
        ["ip", "addr", "add", "192.168.50.2/30", "dev", "uplink"],
        ["ip", "link", "set", "uplink", "up"],
        ["ip", "route", "add", "default", "via", "192.168.50.1"],
    ]
    assert steps["tor"][:2] == [
        ["ip", "addr", "add", "192.168.50.1/30", "dev", "to-node1"],
        ["ip", "link", "set", "to-node1", "up"],
    ]
    assert steps["tor"][-1] == ["sysctl", "-qw", "net.ipv4.ip_forward=1"]
    assert not any("multipath" in " ".join(c) for c in steps["tor"])  # the ToR: forwarding only, no seed
    assert veth_pairs(load_topology("default"))[0] == ("node1", "uplink", "tor", "to-node1")


def test_spine_leaf_routers_hash_by_ports_and_skip_dead_links() -> None:
    topology = load_topology("spine-leaf")
    steps = plan(topology)
    for router in ("spine1", "spine2", "leaf1", "leaf4"):
        sysctls = [c[2] for c in steps[router] if c[0] == "sysctl"]
        assert sysctls[:3] == [
            "net.ipv4.ip_forward=1",
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv4.conf.all.ignore_routes_with_linkdown=1",
        ]
    # a seed of its own per chooser (else every hop takes the same index: polarization), none on old kernels
    seeds = {
        name: next(c[2] for c in steps[name] if "hash_seed" in " ".join(c))
        for name in ("spine1", "spine2", "leaf1", "leaf2", "node1", "node5")
    }
    assert len(set(seeds.values())) == len(seeds) and "hash_seed=0" not in " ".join(seeds.values())
    again = plan(topology)  # fixed per name: a rerun hashes as the last one did
    assert all(any(seeds[n] == c[2] for c in again[n]) for n in seeds)
    assert not any("hash_seed" in " ".join(c) for cs in plan(topology, seeds=False).values() for c in cs)
    # a leaf's default over both spines (traffic goes up at once after a power loss, before BGP)
    leaf1 = steps["leaf1"][-1]
    assert leaf1[:4] == ["ip", "route", "add", "default"] and leaf1.count("nexthop") == 2
    assert [leaf1[i + 1] for i, arg in enumerate(leaf1) if arg == "dev"] == ["to-spine1", "to-spine2"]
    assert not any(c[:4] == ["ip", "route", "add", "default"] for c in steps["spine1"])
    # every leaf to every spine; interface names from the topology
    pairs = veth_pairs(topology)
    assert ("leaf3", "to-spine2", "spine2", "to-leaf3") in pairs
    assert len([p for p in pairs if p[2].startswith("spine")]) == 8


def test_dual_homed_node_has_its_node_ip_on_lo_and_a_fallback_default_over_both_leaves() -> None:
    topology = load_topology("spine-leaf")
    steps = plan(topology)
    node5 = steps["node5"]
    assert ["ip", "addr", "add", f"{topology.node_ip('node5')}/32", "dev", "lo"] in node5
    leaf3, leaf4 = topology.uplinks("node5")
    assert node5[-1] == [
        "ip", "route", "add", "default", "metric", str(FALLBACK_METRIC),
        "nexthop", "via", leaf3.upper_ip, "dev", "to-leaf3",
        "nexthop", "via", leaf4.upper_ip, "dev", "to-leaf4",
    ]  # fmt: skip
    # the default its agent learns from the leaves (BGP, metric KERNEL_METRIC) wins while there is one:
    # the kernel takes the lowest metric, and the fallback only serves before BGP (or while bird restarts)
    assert KERNEL_METRIC < FALLBACK_METRIC
    assert ["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"] in node5
    # the control node is single-homed: one uplink, one default route, no lo address
    ctrl = steps["ctrl"]
    assert ctrl[-1] == ["ip", "route", "add", "default", "via", topology.link_of("ctrl").upper_ip]
    assert not any("lo" in c for c in ctrl)


def test_veth_pairs_are_one_ip_batch_made_inside_their_namespaces() -> None:
    """scale-64's 145 links: one `ip` process, each pair created straight in its two namespaces."""
    topology = load_topology("scale-64")
    netns = {
        name: f"pn-x-{name}" for name in [*(r.name for r in topology.routers()), *(n.name for n in topology.nodes)]
    }
    lines = veth_batch(topology, netns).splitlines()
    assert len(lines) == len(topology.links()) == 145
    assert lines[0] == "link add to-leaf1 netns pn-x-node1 type veth peer name to-node1 netns pn-x-leaf1"
    assert lines[-1] == "link add to-spine2 netns pn-x-leaf8 type veth peer name to-leaf8 netns pn-x-spine2"


def test_each_namespace_runs_its_plan_as_one_line_in_order() -> None:
    steps = plan(load_topology("default"))
    lines = scripts(steps)
    assert lines["node1"] == (
        "ip addr add 192.168.50.2/30 dev uplink && ip link set uplink up && ip route add default via 192.168.50.1"
    )
    assert set(lines) == {name for name, commands in steps.items() if commands}
