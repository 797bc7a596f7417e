"""Docker networks, recorded for the docker plugin (which keeps no state of its own)."""

from __future__ import annotations

from podnet.agent.errors import NotFoundError
from podnet.api.models import DockerNetwork
from podnet.kvstore import KVStore, keys


class DockerNetworks:
    def __init__(self, store: KVStore, node: str):
        self.store = store
        self.node = node

    def put(self, network: DockerNetwork) -> DockerNetwork:
        self.store.put(keys.docker_network(self.node, network.id), network.model_dump_json(by_alias=True))
        return network

    def list(self) -> list[DockerNetwork]:
        prefix = keys.docker_networks(self.node)
        return [DockerNetwork.model_validate_json(e.value) for e in self.store.list_prefix(prefix)]

    def delete(self, network_id: str) -> None:
        if not self.store.delete(keys.docker_network(self.node, network_id)):
            raise NotFoundError(f"docker network {network_id} not found")
