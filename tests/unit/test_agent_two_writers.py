"""Two agents writing one pod CIDR (an old and a new agent process overlapping, or a
misconfiguration): whatever their order, an IP never gets two endpoints."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from podnet.agent.config import AgentConfig
from podnet.agent.service import Agent
from podnet.api.models import EndpointChangeRequest
from podnet.errors import PodnetError
from podnet.kvstore import open_store
from tests.fakes import FakeDatapath


def agent(tmp_path: Path, node: str) -> Agent:
    config = AgentConfig(
        node_name=node,
        socket=str(tmp_path / f"{node}.sock"),
        store=f"sqlite://{tmp_path}/state.db",
        pod_cidr="10.60.0.0/24",
        ip_expiration_s=0.01,
    )
    started = Agent(config, open_store(config.store), FakeDatapath())
    started.start()
    return started


def request(ip: str) -> EndpointChangeRequest:
    return EndpointChangeRequest.model_validate({"addressing": {"ipv4": ip}})


def test_endpoint_create_never_takes_an_ip_another_endpoint_holds(tmp_path: Path) -> None:
    a = agent(tmp_path, "node-a")
    ip = a.ipam_allocate("cni/pod-b", expiration=True).ipv4.ip  # pod-b's runtime asks A
    assert ip == "10.60.0.2"
    time.sleep(0.05)  # ... and is slow: the allocation expires
    b = agent(tmp_path, "node-b")
    assert b.ipam_allocate("cni/pod-c", expiration=True).ipv4.ip == ip  # B expires it, hands it to pod-c
    b.endpoint_create("pod-c", request(ip))
    with pytest.raises(PodnetError, match=r"10.60.0.2 .*endpoint:pod-c"):
        a.endpoint_create("pod-b", request(ip))  # A's view still says cni/pod-b holds it
    held = b.ipam.get(ip)
    assert held is not None and held.owner == "endpoint:pod-c"
    b.ipam.refresh()
    held = b.ipam.get(ip)
    assert held is not None and held.owner == "endpoint:pod-c"
    assert a.endpoints.find("pod-b") is None
    assert not [name for name in a.datapath.host_veths() if name != "podnet_host"]  # type: ignore[attr-defined]


def test_endpoint_delete_leaves_an_ip_another_writer_took(tmp_path: Path) -> None:
    a = agent(tmp_path, "node-a")
    ip = a.ipam_allocate("cni/pod-a").ipv4.ip
    a.endpoint_create("pod-a", request(ip))
    b = agent(tmp_path, "node-b")
    b.ipam.claim(ip, "endpoint:pod-b")  # B's view: it may (it read endpoint:pod-a) — a misbehaving writer
    deleted = a.endpoint_delete("pod-a")  # A still believes pod-a holds it
    assert deleted.id == "pod-a" and a.endpoints.find("pod-a") is None
    b.ipam.refresh()
    held = b.ipam.get(ip)
    assert held is not None and held.owner == "endpoint:pod-b"
