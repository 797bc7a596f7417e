"""Endpoint records: one kvstore key per endpoint of this node.

A record is read ignoring fields it does not know (kept when written back). One
that cannot be read, or holds an address no pod may have, is quarantined: kept
as it is in the store, its veth (named after the id in its key) and its IP
never taken for leaks, its id refused for new endpoints until it is repaired
or deleted; `recheck` picks up either.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from pydantic import ValidationError

from podnet.agent.config import describe_validation_error
from podnet.agent.errors import NotFoundError
from podnet.api.models import Endpoint, EndpointLogEntry, EndpointState
from podnet.datapath.names import host_ifname
from podnet.errors import PodnetError, Reason
from podnet.kvstore import Entry, KVStore, keys
from podnet.kvstore.quarantine import Quarantine, UnreadableRecordError

MAX_LOG = 20


class EndpointNotFoundError(NotFoundError):
    pass


class EndpointExistsError(PodnetError):
    """An endpoint with this id, or one holding the IP asked for, exists."""

    reason = Reason.endpoint_exists


class EndpointQuarantinedError(PodnetError):
    """The endpoint's stored record cannot be read: it is kept, and not acted on."""

    reason = Reason.quarantined


class EndpointStore:
    def __init__(
        self,
        store: KVStore,
        node: str,
        quarantine: Quarantine | None = None,
        check_address: Callable[[str], object] | None = None,
    ):
        self.store = store
        self.node = node
        self.prefix = keys.endpoints(node)
        self.quarantine = quarantine if quarantine is not None else Quarantine()
        self.check_address = check_address  # raises ValueError for an address no pod may have
        self._cache: dict[str, Endpoint] = {}
        self._by_ifindex: dict[int, Endpoint] = {}  # host veth ifindex -> endpoint (monitor events name it)
        self._identities: Counter[int] = Counter()  # identity -> endpoints using it (no scan per delete)

    def _read(self, entry: Entry) -> Endpoint:
        try:
            endpoint = Endpoint.model_validate_json(entry.value)
        except ValidationError as err:
            raise UnreadableRecordError(describe_validation_error(err, "not an endpoint")) from None
        if endpoint.id != keys.last_component(entry.key):
            raise UnreadableRecordError(f"it is endpoint {endpoint.id!r}, under the key of another")
        if not endpoint.networking.addressing or not endpoint.networking.addressing[0].ipv4:
            raise UnreadableRecordError("it has no IPv4 address")
        if self.check_address is not None:
            try:
                self.check_address(endpoint.networking.addressing[0].ipv4)
            except ValueError as err:
                raise UnreadableRecordError(f"its address cannot be a pod's: {err}") from None
        return endpoint

    def load(self) -> list[Endpoint]:
        self._cache.clear()
        self._by_ifindex.clear()
        self._identities.clear()
        found: dict[str, str] = {}
        for entry in self.store.list_prefix(self.prefix):
            try:
                self._remember(self._read(entry))
            except UnreadableRecordError as err:
                found[entry.key] = str(err)
        self.quarantine.reset(self.prefix, found)
        return self.list()

    def recheck(self) -> list[Endpoint]:
        """Re-read quarantined records: a deleted one leaves the quarantine, a repaired one is loaded."""
        loaded = []
        for key in self.quarantine.keys(self.prefix):
            entry = self.store.get(key)
            if entry is None:
                self.quarantine.discard(key)
                continue
            try:
                endpoint = self._read(entry)
            except UnreadableRecordError as err:
                self.quarantine.add(key, str(err))
                continue
            self.quarantine.discard(key)
            self._remember(endpoint)
            loaded.append(endpoint)
        return loaded

    def quarantined_ids(self) -> list[str]:
        return [keys.last_component(k) for k in self.quarantine.keys(self.prefix)]

    def refuse_quarantined(self, endpoint_id: str) -> None:
        key = keys.endpoint(self.node, endpoint_id)
        reason = self.quarantine.reason(key)
        if reason is not None and endpoint_id not in self._cache:
            raise EndpointQuarantinedError(
                f"endpoint {endpoint_id}'s stored record {key} cannot be read ({reason}); it is kept as it is, "
                "with its veth and IP: repair or delete that key first"
            )

    def interface_names(self) -> set[str]:
        """Host veths that belong to an endpoint: the readable ones' and the quarantined ones'."""
        return {e.networking.interface_name for e in self._cache.values()} | {
            host_ifname(i) for i in self.quarantined_ids()
        }

    def list(self) -> list[Endpoint]:
        return sorted(self._cache.values(), key=lambda e: (e.created_at, e.id))

    def get(self, endpoint_id: str) -> Endpoint:
        try:
            return self._cache[endpoint_id]
        except KeyError:
            self.refuse_quarantined(endpoint_id)
            raise EndpointNotFoundError(f"endpoint {endpoint_id} not found") from None

    def find(self, endpoint_id: str) -> Endpoint | None:
        return self._cache.get(endpoint_id)

    def save(self, endpoint: Endpoint) -> None:
        self.store.put(*self.put_of(endpoint))
        self._remember(endpoint)

    def put_of(self, endpoint: Endpoint) -> tuple[str, str]:
        """(key, value) of `endpoint`'s record: for a transaction that writes more (`saved` after it)."""
        return keys.endpoint(self.node, endpoint.id), endpoint.model_dump_json(by_alias=True)

    def saved(self, endpoint: Endpoint) -> None:
        """`endpoint`'s record was written (in a transaction of the caller's)."""
        self._remember(endpoint)

    def key_of(self, endpoint_id: str) -> str:
        return keys.endpoint(self.node, endpoint_id)

    def remove(self, endpoint_id: str) -> None:
        self.store.delete(keys.endpoint(self.node, endpoint_id))
        self.removed(endpoint_id)

    def removed(self, endpoint_id: str) -> None:
        """The endpoint's record was deleted (by `remove`, or in a transaction of the caller's)."""
        gone = self._cache.pop(endpoint_id, None)
        if gone is not None:
            self._count(gone, -1)
            if self._by_ifindex.get(gone.networking.interface_index) is gone:
                del self._by_ifindex[gone.networking.interface_index]

    def _remember(self, endpoint: Endpoint) -> None:
        previous = self._cache.get(endpoint.id)
        if previous is not None:
            self._count(previous, -1)
        self._cache[endpoint.id] = endpoint
        self._count(endpoint, +1)
        self._by_ifindex[endpoint.networking.interface_index] = endpoint

    def _count(self, endpoint: Endpoint, delta: int) -> None:
        if endpoint.identity is not None:
            self._identities[endpoint.identity] += delta
            if self._identities[endpoint.identity] <= 0:
                del self._identities[endpoint.identity]

    def identities(self) -> set[int]:
        """The identities this node's (readable) endpoints use."""
        return set(self._identities)

    def by_interface_index(self, ifindex: int) -> Endpoint | None:
        return self._by_ifindex.get(ifindex)


def transition(endpoint: Endpoint, state: EndpointState, message: str) -> Endpoint:
    entry = EndpointLogEntry(timestamp=time.time(), state=state, message=message)
    return endpoint.model_copy(update={"state": state, "log": [*endpoint.log, entry][-MAX_LOG:]})
