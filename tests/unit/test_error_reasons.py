"""Every API error carries a machine-readable reason; each reason is produced, by a real agent (kernel faked)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from podnet.agent.config import AgentConfig
from podnet.agent.waiting import wait_for_pod_cidr
from podnet.api.client import AgentClient, AgentError, AgentUnreachableError
from podnet.datapath.names import host_ifname
from podnet.errors import REASONS, PodnetError, Reason, http_status
from podnet.kvstore import KVStoreError, keys, open_store
from podnet.operator.registry import Condition, NodeStatus, write_status
from tests.agent_harness import RunningAgent, running_agent

REPO = Path(__file__).resolve().parents[2]


def _error(call: Callable[[], object]) -> PodnetError:
    with pytest.raises((AgentError, AgentUnreachableError)) as caught:
        call()
    return caught.value


def _allocate(env: RunningAgent) -> str:
    ip: str = env.client.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]
    return ip


# -- one producer per reason: (what is done, through the agent's API) ---------------------------
def pod_cidr_exhausted(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/30") as env:
        env.client.ipam_allocate("a")
        return _error(lambda: env.client.ipam_allocate("b"))


def already_allocated(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        env.client.ipam_allocate_ip("10.99.0.3", "a")
        return _error(lambda: env.client.ipam_allocate_ip("10.99.0.3", "b"))


def not_in_range(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        return _error(lambda: env.client.endpoint_create("ep1", {"addressing": {"ipv4": "192.168.1.1"}}))


def reserved_address(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        return _error(lambda: env.client.endpoint_create("ep1", {"addressing": {"ipv4": "10.99.0.1"}}))


def quarantined(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        env.agent.store.put(keys.pod_ip(env.agent.ipam.pod_cidr, "10.99.0.3"), "{written by nobody we know")
        env.agent.ipam.refresh()  # as a restart or a lost race would read it
        return _error(lambda: env.client.ipam_release("10.99.0.3"))


def invalid_netns(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        ip = _allocate(env)
        body = {"addressing": {"ipv4": ip}, "netns": "var/run/netns/pod1", "interface-name": "eth0"}
        return _error(lambda: env.client.endpoint_create("ep1", body))


def endpoint_exists(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        env.client.endpoint_create("ep1", {"addressing": {"ipv4": _allocate(env)}})
        return _error(lambda: env.client.endpoint_create("ep1", {"addressing": {"ipv4": _allocate(env)}}))


def not_found(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        return _error(lambda: env.client.endpoint_get("nobody"))


def veth_exists(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        env.datapath.links[host_ifname("ep1")] = 99  # left in the kernel by something else
        ip = _allocate(env)
        return _error(lambda: env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}}))


def datapath_failed(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        env.datapath.fail_next = "attaching from_container to tc ingress of lxc1: Operation not permitted"
        ip = _allocate(env)
        return _error(lambda: env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}}))


def bad_request(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        return _error(lambda: env.client.request("PUT", "/v1/endpoint/ep1", body=["not", "an", "object"]))


def request_timeout(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    """A body shorter than its Content-Length: no client sends that, so the request is written by hand."""
    from tests.interfaces import raw_exchange

    with running_agent(tmp, pod_cidr="10.99.0.0/29", body_timeout_s=0.2) as env:
        lying = b"PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[{"
        reply = raw_exchange(env.socket, lying, timeout=5)
        return AgentError.from_reply(reply.status, reply.json(), reply.body)


def too_many_monitors(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    from podnet.agent.monitor import Monitor

    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:
        env.agent.monitor = Monitor(env.agent.bpf_views.describe_event, lambda on: None, max_subscribers=1)
        first = socket.socket(socket.AF_UNIX)
        try:
            first.connect(env.socket)
            first.sendall(b"GET /v1/monitor HTTP/1.1\r\nHost: x\r\n\r\n")
            assert first.recv(100).startswith(b"HTTP/1.1 200")
            return _error(lambda: next(env.client.stream("/v1/monitor", timeout=1)))
        finally:
            first.close()


def store_unavailable(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:

        def gone(*_: object, **__: object) -> None:  # as a backend reports a store it cannot reach
            raise KVStoreError(f"kvstore {env.agent.store.url} did not answer")

        monkeypatch.setattr(env.agent.store, "revision", gone)
        return _error(lambda: env.client.request("GET", "/v1/policy"))


def internal(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> PodnetError:
    with running_agent(tmp, pod_cidr="10.99.0.0/29") as env:

        def broken(_: str) -> int:
            raise RuntimeError("a bug")

        monkeypatch.setattr(env.datapath, "index_of", broken)
        return _error(env.client.healthz)


def agent_unavailable(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    return _error(AgentClient(str(tmp / "nobody.sock")).healthz)


@contextmanager
def waiting_agent(tmp: Path) -> Iterator[tuple[AgentClient, Any]]:
    """An agent in operator mode, registered and waiting for a pod CIDR (its waiting server)."""
    socket = str(tmp / "agent.sock")
    config = AgentConfig(
        node_name="node1", socket=socket, store=f"sqlite://{tmp}/state.db", ipam_mode="operator", node_ip="10.0.0.11"
    )
    store = open_store(config.store)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stop = asyncio.Event()
    waiting = asyncio.run_coroutine_threadsafe(wait_for_pod_cidr(config, store, stop, interval_s=0.05), loop)
    client = AgentClient(socket)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.healthz()
                break
            except AgentUnreachableError:
                assert time.monotonic() < deadline, "the waiting server did not come up"
                time.sleep(0.02)
        yield client, store
    finally:
        loop.call_soon_threadsafe(stop.set)
        waiting.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        store.close()


def agent_not_ready(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    with waiting_agent(tmp) as (client, _store):
        assert client.healthz()["ipam"]["reason"] == "agent-not-ready"
        return _error(lambda: client.ipam_allocate("a"))


def cluster_pool_exhausted(tmp: Path, _: pytest.MonkeyPatch) -> PodnetError:
    """Only a node's start-up meets a full cluster pool: its healthz says so, in operator mode."""
    with waiting_agent(tmp) as (client, store):
        message = "every cluster CIDR is full (10.0.0.0/30 at /31: 2/2 node CIDRs in use)"
        write_status(
            store,
            NodeStatus("node1", [], Condition("PodCIDRAllocated", False, "ClusterPoolExhausted", message)),
        )
        deadline = time.monotonic() + 10
        while (ipam := client.healthz()["ipam"]).get("reason") != "cluster-pool-exhausted":
            assert time.monotonic() < deadline, ipam
            time.sleep(0.02)
        assert message in ipam["message"] and ipam["state"] == "failure"
        error = _error(lambda: client.ipam_allocate("a"))
        assert isinstance(error, AgentError) and error.reason == Reason.agent_not_ready
        assert "ClusterPoolExhausted" in str(error)
        return AgentError(503, ipam["message"], Reason(ipam["reason"]))


PRODUCERS: dict[Reason, Callable[[Path, pytest.MonkeyPatch], PodnetError]] = {
    Reason.pod_cidr_exhausted: pod_cidr_exhausted,
    Reason.cluster_pool_exhausted: cluster_pool_exhausted,
    Reason.already_allocated: already_allocated,
    Reason.not_in_range: not_in_range,
    Reason.reserved_address: reserved_address,
    Reason.quarantined: quarantined,
    Reason.invalid_netns: invalid_netns,
    Reason.endpoint_exists: endpoint_exists,
    Reason.not_found: not_found,
    Reason.veth_exists: veth_exists,
    Reason.datapath_failed: datapath_failed,
    Reason.bad_request: bad_request,
    Reason.request_timeout: request_timeout,
    Reason.too_many_monitors: too_many_monitors,
    Reason.store_unavailable: store_unavailable,
    Reason.agent_not_ready: agent_not_ready,
    Reason.agent_unavailable: agent_unavailable,
    Reason.internal: internal,
}


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_every_reason_is_produced_with_its_status(
    reason: Reason, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert reason in PRODUCERS, f"no test produces {reason}: add a producer"
    error = PRODUCERS[reason](tmp_path, monkeypatch)
    assert error.reason == reason, error
    if isinstance(error, AgentError):
        assert error.status == http_status(reason)


def test_error_body_is_code_message_reason(tmp_path: Path) -> None:
    with running_agent(tmp_path, pod_cidr="10.99.0.0/29") as env, socket.socket(socket.AF_UNIX) as sock:
        sock.connect(env.socket)
        sock.sendall(b"GET /v1/endpoint/nobody HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    body = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert body == {"code": 404, "message": "endpoint nobody not found", "reason": "not-found"}


def test_every_reason_is_documented_in_the_openapi_document() -> None:
    assert set(REASONS) == set(Reason)
    document = json.loads((REPO / "docs" / "agent-openapi.json").read_text())
    schemas = document["components"]["schemas"]
    assert schemas["Reason"]["enum"] == [r.value for r in Reason]
    assert "reason" in schemas["Error"]["required"]
    for reason in Reason:
        assert f"`{reason.value}`: {REASONS[reason][1]}" in schemas["Error"]["properties"]["reason"]["description"]


def test_a_reply_without_a_known_reason_gets_one_from_its_status() -> None:
    assert AgentError.from_reply(404, {"message": "gone"}, b"").reason == Reason.not_found
    assert AgentError.from_reply(400, {"message": "no", "reason": "from-the-future"}, b"").reason == Reason.bad_request
    assert AgentError.from_reply(502, None, b"Bad Gateway").reason == Reason.internal
