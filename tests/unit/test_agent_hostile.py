"""The agent REST API given hostile input or a locked store: {code, message} in time, never a 500 or a hang
(issue 13, items 7, 8, 11)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.api.client import AgentClient, AgentError
from tests.agent_harness import RunningAgent, running_agent
from tests.interfaces import assert_rest_error, assert_store_invariants, http_request, raw_exchange

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, pod_cidr="10.44.0.0/28", body_timeout_s=0.5) as running:
        yield running
        assert_store_invariants(running.agent)  # whatever the test sent


def send(env: RunningAgent, method: str, target: str, body: bytes = b"") -> Any:
    return raw_exchange(env.socket, http_request(method, target, body, extra="Content-Type: application/json\r\n"))


@pytest.mark.parametrize(
    ("method", "target", "body", "message"),
    [
        ("PUT", "/v1/endpoint/ep1", b'{"labels": ' + DEEP + b"}", "nested too deeply"),
        ("PUT", "/v1/policy", DEEP, "nested too deeply"),
        ("POST", "/v1/cni", b'{"env": {}, "stdin": ' + DEEP + b"}", "nested too deeply"),
        ("PUT", "/v1/endpoint/ep1", b'{"labels": ["id=\\ud800"]}', "lone surrogate \\ud800"),
        ("PUT", "/v1/policy", b'{"name": "\\udfff", "endpointSelector": {}}', "lone surrogate \\udfff"),
        ("PUT", "/v1/docker/network/n1", b'{"id": "n1", "\\ud800": 1}', "lone surrogate \\ud800"),
        ("PATCH", "/v1/endpoint/ep1", b'{"container-name": "\xff\xfe"}', "not UTF-8"),
    ],
)
def test_json_that_would_crash_later_is_a_400(
    env: RunningAgent, method: str, target: str, body: bytes, message: str
) -> None:
    data = assert_rest_error(send(env, method, target, body), 400)
    assert "request body is not valid JSON" in data["message"] and message in data["message"]


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("/v1/endpoint/ep1%0A", "'ep1\\n'"),
        ("/v1/endpoint/ep1%0D%0AX", "'ep1\\r\\nX'"),
        ("/v1/docker/network/a%2Fb", "'a/b'"),
        ("/v1/docker/network/n%0A", "'n\\n'"),
    ],
)
def test_ids_with_newlines_or_slashes_are_refused(env: RunningAgent, target: str, shown: str) -> None:
    data = assert_rest_error(send(env, "PUT", target, b"{}"), 400)
    assert shown in data["message"]
    assert env.client.request("GET", "/v1/endpoint") == [] and env.client.request("GET", "/v1/docker/network") == []


def test_a_body_that_never_arrives_gets_a_408_in_time(env: RunningAgent) -> None:
    lying = b'PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[{"name"'
    reply = raw_exchange(env.socket, lying, timeout=5)
    data = assert_rest_error(reply, 408)
    assert "the request body did not arrive within 0.5 s" in data["message"]
    assert reply.elapsed < 2 and reply.closed
    assert env.client.healthz()["node"] == "node1"  # the agent still serves


def install_monitor(env: RunningAgent) -> None:
    """A monitor as the eBPF datapath has (the fake kernel has none)."""
    from podnet.agent.monitor import Monitor
    from podnet.api.models import MonitorEvent

    def describe(event: object) -> MonitorEvent:
        raise AssertionError("no events in this test")

    env.agent.monitor = Monitor(describe, lambda on: None)


def test_monitor_validates_before_streaming(env: RunningAgent) -> None:
    install_monitor(env)
    reply = send(env, "GET", "/v1/monitor?recent=maybe")
    data = assert_rest_error(reply, 400)
    assert data["message"] == "invalid recent 'maybe': expected true or false"
    data = assert_rest_error(send(env, "GET", "/v1/monitor?type=everything"), 400)
    assert "invalid type 'everything'" in data["message"]


def test_monitor_subscribers_are_capped_with_a_429(env: RunningAgent) -> None:
    install_monitor(env)
    import socket as socketlib

    streams = []
    try:
        for _ in range(64):
            s = socketlib.socket(socketlib.AF_UNIX)
            s.settimeout(5)
            s.connect(env.socket)
            s.sendall(b"GET /v1/monitor HTTP/1.1\r\nHost: podnet\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")
            streams.append(s)
        data = assert_rest_error(send(env, "GET", "/v1/monitor"), 429)
        assert "64 monitors are already streaming (at most 64)" in data["message"]
        streams.pop().close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the agent notices the closed stream within a second
            reply = raw_exchange(env.socket, http_request("GET", "/v1/monitor"), timeout=1.5, head_only=True)
            if reply.status == 200:
                break
            time.sleep(0.2)
        assert reply.status == 200
    finally:
        for s in streams:
            s.close()


class WriteLock:
    """Another process's writer holding the SQLite write lock (BEGIN IMMEDIATE) until released."""

    def __init__(self, db: Path):
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_a_locked_store_is_a_503_within_the_busy_timeout_and_healthz_answers_meanwhile(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path}/state.db?busy_timeout=2"
    with running_agent(tmp_path, pod_cidr="10.44.0.0/28", store=store) as env:
        assert env.client.healthz()["state"] == "ok"
        lock = WriteLock(tmp_path / "state.db")
        outcome: dict[str, Any] = {}

        def allocate() -> None:
            started = time.monotonic()
            try:
                AgentClient(env.socket, timeout=10).ipam_allocate("default/app1")
            except AgentError as err:
                outcome.update(status=err.status, message=str(err))
            outcome["elapsed"] = time.monotonic() - started

        writer = threading.Thread(target=allocate)
        try:
            writer.start()
            time.sleep(0.3)  # the worker now waits on the lock
            started = time.monotonic()
            health = AgentClient(env.socket, timeout=5).healthz()
            assert time.monotonic() - started < 1.6
            assert health["state"] in ("degraded", "failure")
            assert "the agent's worker has been busy for" in health["store"]["message"]
            assert "ipam_allocate" in health["store"]["message"]
            writer.join(10)
        finally:
            lock.release()
        assert outcome["status"] == 503, outcome
        assert "is locked by another writer" in outcome["message"] and "waited 2 s" in outcome["message"]
        assert 1.8 < outcome["elapsed"] < 4
        # nothing half-done: the failed allocation holds no address, in the store or in memory
        assert [a.owner for a in env.agent.ipam.allocations()] == ["router"]
        assert env.client.request("GET", "/v1/ipam")["allocations"][0]["owner"] == "router"
        assert env.agent.ipam.mem.used == 1
        # the lock gone, everything works again
        env.client.ipam_allocate("default/app1")
        assert env.client.healthz()["state"] == "ok"
