"""Cluster-wide identity collection: remove identities no endpoint has used for a grace period.

Run by podnet-operator; by every agent when the cluster has no operator
(`--ipam-mode local`). Several collectors at once are safe: each removal is one
conditional transaction.

An identity is kept while any endpoint record of the cluster carries it, while
any node's reference to it is marked in use, and for `grace_s` after the last
node marked its reference unused (an identity without references, as agents
of version 1 made them: `grace_s` after this collector first saw it unused).
The highest number is always kept: version-1 agents pick the highest + 1, and
must never pick a number that was used before. A removal deletes ``ids/<N>``,
its label-set keys (both versions) and its references together, only if
``ids/<N>`` and the label-set keys are unchanged since they were read, and no
reference to N and no endpoint record was written since.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from podnet.identity.labels import number_in_key, parse_number
from podnet.kvstore import Condition, Delete, Entry, KVStore, NothingNewer, Operation, Unchanged, keys

log = logging.getLogger("podnet.identity")
DEFAULT_GRACE_S = 600.0
PASSES = 3  # re-reads per collection when something changed under it


@dataclass
class Collection:
    collected: list[int] = field(default_factory=list)
    in_use: int = 0
    waiting: int = 0  # unused, within the grace period


@dataclass
class _Snapshot:
    revision: int
    identities: dict[int, Entry]
    refs: dict[int, list[Entry]]
    names: dict[int, list[Entry]]  # label-set keys (both versions) pointing at each number
    used: set[int]


class IdentityCollector:
    def __init__(self, store: KVStore, *, grace_s: float = DEFAULT_GRACE_S, clock: Callable[[], float] = time.time):
        self.store = store
        self.grace_s = grace_s
        self._now = clock
        self._unreferenced_since: dict[int, float] = {}

    def collect(self) -> Collection:
        result = Collection()
        for _ in range(PASSES):
            if self._pass(result):
                break
        if result.collected:
            log.info("collected %d unused identities: %s", len(result.collected), _ranges(result.collected))
        return result

    def _pass(self, result: Collection) -> bool:
        """One read of the store and the removals it allows; False when a removal lost to a writer."""
        now = self._now()
        snap = self._read()
        result.in_use = result.waiting = 0
        top = max(snap.identities, default=None)
        for gone in set(self._unreferenced_since) - set(snap.identities):
            del self._unreferenced_since[gone]
        for number, entry in sorted(snap.identities.items()):
            refs = snap.refs.get(number, [])
            marks = [_reference(r.value) for r in refs]
            if number == top or number in snap.used or any(in_use for in_use, _ in marks):
                self._unreferenced_since.pop(number, None)
                result.in_use += 1
                continue
            # References say since when (stored); without any (version 1), since this collector saw it unused.
            since = max(s for _, s in marks) if marks else self._unreferenced_since.setdefault(number, now)
            if now - since < self.grace_s:
                result.waiting += 1
                continue
            names = snap.names.get(number, [])
            conditions: list[Condition] = [
                Unchanged(entry.key, entry.mod_revision),
                NothingNewer(keys.identity_refs(number), snap.revision),
                NothingNewer(keys.NODES, snap.revision),
                *(Unchanged(n.key, n.mod_revision) for n in names),
            ]
            operations: list[Operation] = [Delete(entry.key), *(Delete(r.key) for r in refs)]
            operations += [Delete(n.key) for n in names]
            if not self.store.commit(conditions, operations):
                return False
            self._unreferenced_since.pop(number, None)
            result.collected.append(number)
        return True

    def _read(self) -> _Snapshot:
        revision = self.store.revision()  # before reading: anything written later is newer
        identities = {}
        for entry in self.store.list_prefix(keys.IDENTITY_IDS):
            number = number_in_key(keys.identity_number, entry.key)
            if number is not None:
                identities[number] = entry
        refs: dict[int, list[Entry]] = defaultdict(list)
        for entry in self.store.list_prefix(keys.IDENTITY_REFS):
            number = number_in_key(keys.identity_ref_number, entry.key)
            if number is not None:
                refs[number].append(entry)
        names: dict[int, list[Entry]] = defaultdict(list)
        for entry in [*self.store.list_prefix(keys.IDENTITY_LABELSETS), *self.store.list_prefix(keys.IDENTITY_LABELS)]:
            number = parse_number(entry.value)
            if number is not None:
                names[number].append(entry)
        used = set()
        for entry in self.store.list_prefix(keys.NODES):
            if keys.is_endpoint(entry.key) and (number := _endpoint_identity(entry.value)) is not None:
                used.add(number)
        return _Snapshot(revision, identities, refs, names, used)


def _reference(value: bytes) -> tuple[bool, float]:
    """(in use, since) of a node's reference; unreadable ones count as in use (never collect on doubt)."""
    try:
        data = json.loads(value)
        return bool(data["in_use"]), float(data["since"])
    except (ValueError, TypeError, KeyError):
        return True, 0.0


def _endpoint_identity(value: bytes) -> int | None:
    try:
        identity = json.loads(value).get("identity")
    except (ValueError, AttributeError):
        return None
    return identity if isinstance(identity, int) else None


def _ranges(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")
