"""Security identities: one number per distinct set of labels, the same on every node.

Cilium's model: an endpoint's identity comes from its labels, not its IP, so
policy follows a workload wherever it runs. The kvstore holds two keys per
identity (see podnet.kvstore.keys), both written with create-if-absent so that
two nodes allocating for the same labels at once agree on one number:

    podnet/identities/labels/<id=app1;role=web>  ->  "256"
    podnet/identities/ids/256                    ->  '["id=app1", "role=web"]'

Numbers below 256 are reserved (see podnet.datapath.bpf.maps).
"""

from __future__ import annotations

import json

from podnet.errors import PodnetError
from podnet.kvstore import KVStore, keys

IDENTITY_ANY = 0  # a policy wildcard, never an endpoint's identity
IDENTITY_HOST = 1
IDENTITY_WORLD = 2
IDENTITY_INIT = 5  # an endpoint whose labels are not known yet
# The same numbers are in podnet/datapath/bpf/podnet.h.
RESERVED_IDENTITIES = {
    IDENTITY_HOST: ["reserved:host"],
    IDENTITY_WORLD: ["reserved:world"],
    IDENTITY_INIT: ["reserved:init"],
}
FIRST_IDENTITY = 256
# Per-pod labels a runtime passes along that say which pod, not what it is:
# an identity made from them would be one per pod, and no policy could select it.
NOT_SECURITY_RELEVANT = ("K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID")


class IdentityError(PodnetError):
    pass


def security_labels(labels: list[str]) -> list[str]:
    return sorted({label for label in labels if label.split("=", 1)[0] not in NOT_SECURITY_RELEVANT})


def labels_dict(labels: list[str]) -> dict[str, str]:
    pairs = (label.partition("=") for label in labels)
    return {key: value for key, _, value in pairs}


def _canonical(labels: list[str]) -> str:
    return ";".join(labels)


class IdentityAllocator:
    def __init__(self, store: KVStore):
        self.store = store
        self._known: dict[str, int] = {}  # an identity's number never changes: cache it

    def identity_for(self, labels: list[str]) -> int:
        """The identity of these labels (security-relevant ones only), allocated on first use."""
        wanted = security_labels(labels)
        key = keys.identity_by_labels(_canonical(wanted))
        if key in self._known:
            return self._known[key]
        for _ in range(100):
            held = self.store.get(key)
            if held is not None:
                self._known[key] = int(held.value)
                return self._known[key]
            number = self._next_free()
            if not self.store.create(keys.identity_by_id(number), json.dumps(wanted)):
                continue  # another node took that number: try the next
            if self.store.create(key, str(number)):
                self._known[key] = number
                return number
            self.store.delete(keys.identity_by_id(number))  # another node named these labels first
        raise IdentityError(f"could not allocate an identity for labels {wanted}: too much contention")

    def _next_free(self) -> int:
        used = [keys.identity_number(e.key) for e in self.store.list_prefix(keys.IDENTITY_IDS)]
        return max(used, default=FIRST_IDENTITY - 1) + 1

    def all(self) -> dict[int, list[str]]:
        """Every allocated identity and its labels."""
        found: dict[int, list[str]] = {}
        for entry in self.store.list_prefix(keys.IDENTITY_IDS):
            try:
                found[keys.identity_number(entry.key)] = list(json.loads(entry.value))
            except (ValueError, TypeError):
                continue
        return found
