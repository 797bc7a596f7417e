"""The lab topology as plain data (YAML), validated, shared by every backend.

Addresses are derived, not typed: link i (the i-th node, from 0) is the /30
number i of `underlay`; the ToR holds its first address, the node the second.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lab.model.files import Strict, dotted, load_yaml_model
from podnet.ipam import ClusterPool, IPAMError

TOPOLOGIES = Path(__file__).resolve().parents[1] / "topologies"
DEFAULT = TOPOLOGIES / "default.yaml"
NAME = r"^[a-z][a-z0-9]{0,7}$"  # short: names end up inside 15-character interface names
TOR_ASN = 65000  # the ToR's AS; node i (from 0) is AS 65001 + i


class TopologyError(ValueError):
    pass


class RouterSpec(Strict):
    name: str = Field(default="tor", pattern=NAME)


class NodeSpec(Strict):
    name: str = Field(pattern=NAME)
    role: Literal["control", "worker"] = "worker"
    cpus: int = Field(default=1, ge=1, le=16)
    memory_mib: int = Field(default=768, ge=256, le=16384)


class Topology(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    underlay: str = "192.168.50.0/24"
    cluster_cidrs: list[str] = Field(min_length=1)
    mask_size: int = Field(ge=1, le=32)
    tor: RouterSpec = Field(default_factory=RouterSpec)
    nodes: list[NodeSpec] = Field(min_length=1, max_length=32)
    datapath: Literal["bpf", "routes"] = Field(
        default="bpf", description="every agent's datapath: bpf (tc programs, policy) or routes (per-pod /32 routes)"
    )

    @field_validator("underlay")
    @classmethod
    def _underlay(cls, value: str) -> str:
        net = ipaddress.ip_network(value, strict=True)
        if net.version != 4 or net.prefixlen > 28:
            raise ValueError("must be an IPv4 network of at least /28")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        names = [n.name for n in self.nodes] + [self.tor.name]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"names must be unique (the ToR counts): {', '.join(duplicates)} used twice")
        controls = [n.name for n in self.nodes if n.role == "control"]
        if len(controls) > 1:
            raise ValueError(f"at most one node can have role control, not {len(controls)} ({', '.join(controls)})")
        if len(controls) == len(self.nodes):
            raise ValueError("needs at least one node with role worker")
        links = ipaddress.ip_network(self.underlay).num_addresses // 4
        if len(self.nodes) > links:
            raise ValueError(
                f"underlay {self.underlay} has room for {links} node links (/30 each), not {len(self.nodes)}"
            )
        try:
            pool = ClusterPool(self.cluster_cidrs, self.mask_size)
        except IPAMError as err:
            raise ValueError(str(err)) from None
        underlay = ipaddress.ip_network(self.underlay)
        for cidr in pool.sets:
            if cidr.cluster_cidr.overlaps(underlay):
                raise ValueError(f"cluster CIDR {cidr.cluster_cidr} overlaps the underlay {self.underlay}")
        return self

    # -- roles ---------------------------------------------------------------------
    def control(self) -> NodeSpec | None:
        """The node running etcd and podnet-operator; without one, agents share an SQLite store."""
        return next((n for n in self.nodes if n.role == "control"), None)

    def workers(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "worker"]

    # -- derived addressing --------------------------------------------------------
    def link(self, index: int) -> Link:
        base = ipaddress.ip_network(self.underlay).network_address + 4 * index
        return Link(index, self.nodes[index].name, f"{base + 1}", f"{base + 2}", f"{base}/30")

    def links(self) -> list[Link]:
        return [self.link(i) for i in range(len(self.nodes))]

    def node_ip(self, name: str) -> str:
        return self.link_of(name).node_ip

    def link_of(self, name: str) -> Link:
        return next(link for link in self.links() if link.node == name)

    def role(self, name: str) -> Literal["tor", "control", "worker"]:
        """tor, control or worker."""
        if name == self.tor.name:
            return "tor"
        return next(n.role for n in self.nodes if n.name == name)

    @staticmethod
    def node_asn(index: int) -> int:
        return TOR_ASN + 1 + index


@dataclass(frozen=True)
class Link:
    index: int
    node: str
    tor_ip: str
    node_ip: str
    subnet: str


def load_topology(path: str | Path | None = None) -> Topology:
    """Read and validate a topology file; errors name the file, the field and the problem."""
    source = Path(path) if path else DEFAULT
    if not source.exists() and not Path(str(path)).suffix and (TOPOLOGIES / f"{path}.yaml").exists():
        source = TOPOLOGIES / f"{path}.yaml"
    return load_yaml_model(source, Topology, TopologyError, "topology", dotted)
