"""The lab topology as plain data (YAML), validated, shared by every backend.

A topology is one ToR with its nodes (the default: `tor`, each node wired to
it), or a fabric: `spines` over `leaves`, each node wired to one or two
leaves (`uplinks`). Everything else is derived, not typed (fabric.py):

- links, in order: every node's uplinks (node order, then uplink order), then
  every leaf's link to every spine; link i is the /30 (or /31, `link_prefix`)
  number i of `underlay`, the upper end (ToR, leaf, spine) holding its first
  address, the lower end (node, leaf) the second. With one ToR, link i is node
  i's, exactly as before fabrics existed.
- interface names: the upper end's is `to-<lower>`; a node with one uplink
  calls it `uplink`, a node with two (and a leaf, upwards) `to-<upper>`.
- node IPs: a node's address on its only uplink; a dual-homed node's is a /32
  out of `loopbacks` (address 1 + its index), on its `lo`, announced to both leaves.
- AS numbers (RFC 7938), consecutive from `asn_base`: the spines share one, then
  each leaf (or the ToR) its own, then each node its own (in node order).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lab.model import fabric
from lab.model.fabric import Link, Router
from lab.model.files import FieldError, Strict, dotted, load_yaml_model
from podnet.ipam import ClusterPool, IPAMError

TOPOLOGIES = Path(__file__).resolve().parents[1] / "topologies"
DEFAULT = TOPOLOGIES / "default.yaml"
NAME = r"^[a-z][a-z0-9]{0,7}$"  # short: names end up inside 15-character interface names
TOR_ASN = 65000  # asn_base's default: the ToR's AS (or the spines'); node i of a one-ToR topology is 65001 + i
MAX_NODES = 128

__all__ = ["DEFAULT", "TOPOLOGIES", "Link", "Router", "Topology", "TopologyError", "load_topology"]


class TopologyError(ValueError):
    pass


class RouterSpec(Strict):
    name: str = Field(default="tor", pattern=NAME)
    host: str | None = Field(default=None, description="the libvirt host it runs on (a name under `hosts`)")


class NodeSpec(Strict):
    name: str = Field(pattern=NAME)
    role: Literal["control", "worker"] = "worker"
    cpus: int = Field(default=1, ge=1, le=16)
    memory_mib: int = Field(default=768, ge=256, le=16384)
    uplinks: list[str] = Field(
        default_factory=list,
        max_length=2,
        description="the leaves it is wired to, one or two (a fabric); with one ToR, the ToR (the default)",
    )
    runtime: Literal["docker", "cni"] = Field(
        default="docker", description="docker: dockerd + the libnetwork plugin + agent; cni: the agent and CNI only"
    )
    docker_plugin: Literal["agent", "process"] = Field(
        default="agent",
        description="runtime docker: where the libnetwork plugin runs. agent: podnet-agent serves its socket "
        "(--docker-plugin-socket; no podnet-docker process, its calls in the agent's log); process: podnet-docker, "
        "a process of its own calling the agent over its socket (what `process` faults on podnet-docker need)",
    )
    host: str | None = Field(default=None, description="the libvirt host it runs on (a name under `hosts`)")


class Bfd(Strict):
    """BFD on every node–leaf and leaf–spine BGP session (bird2's): a failure noticed in interval × multiplier."""

    interval_ms: int = Field(default=100, ge=10, le=10000)
    multiplier: int = Field(default=3, ge=2, le=255)


class BpfMaps(Strict):
    """Every agent's BPF map sizes (max entries; `events`: the ring buffer's bytes). Unset: the program's own
    (65536 endpoints, 65536 policy entries, 262144 ipcache entries, 1 MiB of events: ~40 MB per node)."""

    endpoints: int | None = Field(default=None, ge=16, le=1 << 20)
    policy: int | None = Field(default=None, ge=16, le=1 << 20)
    ipcache: int | None = Field(default=None, ge=16, le=1 << 22)
    counters: int | None = Field(default=None, ge=16, le=1 << 20)
    events: int | None = Field(default=None, ge=4096, le=1 << 26, description="bytes, a power of 2")

    @field_validator("events")
    @classmethod
    def _power_of_two(cls, value: int | None) -> int | None:
        if value is not None and value & (value - 1):
            raise ValueError(f"{value} is not a power of 2 (a ring buffer's size is)")
        return value


class HostSpec(Strict):
    """A libvirt host a lab may place VMs on (the Vagrant backend; see docs/multi-host.md)."""

    name: str = Field(pattern=NAME)
    uri: str = Field(
        pattern=r"^qemu(\+ssh|\+tcp|\+tls)?://[^\s]*/(system|session)$",
        description="libvirt URI, e.g. qemu+ssh://lab@10.0.0.2/system",
    )
    address: str = Field(description="the IPv4 address the other hosts reach it at (UDP tunnel endpoints)")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        ipaddress.IPv4Address(value)
        return value


class Topology(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    underlay: str = "192.168.50.0/24"
    link_prefix: Literal[30, 31] = Field(default=30, description="each link's prefix: /30 or /31 of the underlay")
    loopbacks: str | None = Field(
        default=None, description="where dual-homed nodes' /32 node IPs come from (node i: address 1 + i)"
    )
    cluster_cidrs: list[str] = Field(min_length=1)
    mask_size: int = Field(ge=1, le=32)
    asn_base: int = Field(default=TOR_ASN, description="the first AS number handed out (spines, leaves, nodes)")
    tor: RouterSpec = Field(default_factory=RouterSpec, description="the ToR of a topology without leaves")
    spines: list[RouterSpec] = Field(default_factory=list, max_length=8)
    leaves: list[RouterSpec] = Field(default_factory=list, max_length=32)
    nodes: list[NodeSpec] = Field(min_length=1, max_length=MAX_NODES)
    datapath: Literal["bpf", "routes"] = Field(
        default="bpf", description="every agent's datapath: bpf (tc programs, policy) or routes (per-pod /32 routes)"
    )
    bfd: Bfd | None = Field(default=None, description="BFD on node–leaf and leaf–spine sessions (none: hold timers)")
    bpf_maps: BpfMaps | None = None
    hosts: list[HostSpec] = Field(
        default_factory=list, max_length=16, description="libvirt hosts besides this machine (Vagrant backend)"
    )

    @field_validator("underlay")
    @classmethod
    def _underlay(cls, value: str) -> str:
        net = ipaddress.ip_network(value, strict=True)
        if net.version != 4 or net.prefixlen > 28:
            raise ValueError("must be an IPv4 network of at least /28")
        return value

    @field_validator("loopbacks")
    @classmethod
    def _loopbacks(cls, value: str | None) -> str | None:
        if value is not None:
            net = ipaddress.ip_network(value, strict=True)
            if net.version != 4 or net.prefixlen > 30:
                raise ValueError("must be an IPv4 network of at least /30")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        fabric.check_routers(self)
        names = [n.name for n in self.nodes] + [r.name for r in self.routers()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            what = "the ToR counts" if not self.is_fabric() else "spines and leaves count"
            raise ValueError(f"names must be unique ({what}): {', '.join(duplicates)} used twice")
        controls = [n.name for n in self.nodes if n.role == "control"]
        if len(controls) > 1:
            raise ValueError(f"at most one node can have role control, not {len(controls)} ({', '.join(controls)})")
        if len(controls) == len(self.nodes):
            raise ValueError("needs at least one node with role worker")
        fabric.check_uplinks(self)
        fabric.check_addressing(self)
        fabric.check_hosts(self)
        try:
            pool = ClusterPool(self.cluster_cidrs, self.mask_size)
        except IPAMError as err:
            raise ValueError(str(err)) from None
        reserved = [("underlay", ipaddress.ip_network(self.underlay))]
        if self.loopbacks:
            reserved.append(("loopbacks", ipaddress.ip_network(self.loopbacks)))
        for cidr in pool.sets:
            for field, net in reserved:
                if cidr.cluster_cidr.overlaps(net):
                    raise FieldError(("cluster_cidrs",), f"cluster CIDR {cidr.cluster_cidr} overlaps the {field} {net}")
        return self

    # -- roles ---------------------------------------------------------------------
    def control(self) -> NodeSpec | None:
        """The node running etcd and podnet-operator; without one, agents share an SQLite store."""
        return next((n for n in self.nodes if n.role == "control"), None)

    def workers(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "worker"]

    def spec(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)

    def is_fabric(self) -> bool:
        """Spines and leaves (rather than one ToR)."""
        return bool(self.leaves or self.spines)

    def routers(self) -> list[Router]:
        """Spines, then leaves; or the one ToR."""
        return fabric.routers(self)

    def router(self, name: str) -> Router:
        return next(r for r in self.routers() if r.name == name)

    def role(self, name: str) -> Literal["tor", "leaf", "spine", "control", "worker"]:
        """tor, leaf, spine, control or worker."""
        for router in self.routers():
            if router.name == name:
                return router.tier
        return next(n.role for n in self.nodes if n.name == name)

    # -- derived addressing --------------------------------------------------------
    def links(self) -> list[Link]:
        """Every link: the nodes' uplinks, then the leaves' links to the spines."""
        return fabric.links(self)

    def link(self, index: int) -> Link:
        return self.links()[index]

    def uplinks(self, name: str) -> list[Link]:
        """A node's links to its ToR or leaves (a leaf's: to the spines)."""
        return [link for link in self.links() if link.lower == name]

    def downlinks(self, name: str) -> list[Link]:
        """A router's links to what is below it."""
        return [link for link in self.links() if link.upper == name]

    def link_of(self, name: str) -> Link:
        """A node's (first) uplink."""
        return self.uplinks(name)[0]

    def multi_homed(self, name: str) -> bool:
        return len(self.uplinks(name)) > 1

    def node_ip(self, name: str) -> str:
        """What the node is known by (BGP next hop, registration, etcd): its address on its only
        uplink, or, dual-homed, its /32 out of `loopbacks`."""
        return fabric.node_ip(self, name)

    def asn(self, name: str) -> int:
        """The AS of a router or node."""
        return fabric.asn(self, name)

    def next_hops(self, router: str, node: str) -> set[str]:
        """Where a converged router sends a worker's pod CIDR (every equal path): to the node itself
        (its ToR, its leaves), to every spine (other leaves), to the node's leaves (a spine)."""
        return fabric.next_hops(self, router, node)

    def bgp_sessions(self, router: str) -> list[tuple[Link, str]]:
        """A router's BGP sessions, as (link, the peer's name): its workers below, its spines above
        (the control node speaks no BGP)."""
        workers = {w.name for w in self.workers()}
        down = [(link, link.lower) for link in self.downlinks(router) if link.lower in workers or link.lower_is_router]
        return down + [(link, link.upper) for link in self.uplinks(router)]


def load_topology(path: str | Path | None = None) -> Topology:
    """Read and validate a topology file; errors name the file, the field and the problem."""
    source = Path(path) if path else DEFAULT
    if not source.exists() and not Path(str(path)).suffix and (TOPOLOGIES / f"{path}.yaml").exists():
        source = TOPOLOGIES / f"{path}.yaml"
    return load_yaml_model(source, Topology, TopologyError, "topology", dotted)
