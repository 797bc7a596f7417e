"""What dockerd never tells a remote driver, learned from dockerd's own API.

- Labels: libnetwork does not pass container labels to the driver. After Join,
  podnet asks dockerd which container holds the endpoint and records its id,
  name and labels on the agent's endpoint (waiting-for-identity → ready), as
  Cilium's docker watcher does. What that missed (the agent or this plugin was
  down, dockerd slow) is completed by the periodic reconcile: every endpoint
  still without its container or identity is looked up again, so it is ready
  within one `--gc-interval` of the agent being back.
- Garbage: dockerd ignores errors from Leave/DeleteEndpoint/DeleteNetwork and
  never replays them after a restart. Periodically, endpoints and networks the
  agent holds but dockerd no longer knows are deleted (after a grace period,
  so endpoints being set up right now are left alone), releasing their IPs.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from podnet.api.client import AgentError
from podnet.docker.calls import AgentCalls
from podnet.errors import PodnetError, Reason

if TYPE_CHECKING:
    import docker

log = logging.getLogger("podnet.docker.reconcile")


@functools.cache
def dockerd_errors() -> tuple[type[Exception], tuple[type[Exception], ...]]:
    """(the SDK's NotFound, what talking to dockerd can raise: the SDK's own errors, and requests'
    when dockerd is not there at all — its socket gone while it restarts — which the SDK does not
    wrap). The docker SDK and requests (~0.15 s) are imported here, on first need, not at the
    plugin's start: podnet-docker serves dockerd before it ever asks dockerd anything."""
    import requests
    from docker.errors import DockerException, NotFound

    return NotFound, (DockerException, requests.RequestException)


class DockerWatcher:
    def __init__(self, agent: AgentCalls, docker_host: str, *, grace_s: float = 60.0):
        self.agent = agent
        self.docker_host = docker_host
        self.grace_s = grace_s
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            import docker

            self._client = docker.DockerClient(base_url=self.docker_host, timeout=10)
        return self._client

    def _container_of(self, network_id: str, endpoint_id: str) -> str | None:
        # The container list carries each container's endpoint ids; unlike a
        # network inspect it makes dockerd call no driver back.
        for container in self.client.api.containers(all=True, filters={"network": network_id}):
            for net in ((container.get("NetworkSettings") or {}).get("Networks") or {}).values():
                if net.get("EndpointID") == endpoint_id:
                    return str(container["Id"])
        return None

    def _endpoint_exists(self, endpoint_id: str) -> bool:
        try:
            self.agent.endpoint_get(endpoint_id)
        except AgentError as err:
            if err.reason == Reason.not_found:
                return False
            raise
        return True

    def _record(self, endpoint_id: str, container_id: str, sandbox_key: str | None) -> None:
        """The container's id, name and labels (and sandbox key) on the agent's endpoint."""
        info = self.client.api.inspect_container(container_id)
        labels = (info.get("Config") or {}).get("Labels") or {}
        sandbox_key = sandbox_key or (info.get("NetworkSettings") or {}).get("SandboxKey") or None
        self.agent.endpoint_patch(
            endpoint_id,
            {
                "container-id": container_id,
                "container-name": str(info.get("Name", "")).lstrip("/"),
                "labels": [f"{k}={v}" if v else k for k, v in sorted(labels.items())],
                **({"sandbox-key": sandbox_key} if sandbox_key else {}),
            },
        )

    def resolve_labels(
        self, network_id: str, endpoint_id: str, sandbox_key: str | None = None, *, timeout_s: float = 15.0
    ) -> bool:
        """Record the container behind an endpoint on the agent; True when found.

        False when it could not be now (the periodic `complete_endpoints` tries again)."""
        not_found, dockerd_down = dockerd_errors()
        failed: tuple[type[Exception], ...] = (*dockerd_down, PodnetError)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.25)  # the container finishes starting after Join
            try:
                if not self._endpoint_exists(endpoint_id):
                    return False  # a short-lived container already left
                container_id = self._container_of(network_id, endpoint_id)
                if container_id:
                    self._record(endpoint_id, container_id, sandbox_key)
                    return True
            except not_found:
                return False
            except failed as err:
                log.warning("resolving the container of endpoint %s: %s", endpoint_id[:12], err)
                return False
        return False

    def reconcile(self) -> dict[str, list[str]]:
        """Periodic: complete endpoints that missed their container, then collect garbage."""
        completed = self.complete_endpoints()
        return {"completed": completed, **self.collect_garbage()}

    def complete_endpoints(self) -> list[str]:
        """Endpoints still without their container's id, name and labels (so without an identity,
        outside every label-based policy): looked up in dockerd again and recorded. Returns their ids."""
        pending = [
            e
            for e in self.agent.endpoint_list()
            if e.get("docker-endpoint-id") and (e.get("state") == "waiting-for-identity" or not e.get("container-id"))
        ]
        if not pending:
            return []
        not_found, dockerd_down = dockerd_errors()
        failed: tuple[type[Exception], ...] = (*dockerd_down, PodnetError)
        try:
            holders: dict[str, str] = {}  # docker endpoint id -> container id
            for network in self.client.api.networks(filters={"driver": "podnet"}):
                # The container list (unlike a network inspect) makes dockerd call no driver back.
                for container in self.client.api.containers(all=True, filters={"network": network["Id"]}):
                    for net in ((container.get("NetworkSettings") or {}).get("Networks") or {}).values():
                        if net.get("EndpointID"):
                            holders[net["EndpointID"]] = str(container["Id"])
        except dockerd_down as err:
            log.warning("completing endpoints skipped: dockerd at %s: %s", self.docker_host, err)
            return []
        completed = []
        for endpoint in pending:
            container_id = holders.get(endpoint["docker-endpoint-id"])
            if container_id is None:
                continue  # not attached yet (being set up), or gone (collected below, after the grace)
            try:
                self._record(endpoint["id"], container_id, endpoint.get("sandbox-key"))
            except not_found:
                continue  # the container left meanwhile
            except failed as err:
                log.warning("completing endpoint %s: %s", endpoint["id"][:12], err)
                continue
            log.info(
                "endpoint %s: recorded its container %s (missed after Join)", endpoint["id"][:12], container_id[:12]
            )
            completed.append(endpoint["id"])
        return completed

    def collect_garbage(self) -> dict[str, list[str]]:
        removed: dict[str, list[str]] = {"endpoints": [], "networks": []}
        _, dockerd_down = dockerd_errors()
        try:
            networks = {n["Id"]: n for n in self.client.api.networks() if n.get("Driver") == "podnet"}
            live_endpoints = set()
            for network_id in networks:
                detail: dict[str, Any] = self.client.api.inspect_network(network_id)
                live_endpoints |= {c.get("EndpointID") for c in (detail.get("Containers") or {}).values()}
        except dockerd_down as err:
            log.warning("garbage collection skipped: dockerd at %s: %s", self.docker_host, err)
            return removed
        now = time.time()
        for endpoint in self.agent.endpoint_list():
            docker_id = endpoint.get("docker-endpoint-id")
            if not docker_id or docker_id in live_endpoints or now - endpoint["created-at"] < self.grace_s:
                continue
            log.info("deleting endpoint %s: dockerd no longer knows it", docker_id[:12])
            self.agent.endpoint_delete(endpoint["id"], release_ip=True)
            removed["endpoints"].append(endpoint["id"])
        for network in self.agent.network_list():
            if network["id"] not in networks:
                log.info("forgetting network %s: dockerd no longer knows it", network["id"][:12])
                self.agent.network_delete(network["id"])
                removed["networks"].append(network["id"])
        return removed
