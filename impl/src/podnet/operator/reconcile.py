"""The operator's jobs: every registered node gets a pod CIDR, or a condition saying why not;
identities no endpoint in the cluster uses are collected.

On start the operator restores the node CIDRs already handed out (before any
new one), then reconciles whenever the store changes: nodes in registration
order get the first free CIDR of the first cluster CIDR that is not full; a
node that cannot get one carries `PodCIDRAllocated=False` with the pool's
exhaustion message; a node whose registration is gone has its CIDR released.
Every `identity_interval_s` it removes the identities no endpoint has used
for `identity_grace_s` (podnet.identity.collect).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from podnet.identity import DEFAULT_GRACE_S, Collection, IdentityCollector
from podnet.ipam import ClusterPool, ClusterPoolExhaustedError, DurableClusterPool
from podnet.kvstore import KVStore, keys
from podnet.operator.registry import (
    ALLOCATED,
    Condition,
    NodeStatus,
    registrations,
    stored_statuses,
    write_status,
)

log = logging.getLogger("podnet.operator")


@dataclass
class Outcome:
    allocated: dict[str, str] = field(default_factory=dict)
    released: dict[str, list[str]] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)


class Operator:
    def __init__(
        self,
        store: KVStore,
        pool: ClusterPool,
        *,
        identity_grace_s: float = DEFAULT_GRACE_S,
        identity_interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.identities = IdentityCollector(store, grace_s=identity_grace_s, clock=clock)
        self.identity_interval_s = identity_interval_s
        self.pool = DurableClusterPool(store, pool)  # restores existing allocations first
        for note in pool.notes:
            log.warning("cluster pool: %s", note)
        for orphan in self.pool.orphans:
            log.warning("node %s holds %s, outside every configured cluster CIDR; left as is", orphan.node, orphan.cidr)

    def reconcile(self) -> Outcome:
        outcome = Outcome()
        regs = registrations(self.store)
        registered = {r.name for r in regs}
        for node in sorted({nc.node for nc in self.pool.node_cidrs()} - registered):
            released = self.pool.release_node(node)
            self.store.delete(keys.cluster_status(node))
            outcome.released[node] = [str(c) for c in released]
            log.info("node %s is gone: released %s", node, ", ".join(map(str, released)))
        stored = stored_statuses(self.store)  # one list; each node's compared with it, not read again
        for name in set(stored) - registered:
            self.store.delete(keys.cluster_status(name))
        for reg in regs:
            try:
                cidr = self.pool.allocate(reg.name)
            except ClusterPoolExhaustedError as err:
                write_status(
                    self.store,
                    NodeStatus(reg.name, [], Condition(ALLOCATED, False, "ClusterPoolExhausted", str(err))),
                    stored,
                )
                outcome.waiting[reg.name] = str(err)
                continue
            cidrs = [str(c) for c in self.pool.cidrs_of(reg.name)]
            written = write_status(
                self.store,
                NodeStatus(
                    reg.name,
                    cidrs,
                    Condition(ALLOCATED, True, "Allocated", f"pod CIDR {cidr} from {self.pool.pool.parent_of(cidr)}"),
                ),
                stored,
            )
            if written:  # handed out (or changed) now: once per node, not every reconcile
                log.info("node %s: pod CIDR %s", reg.name, ", ".join(cidrs))
            outcome.allocated[reg.name] = str(cidr)
        return outcome

    def run(self, stop: Callable[[], bool], interval_s: float = 0.5) -> None:
        """Reconcile whenever the store's revision moves (and once at start); collect identities.

        The revision is read before reconciling, never after: a node registered while a reconcile
        runs moves it, so the next turn sees that node. The operator's own writes move it too, and
        cost one more reconcile, which writes nothing (a status is written only when it changes)."""
        seen = -1
        collect_due = 0.0
        while not stop():
            revision = self.store.revision()
            if revision != seen:
                seen = revision
                outcome = self.reconcile()
                for node, message in outcome.waiting.items():
                    log.warning("node %s has no pod CIDR: %s", node, message)
            if time.monotonic() >= collect_due:
                collect_due = time.monotonic() + self.identity_interval_s
                self.collect_identities()
            time.sleep(interval_s)

    def collect_identities(self) -> Collection:
        return self.identities.collect()
