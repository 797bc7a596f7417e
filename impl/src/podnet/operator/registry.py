"""Nodes and their pod CIDRs in the kvstore (Cilium's CiliumNode, as plain records).

Keys (podnet.kvstore.keys):

podnet/cluster/nodes/<name>   {"name", "node_ip", "registered_at"}   written by the node
podnet/cluster/status/<name>  {"name", "pod_cidrs", "condition"}      written by the operator

Fields a reader does not know are ignored; a record that cannot be read is
skipped with a warning (never a reason for the operator or an agent to stop).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from podnet.ipam import IPAMError, parse_address
from podnet.ipam.nodecidrs import validate_node_name
from podnet.kvstore import Entry, KVStore, keys

log = logging.getLogger("podnet.operator")
ALLOCATED = "PodCIDRAllocated"
T = TypeVar("T")


def _known(cls: type[T], data: Any) -> T:
    """`cls` from a stored JSON object, fields it does not know ignored (ValueError if unusable)."""
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object (a {type(data).__name__})")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as err:
        raise ValueError(str(err)) from None


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
    old: Registration | None = None
    if existing is not None:
        try:
            old = _known(Registration, json.loads(existing.value))
        except ValueError as err:
            log.warning("registration %s cannot be read (%s); writing it again", existing.key, err)
            old = None
    if old is not None:
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
    regs = []
    for entry in store.list_prefix(keys.CLUSTER_NODES):
        try:
            reg = _known(Registration, json.loads(entry.value))
            validate_node_name(reg.name)
            float(reg.registered_at)
        except (ValueError, IPAMError) as err:
            log.warning("node registration %s cannot be read, skipped: %s", entry.key, err)
            continue
        regs.append(reg)
    return sorted(regs, key=lambda r: (float(r.registered_at), r.name))


def write_status(store: KVStore, status: NodeStatus, stored: dict[str, bytes] | None = None) -> bool:
    """Write the node's status unless it is already so; whether it was written. `stored`: every status's
    stored value, as the caller listed them (no read per node); without it, the node's is read."""
    key = keys.cluster_status(status.name)
    value = json.dumps(asdict(status), sort_keys=True)
    if stored is not None:
        current = stored.get(status.name)
    else:
        entry = store.get(key)
        current = entry.value if entry is not None else None
    if current is None or current.decode(errors="replace") != value:
        store.put(key, value)
        return True
    return False


def node_status(store: KVStore, name: str) -> NodeStatus | None:
    entry = store.get(keys.cluster_status(name))
    return None if entry is None else _status(entry)


def _status(entry: Entry) -> NodeStatus | None:
    try:
        data = json.loads(entry.value)
        status = _known(NodeStatus, data)
        condition = _known(Condition, data["condition"]) if data.get("condition") else None
        if not isinstance(status.pod_cidrs, list):
            raise ValueError(f"pod_cidrs is {status.pod_cidrs!r}, not a list")
        return NodeStatus(str(status.name), [str(c) for c in status.pod_cidrs], condition)
    except (ValueError, KeyError, TypeError) as err:
        log.warning("node status %s cannot be read, taken as absent: %s", entry.key, err)
        return None


def stored_statuses(store: KVStore) -> dict[str, bytes]:
    """Every node's stored status record, as stored (one list, no read per node)."""
    return {keys.cluster_status_name(e.key): e.value for e in store.list_prefix(keys.CLUSTER_STATUS)}


def statuses(store: KVStore) -> dict[str, NodeStatus]:
    """Every readable node status (one list: the entries it returns are parsed, not read again)."""
    result = {}
    for entry in store.list_prefix(keys.CLUSTER_STATUS):
        status = _status(entry)
        if status is not None:
            result[keys.cluster_status_name(entry.key)] = status
    return result
