"""Where a Vagrant lab's VMs run, and how their underlay links cross machines (docs/multi-host.md).

Pure data, derived from the topology: every VM (router or node) is placed on a libvirt host — the one
it names under the topology's `hosts`, or this machine (`LOCAL`) — and every underlay link becomes a
pair of QEMU UDP sockets, one per end (vagrant-libvirt's `tunnel_type: udp`): each end sends to the
other end's host address and port and listens on its own. The ports are derived, not allocated: link
*i*'s upper end listens on `base + 2i`, its lower end on `base + 2i + 1`, so every host computes the
same plan and no two links share a port on any host.

The Vagrantfile derives the same plan (`vagrant_plan()`: its LAB_VAGRANT_DUMP output is compared with
this one in tests/integration/test_vagrantfile.py): one VM per router (the ToR, or a fabric's spines and
leaves) and per node, and per link its two NICs, each one end of the link's tunnel (a dual-homed node
has two).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.model.topology import Topology

TUNNEL_PORT_BASE = 47000
MAX_PORT = 65535
LOCAL_URI = "qemu:///system"
LOCAL_ADDRESS = "127.0.0.1"  # a link with both ends here: its tunnel stays on the loopback
ETHERNET_HEADER = 14
UDP_IPV4_OVERHEAD = 28  # the outer IPv4 and UDP headers of a tunnelled frame
HOST_MTU = 1500
CROSSING_OVERHEAD = UDP_IPV4_OVERHEAD + ETHERNET_HEADER  # what a tunnelled frame adds on the host network
ROUTER_CPUS = 1  # a router VM (ToR, spine, leaf) runs bird only (and etcd on a ToR without a control node)
ROUTER_MEMORY_MIB = 512


@dataclass(frozen=True)
class Host:
    name: str  # "local": this machine
    uri: str
    address: str


LOCAL = Host("local", LOCAL_URI, LOCAL_ADDRESS)


@dataclass(frozen=True)
class TunnelEnd:
    vm: str
    interface: str  # its name in the guest (the netns backend's: uplink, to-<peer>)
    mac: str
    local_ip: str  # where this end's QEMU listens
    local_port: int
    remote_ip: str  # where it sends: the other end's host
    remote_port: int


@dataclass(frozen=True)
class Tunnel:
    link: int
    upper: TunnelEnd
    lower: TunnelEnd
    crosses_hosts: bool

    @property
    def guest_mtu(self) -> int:
        """The underlay MTU the guests must use so a tunnelled frame fits the host network unfragmented
        (a link inside one machine runs over the loopback: no limit below 1500)."""
        if not self.crosses_hosts:
            return HOST_MTU
        return HOST_MTU - CROSSING_OVERHEAD


class PlacementError(ValueError):
    pass


def hosts(topology: Topology) -> dict[str, Host]:
    """Every host a VM may run on: this machine and the topology's `hosts`."""
    return {"local": LOCAL, **{h.name: Host(h.name, h.uri, h.address) for h in topology.hosts}}


def placement(topology: Topology) -> dict[str, Host]:
    """VM name -> the host it runs on (its `host`, or this machine), routers first."""
    known = hosts(topology)
    named: dict[str, str | None] = {}
    if topology.is_fabric():
        named |= {r.name: r.host for r in [*topology.spines, *topology.leaves]}
    else:
        named[topology.tor.name] = topology.tor.host
    named |= {n.name: n.host for n in topology.nodes}
    return {vm: known[host or "local"] for vm, host in named.items()}


def pod_mtu(topology: Topology) -> int | None:
    """The pods' MTU when a link crosses hosts: the smallest underlay MTU, for every pod of the lab
    (a pod's packets to any other node may cross it; a smaller MTU than the path's would be dropped
    there or need ICMP's help). None when the lab sits on one machine (the agent's default)."""
    where = placement(topology)
    if all(where[link.upper] == where[link.lower] for link in topology.links()):
        return None
    return HOST_MTU - CROSSING_OVERHEAD


def mac(link: int, side: int) -> str:
    """As provision.link_mac: side 1 the upper end, 2 the lower end (provision.sh finds the NIC by it)."""
    return f"52:54:00:{0x50 + side:02x}:{link >> 8:02x}:{link & 0xFF:02x}"


def tunnels(topology: Topology, base: int = TUNNEL_PORT_BASE, local_address: str | None = None) -> list[Tunnel]:
    """Every underlay link as a UDP tunnel pair; a link whose two ends sit on one host stays on it. A link
    crossing from this machine needs `local_address`: where the other hosts reach this one."""
    where = placement(topology)
    found = []
    links = topology.links()
    if base < 1024 or base + 2 * len(links) - 1 > MAX_PORT:
        raise PlacementError(f"tunnel ports {base}–{base + 2 * len(links) - 1} do not fit in 1024–{MAX_PORT}")
    for link in links:
        up, low = where[link.upper], where[link.lower]
        crosses = up != low
        if crosses and LOCAL in (up, low) and local_address is None:
            raise PlacementError(
                f"link {link.index} ({link.upper}–{link.lower}) crosses to another host: give this machine's "
                "address, where the other hosts reach it (LAB_LOCAL_ADDRESS)"
            )

        def address(host: Host) -> str:
            return (local_address or LOCAL_ADDRESS) if host == LOCAL else host.address

        # One machine: both ends on the loopback. Across machines: each host's own address.
        up_ip, low_ip = (address(up), address(low)) if crosses else (LOCAL_ADDRESS, LOCAL_ADDRESS)
        up_port, low_port = base + 2 * link.index, base + 2 * link.index + 1
        found.append(
            Tunnel(
                link.index,
                TunnelEnd(link.upper, link.upper_if, mac(link.index, 1), up_ip, up_port, low_ip, low_port),
                TunnelEnd(link.lower, link.lower_if, mac(link.index, 2), low_ip, low_port, up_ip, up_port),
                crosses,
            )
        )
    return found


def firewall(
    topology: Topology, base: int = TUNNEL_PORT_BASE, local_address: str | None = None
) -> dict[str, list[str]]:
    """Per host: what it must accept from the other hosts (UDP to its tunnel ports), as
    `udp from <address> to port <n>` lines; a host with nothing crossing to it needs nothing."""
    rules: dict[str, list[str]] = {}
    where = placement(topology)
    for tunnel in tunnels(topology, base, local_address):
        if not tunnel.crosses_hosts:
            continue
        for end, other in ((tunnel.upper, tunnel.lower), (tunnel.lower, tunnel.upper)):
            rules.setdefault(where[end.vm].name, []).append(f"udp from {other.local_ip} to port {end.local_port}")
    return rules


def per_host(topology: Topology) -> dict[str, list[str]]:
    """Host name -> the VMs on it (what `lab down` destroys through that host's URI)."""
    found: dict[str, list[str]] = {}
    for vm, host in placement(topology).items():
        found.setdefault(host.name, []).append(vm)
    return found


def vagrant_plan(topology: Topology, local_address: str | None = None) -> dict[str, Any]:
    """What the Vagrantfile builds, as it dumps it (LAB_VAGRANT_DUMP=1): every VM (routers first, then
    the nodes, in topology order) with its size and libvirt URI, and every link with its two ends'
    addresses and MACs, its tunnel's ports and addresses, and the guests' MTU on it."""
    where = placement(topology)
    sizes = {n.name: (n.cpus, n.memory_mib) for n in topology.nodes}
    vms = [
        {
            "name": vm,
            "role": topology.role(vm),
            "cpus": sizes.get(vm, (ROUTER_CPUS, ROUTER_MEMORY_MIB))[0],
            "memory_mib": sizes.get(vm, (ROUTER_CPUS, ROUTER_MEMORY_MIB))[1],
            "uri": host.uri,
        }
        for vm, host in where.items()
    ]

    def end(e: TunnelEnd) -> dict[str, Any]:
        return {
            "local_ip": e.local_ip,
            "local_port": e.local_port,
            "remote_ip": e.remote_ip,
            "remote_port": e.remote_port,
        }

    links = [
        {
            "link": link.index,
            "upper": link.upper,
            "lower": link.lower,
            "subnet": link.subnet,
            "upper_ip": link.upper_ip,
            "lower_ip": link.lower_ip,
            "upper_mac": tunnel.upper.mac,
            "lower_mac": tunnel.lower.mac,
            "tunnel": {"upper": end(tunnel.upper), "lower": end(tunnel.lower), "mtu": tunnel.guest_mtu},
        }
        for link, tunnel in zip(topology.links(), tunnels(topology, local_address=local_address), strict=True)
    ]
    return {"topology": topology.name, "datapath": topology.datapath, "vms": vms, "links": links}
