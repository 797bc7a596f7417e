"""`podnet ipam plan`: which node gets which pod CIDR, before any node exists.

Runs the operator's real allocation code (`ClusterPool`) on an empty pool, so
the plan is exactly what the operator would hand out to nodes registering in
this order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from podnet.ipam.allocator import MAX_ADDRESSES, pod_ip_capacity
from podnet.ipam.cidr import Network
from podnet.ipam.clusterpool import ClusterPool
from podnet.ipam.errors import ClusterPoolExhaustedError


@dataclass
class NodePlan:
    node: str
    pod_cidr: Network | None
    cluster_cidr: Network | None
    pod_ips: int
    reason: str | None = None


@dataclass
class Plan:
    pool: ClusterPool
    nodes: list[NodePlan] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        notes = list(self.pool.notes)
        if any(n.pod_cidr is not None and n.pod_cidr.num_addresses > MAX_ADDRESSES + 2 for n in self.nodes):
            notes.append(f"pod CIDRs larger than {MAX_ADDRESSES} addresses use only their first {MAX_ADDRESSES}")
        return notes

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster_cidrs": [
                {"given": p.given, "network": str(s.cluster_cidr), "node_cidrs": s.capacity}
                for p, s in zip(self.pool.parsed, self.pool.sets, strict=True)
            ],
            "mask_size": self.pool.mask_size,
            "notes": self.notes,
            "capacity": self.pool.capacity,
            "nodes": [
                {
                    "node": n.node,
                    "pod_cidr": None if n.pod_cidr is None else str(n.pod_cidr),
                    "cluster_cidr": None if n.cluster_cidr is None else str(n.cluster_cidr),
                    "pod_ips": n.pod_ips,
                    "reason": n.reason,
                }
                for n in self.nodes
            ],
        }


def make_plan(cluster_cidrs: Sequence[str], mask_size: int, nodes: Sequence[str]) -> Plan:
    pool = ClusterPool(cluster_cidrs, mask_size)
    plan = Plan(pool)
    for node in nodes:
        try:
            cidr = pool.allocate()
        except ClusterPoolExhaustedError as err:
            plan.nodes.append(NodePlan(node, None, None, 0, str(err)))
            continue
        parent = pool.parent_of(cidr)
        plan.nodes.append(NodePlan(node, cidr, parent, pod_ip_capacity(cidr)))
    return plan
