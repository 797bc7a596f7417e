"""Nodes and their pod CIDRs in the kvstore (Cilium's CiliumNode, as plain records).

Keys (podnet.kvstore.keys):

podnet/cluster/nodes/<name>   {"name", "node_ip", "registered_at"}   written by the node
podnet/cluster/status/<name>  {"name", "pod_cidrs", "condition"}      written by the operator
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from podnet.ipam import parse_address
from podnet.ipam.durable import validate_node_name
from podnet.kvstore import KVStore, keys

ALLOCATED = "PodCIDRAllocated"


@dataclass(frozen=True)
class Registration:
    name: str
    node_ip: str
    registered_at: float


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class NodeStatus:
    name: str
    pod_cidrs: list[str] = field(default_factory=list)
    condition: Condition | None = None


def register_node(store: KVStore, name: str, node_ip: str) -> Registration:
    """A node announces itself; idempotent (keeps the first registration time)."""
    validate_node_name(name)
    parse_address(node_ip, what="node IP")
    existing = store.get(keys.cluster_node(name))
    if existing is not None:
        old = Registration(**json.loads(existing.value))
        if old.node_ip == node_ip:
            return old
        registration = Registration(name, node_ip, old.registered_at)
    else:
        registration = Registration(name, node_ip, time.time())
    store.put(keys.cluster_node(name), json.dumps(asdict(registration)))
    return registration


def deregister_node(store: KVStore, name: str) -> bool:
    """The node is gone: the operator releases its pod CIDR."""
    return store.delete(keys.cluster_node(name))


def registrations(store: KVStore) -> list[Registration]:
    regs = [Registration(**json.loads(e.value)) for e in store.list_prefix(keys.CLUSTER_NODES)]
    return sorted(regs, key=lambda r: (r.registered_at, r.name))


def write_status(store: KVStore, status: NodeStatus) -> None:
    key = keys.cluster_status(status.name)
    value = json.dumps(asdict(status), sort_keys=True)
    current = store.get(key)
    if current is None or current.value.decode() != value:
        store.put(key, value)


def node_status(store: KVStore, name: str) -> NodeStatus | None:
    entry = store.get(keys.cluster_status(name))
    if entry is None:
        return None
    data = json.loads(entry.value)
    condition = Condition(**data["condition"]) if data.get("condition") else None
    return NodeStatus(data["name"], list(data.get("pod_cidrs", [])), condition)


def statuses(store: KVStore) -> dict[str, NodeStatus]:
    result = {}
    for entry in store.list_prefix(keys.CLUSTER_STATUS):
        name = keys.cluster_status_name(entry.key)
        status = node_status(store, name)
        if status is not None:
            result[name] = status
    return result
