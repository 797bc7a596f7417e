"""podnet-docker's reconciler while dockerd is away (restarting): it waits, it never dies."""

from __future__ import annotations

from pathlib import Path

import docker

from podnet.docker.reconcile import DockerWatcher
from tests.agent_harness import running_agent


def test_no_dockerd_skips_a_pass_and_resolves_nothing(tmp_path: Path) -> None:
    """dockerd's socket is gone: the docker SDK raises requests' ConnectionError, not a DockerException
    (a restart of dockerd crashed the plugin with it)."""
    with running_agent(tmp_path, cluster_cidrs=["10.20.30.0/24"], mask_size=26) as env:
        ip = env.client.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]
        env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}, "docker-endpoint-id": "ep1"})
        gone = f"unix://{tmp_path / 'gone.sock'}"
        watcher = DockerWatcher(env.client, gone, grace_s=0)
        watcher._client = docker.DockerClient(base_url=gone, version="1.41")  # made while dockerd was up
        assert watcher.collect_garbage() == {"endpoints": [], "networks": []}
        assert [e["id"] for e in env.client.request("GET", "/v1/endpoint")] == ["ep1"]  # nothing deleted blindly
        assert watcher.resolve_labels("net1", "ep1", timeout_s=0.6) is False
