"""This node's identities: names for maps and events, references held for its endpoints, collection.

The node holds a reference (podnet.identity) to every identity its endpoints
carry: taken when an endpoint gets the identity, released when the node's
last endpoint with it goes (relabel, delete) and checked by GC. Without an
operator (`ipam_mode` local) every agent also collects identities no endpoint
in the cluster has used for `identity_gc_grace_s`.
"""

from __future__ import annotations

import builtins
import logging
import time

from podnet.agent.config import AgentConfig
from podnet.agent.endpoints import EndpointStore
from podnet.api.models import Endpoint, Identity
from podnet.identity import (
    RESERVED_IDENTITIES,
    Collection,
    IdentityAllocator,
    IdentityCollector,
    IdentityError,
    UnreadableIdentityError,
)
from podnet.identity.labels import parse_number
from podnet.kvstore import KVStore, keys
from podnet.kvstore.quarantine import Quarantine

log = logging.getLogger("podnet.agent")


class IdentityNames:
    """Every identity's labels (reserved ones too), to name identities in maps and events;
    and the node's side of identity allocation and collection."""

    def __init__(self, config: AgentConfig, store: KVStore, quarantine: Quarantine | None = None):
        self.store = store
        self.quarantine = quarantine if quarantine is not None else Quarantine()
        self.allocator = IdentityAllocator(store, config.node_name)
        self.labels: dict[int, list[str]] = dict(RESERVED_IDENTITIES)
        # Without an operator, every agent collects (safe concurrently).
        self.collector = (
            IdentityCollector(store, grace_s=config.identity_gc_grace_s) if config.ipam_mode == "local" else None
        )
        self.collect_interval_s = config.identity_gc_interval_s
        self._collect_due = 0.0

    def of(self, identity: int) -> list[str]:
        return self.labels.get(identity, [])

    def refresh(self) -> dict[int, list[str]]:
        """Every allocated identity (from the store); also kept, with the reserved ones, to name them."""
        unreadable: dict[str, str] = {}
        known = self.allocator.all(unreadable.__setitem__)
        self.quarantine.reset(keys.IDENTITY_IDS, unreadable)
        for key in self.quarantine.keys(keys.IDENTITY_LABELSETS):  # repaired or deleted since?
            entry = self.store.get(key)
            if entry is None or parse_number(entry.value) is not None:
                self.quarantine.discard(key)
        self.labels = {**RESERVED_IDENTITIES, **known}
        return known

    def identity_for(self, labels: list[str]) -> int:
        try:
            return self.allocator.identity_for(labels)
        except UnreadableIdentityError as err:
            self.quarantine.add(err.key, "not an identity number")
            raise

    def list(self) -> list[Identity]:
        self.refresh()
        return [
            Identity(id=n, labels=labels, reserved=n in RESERVED_IDENTITIES)
            for n, labels in sorted(self.labels.items())
        ]

    # -- references and collection --------------------------------------------------------
    def release_unused(self, local: builtins.list[Endpoint] | set[int], *, stored: bool = False) -> None:
        """Give up the references no endpoint of this node needs any more (`local`: the node's
        endpoints, or the identities they use)."""
        in_use = local if isinstance(local, set) else {e.identity for e in local if e.identity is not None}
        self.allocator.release_unused(in_use, stored=stored)

    def restore(self, endpoints: EndpointStore) -> None:
        """After a restart: hold the endpoints' identities again (re-creating a collected one),
        resolve again one whose number names other labels (as version 1 gave a label
        set that collided with another), release the rest. An identity that cannot be
        resolved is logged and left as it is: it never stops the agent."""
        held: set[tuple[int, tuple[str, ...]]] = set()
        for endpoint in endpoints.list():
            if endpoint.identity is None or (endpoint.identity, tuple(endpoint.labels)) in held:
                continue
            try:
                if self.allocator.hold(endpoint.identity, endpoint.labels):
                    held.add((endpoint.identity, tuple(endpoint.labels)))
                    continue
                identity = self.allocator.identity_for(endpoint.labels)
            except IdentityError as err:
                log.error("endpoint %s: identity %s not restored: %s", endpoint.id, endpoint.identity, err)
                continue
            log.warning("endpoint %s: identity %s names other labels; now %s", endpoint.id, endpoint.identity, identity)
            endpoints.save(endpoint.model_copy(update={"identity": identity}))
        self.release_unused(endpoints.list(), stored=True)

    def gc(self, local: builtins.list[Endpoint]) -> Collection | None:
        """Periodic: release references left behind; collect when due (no operator)."""
        self.release_unused(local)
        if self.collector is None or time.monotonic() < self._collect_due:
            return None
        self._collect_due = time.monotonic() + self.collect_interval_s
        return self.collector.collect()
