"""The underlay's addressing, routes and sysctls per router and node, derived from the topology: what
every backend applies (the netns backend inside each namespace, lab/backends/netns/wiring.py; the
Vagrant backend in each VM, lab/backends/vagrant/provision.py). Pure data: `plan()`, per router and
node, the commands to run there, in order.

- A node with one uplink: a default route via its ToR or leaf (as before fabrics).
- A dual-homed node: its node IP a /32 on `lo`, and a fallback default route over both leaves (ECMP)
  at metric FALLBACK_METRIC. Its agent learns the default it uses over BGP from its leaves (metric
  32, a next hop per leaf whose session is up: a leaf that hangs with its links up is dropped when
  BFD ends its session); the fallback serves only while no leaf sends one — at boot, before the
  agent (which must reach etcd on the control node first) has its sessions up, and while its
  speaker restarts. Either way the kernel skips a path whose link lost its carrier
  (`ignore_routes_with_linkdown`): a leaf powered off costs no more than the carrier's loss.
- A fabric's router: forwarding on (the ToR: only that); ECMP hashed by ports (`fib_multipath_hash_policy=1`, so flows spread over
  equal paths rather than hosts); paths over a link without carrier skipped.
- A leaf: a default route over its spines (kernel, not BGP): a leaf back from a power loss gets
  its carriers, and the nodes' traffic, before BGP has taught it the other racks' routes; with
  the default it sends that traffic up at once instead of dropping it for seconds.
- Every namespace that chooses among equal paths hashes with a seed of its own
  (`fib_multipath_hash_seed`, Linux 6.11+; skipped on older kernels): with one seed everywhere
  every hop computes the same hash and takes the same index (polarization: a flow that takes
  the first leaf takes the first spine too, and half the fabric's paths are never used).
"""

from __future__ import annotations

import zlib

from lab.model.topology import Topology

Plan = dict[str, list[list[str]]]  # namespace (router or node name) -> commands run there, in order

ROUTER_SYSCTLS = (
    "net.ipv4.ip_forward=1",
    "net.ipv4.fib_multipath_hash_policy=1",
    "net.ipv4.conf.all.ignore_routes_with_linkdown=1",
)
MULTIHOMED_SYSCTLS = ROUTER_SYSCTLS[1:]
FALLBACK_METRIC = 1024  # a dual-homed node's static default: above the agent's BGP-learned one (32)


def hash_seed(name: str) -> int:
    """A namespace's own multipath hash seed: fixed per name (a run repeats), never 0 (0: the kernel's)."""
    return zlib.crc32(name.encode()) or 1


def plan(topology: Topology, *, seeds: bool = True) -> Plan:
    """What each namespace runs once its veth ends exist: addresses, links up, routes, sysctls (with
    `seeds`, each ECMP chooser's own hash seed)."""
    commands: Plan = {name: [] for name in [*(r.name for r in topology.routers()), *(n.name for n in topology.nodes)]}
    for link in topology.links():
        for name, ifname, ip in (
            (link.lower, link.lower_if, link.lower_ip),
            (link.upper, link.upper_if, link.upper_ip),
        ):
            commands[name] += [
                ["ip", "addr", "add", f"{ip}/{link.prefixlen}", "dev", ifname],
                ["ip", "link", "set", ifname, "up"],
            ]
    for router in topology.routers():  # a one-ToR lab's ToR: forwarding only, as before fabrics
        sysctls = ROUTER_SYSCTLS if topology.is_fabric() else ROUTER_SYSCTLS[:1]
        commands[router.name] += [["sysctl", "-qw", s] for s in sysctls]
        if seeds and topology.is_fabric():
            commands[router.name].append(
                ["sysctl", "-qw", f"net.ipv4.fib_multipath_hash_seed={hash_seed(router.name)}"]
            )
    for leaf in topology.leaves:
        ups = topology.uplinks(leaf.name)
        if ups:
            hops = [arg for link in ups for arg in ("nexthop", "via", link.upper_ip, "dev", link.lower_if)]
            commands[leaf.name].append(["ip", "route", "add", "default", *hops])
    for node in topology.nodes:
        uplinks = topology.uplinks(node.name)
        if len(uplinks) == 1:
            commands[node.name].append(["ip", "route", "add", "default", "via", uplinks[0].upper_ip])
            continue
        commands[node.name] += [["sysctl", "-qw", s] for s in MULTIHOMED_SYSCTLS]
        if seeds:
            commands[node.name].append(["sysctl", "-qw", f"net.ipv4.fib_multipath_hash_seed={hash_seed(node.name)}"])
        commands[node.name].append(["ip", "addr", "add", f"{topology.node_ip(node.name)}/32", "dev", "lo"])
        hops = [arg for link in uplinks for arg in ("nexthop", "via", link.upper_ip, "dev", link.lower_if)]
        commands[node.name].append(["ip", "route", "add", "default", "metric", str(FALLBACK_METRIC), *hops])
    return commands
