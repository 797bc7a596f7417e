"""Endpoint records: one kvstore key per endpoint of this node."""

from __future__ import annotations

import time

from pydantic import ValidationError

from podnet.agent.errors import NotFoundError
from podnet.api.models import Endpoint, EndpointLogEntry, EndpointState
from podnet.errors import PodnetError, Reason
from podnet.kvstore import KVStore, keys

MAX_LOG = 20


class EndpointNotFoundError(NotFoundError):
    pass


class EndpointExistsError(PodnetError):
    """An endpoint with this id, or one holding the IP asked for, exists."""

    reason = Reason.endpoint_exists


class EndpointStore:
    def __init__(self, store: KVStore, node: str):
        self.store = store
        self.node = node
        self.prefix = keys.endpoints(node)
        self._cache: dict[str, Endpoint] = {}
        self._by_ifindex: dict[int, Endpoint] = {}  # host veth ifindex -> endpoint (monitor events name it)
        self.corrupt: list[str] = []

    def load(self) -> list[Endpoint]:
        self._cache.clear()
        self._by_ifindex.clear()
        self.corrupt = []
        for entry in self.store.list_prefix(self.prefix):
            try:
                endpoint = Endpoint.model_validate_json(entry.value)
            except ValidationError:
                self.corrupt.append(entry.key)
                continue
            self._remember(endpoint)
        return self.list()

    def list(self) -> list[Endpoint]:
        return sorted(self._cache.values(), key=lambda e: (e.created_at, e.id))

    def get(self, endpoint_id: str) -> Endpoint:
        try:
            return self._cache[endpoint_id]
        except KeyError:
            raise EndpointNotFoundError(f"endpoint {endpoint_id} not found") from None

    def find(self, endpoint_id: str) -> Endpoint | None:
        return self._cache.get(endpoint_id)

    def save(self, endpoint: Endpoint) -> None:
        self.store.put(keys.endpoint(self.node, endpoint.id), endpoint.model_dump_json(by_alias=True))
        self._remember(endpoint)

    def remove(self, endpoint_id: str) -> None:
        self.store.delete(keys.endpoint(self.node, endpoint_id))
        gone = self._cache.pop(endpoint_id, None)
        if gone is not None and self._by_ifindex.get(gone.networking.interface_index) is gone:
            del self._by_ifindex[gone.networking.interface_index]

    def _remember(self, endpoint: Endpoint) -> None:
        self._cache[endpoint.id] = endpoint
        self._by_ifindex[endpoint.networking.interface_index] = endpoint

    def by_interface_index(self, ifindex: int) -> Endpoint | None:
        return self._by_ifindex.get(ifindex)


def transition(endpoint: Endpoint, state: EndpointState, message: str) -> Endpoint:
    entry = EndpointLogEntry(timestamp=time.time(), state=state, message=message)
    return endpoint.model_copy(update={"state": state, "log": [*endpoint.log, entry][-MAX_LOG:]})
