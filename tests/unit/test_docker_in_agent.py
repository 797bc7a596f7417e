"""The docker plugin served by the agent itself (`podnet-agent --docker-plugin-socket`).

- `LocalAgentCalls` answers every call of the plugin's `AgentCalls` as `AgentClient` over the
  agent's socket does: the same JSON, and the same failures (type, HTTP status, reason, message);
  whether its calls are submitted to the worker (the label resolver, the reconciler) or made on
  the worker itself (the handlers).
- Over the plugin socket, the in-agent plugin answers dockerd's calls exactly as podnet-docker
  does, errors in the same {"Err": ...} form.
- Without the option, the agent imports nothing of the docker plugin (nor docker's SDK).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from podnet.agent.config import AgentConfig
from podnet.agent.local import LocalAgentCalls, inline, no_health, submit_to_worker
from podnet.api import unixhttp
from podnet.api.client import AgentClient, AgentError, AgentTimeoutError
from podnet.docker.calls import AgentCalls
from podnet.docker.service import PluginService
from podnet.errors import Reason
from tests.agent_harness import RunningAgent, running_agent
from tests.interfaces import running_plugin

POD_CIDR = "10.44.0.0/24"
EP = "e" * 64
NET = "a" * 64
Call = Callable[[AgentCalls], Any]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, pod_cidr=POD_CIDR) as running:
        yield running


def submitted(env: RunningAgent, timeout: float = 5.0) -> LocalAgentCalls:
    """As the label resolver and the reconciler have it: each call submitted to the worker."""

    def submit(left: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return submit_to_worker(env.api, left, fn, *args, **kwargs)

    return LocalAgentCalls(env.agent, submit, no_health, timeout=timeout)


def outcome(env: RunningAgent, call: Call, calls: AgentCalls, *, on_worker: bool = False) -> tuple[str, Any]:
    """("ok", the JSON) or (the error's type, status, reason, message)."""
    try:
        # The handlers' calls are made on the worker itself.
        result = env.api.worker.submit(call, calls).result(10) if on_worker else call(calls)
    except AgentError as err:
        return "AgentError", (err.status, err.reason, str(err))
    return "ok", json.loads(json.dumps(result))


def endpoint_body(ip: str, **extra: Any) -> dict[str, Any]:
    return {"addressing": {"ipv4": ip}, "docker-endpoint-id": EP, "docker-network-id": NET, **extra}


def network_body(network_id: str = NET, **extra: Any) -> dict[str, Any]:
    return {"id": network_id, "pool": "0.0.0.0/0", "gateway": "10.44.0.1/32", "options": {}, **extra}


# Calls that change nothing (reads, and failures): each answered alike by every client in turn.
SAME_STATE: dict[str, Call] = {
    "node": lambda c: c.node(),
    "endpoint list": lambda c: c.endpoint_list(),
    "network list": lambda c: c.network_list(),
    "endpoint get: unknown": lambda c: c.endpoint_get("f" * 64),
    "endpoint get: invalid id": lambda c: c.endpoint_get("../etc"),
    "endpoint delete: unknown": lambda c: c.endpoint_delete("f" * 64, release_ip=True),
    "endpoint patch: unknown": lambda c: c.endpoint_patch("f" * 64, {"sandbox-key": "/var/run/docker/netns/x"}),
    "endpoint patch: invalid body": lambda c: c.endpoint_patch(EP, {"labels": ["has space"]}),
    "endpoint create: invalid id": lambda c: c.endpoint_create("-bad id", endpoint_body("10.44.0.9")),
    "endpoint create: not an IP": lambda c: c.endpoint_create("f" * 64, endpoint_body("10.44.0.x")),
    "endpoint create: outside the pod CIDR": lambda c: c.endpoint_create("f" * 64, endpoint_body("10.99.0.9")),
    "endpoint create: the router IP": lambda c: c.endpoint_create("f" * 64, endpoint_body("10.44.0.1")),
    "endpoint create: exists": lambda c: c.endpoint_create(EP, endpoint_body("10.44.0.20")),
    "endpoint create: its IP is another's": lambda c: c.endpoint_create("f" * 64, endpoint_body("10.44.0.10")),
    "ipam: allocate outside the pool": lambda c: c.ipam_allocate("docker-ipam", pool="10.99.0.0/28"),
    "ipam: allocate without owner": lambda c: c.ipam_allocate(" "),
    "ipam: allocate a taken IP": lambda c: c.ipam_allocate_ip("10.44.0.10", "docker-ipam"),
    "ipam: allocate not an IP": lambda c: c.ipam_allocate_ip("10.44.0.x", "docker-ipam"),
    "ipam: allocate an IP without owner": lambda c: c.ipam_allocate_ip("10.44.0.30", ""),
    "ipam: release not an IP": lambda c: c.ipam_release("nope"),
    "ipam: release an endpoint's IP": lambda c: c.ipam_release("10.44.0.10"),
    "network put: invalid id": lambda c: c.network_put("bad/id", network_body("bad/id")),
    "network put: id differs": lambda c: c.network_put("b" * 64, network_body()),
    "network put: invalid body": lambda c: c.network_put(NET, network_body(pool=7)),
    "network put: unknown field": lambda c: c.network_put(NET, network_body(color="red")),
    "network delete: unknown": lambda c: c.network_delete("c" * 64),
    "network delete: invalid id": lambda c: c.network_delete("bad id"),
}


@pytest.mark.parametrize("case", SAME_STATE)
def test_in_process_calls_answer_and_fail_as_the_http_client(env: RunningAgent, case: str) -> None:
    env.client.ipam_allocate_ip("10.44.0.10", "docker-ipam")
    env.client.endpoint_create(EP, endpoint_body("10.44.0.10"))
    env.client.network_put(NET, network_body())
    call = SAME_STATE[case]
    over_http = outcome(env, call, env.client)
    assert outcome(env, call, submitted(env)) == over_http
    on_worker = LocalAgentCalls(env.agent, inline, no_health, timeout=5)
    assert outcome(env, call, on_worker, on_worker=True) == over_http
    if case.endswith(("unknown", "invalid id", "invalid body", "not an IP", "id differs")):
        assert over_http[0] == "AgentError"  # the case fails as it says


VARYING = ("created-at", "expires-at", "since", "status", "interface-index", "timestamp")


def _strip(value: Any) -> Any:
    """What differs between two equal operations made one after the other: times, the kernel's
    interface index, the IP the allocator hands out (the next one, each time)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _same_ip(results: list[Any]) -> Any:
    ip = results[1]["networking"]["addressing"][0]["ipv4"]
    return _strip(json.loads(json.dumps(results).replace(f'"{ip}"', '"IP"')))


def _changes(calls: AgentCalls) -> list[Any]:
    """The plugin's changing calls, in dockerd's order, undone in the end."""
    ip = calls.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]
    return [
        calls.network_put(NET, network_body()),
        calls.endpoint_create(EP, endpoint_body(ip)),
        calls.endpoint_patch(EP, {"sandbox-key": "/var/run/docker/netns/x", "labels": ["id=app1"]}),
        calls.endpoint_get(EP),
        calls.endpoint_delete(EP),
        calls.ipam_release(ip),
        calls.ipam_allocate_ip(ip, "docker-ipam", expiration=True),
        calls.ipam_release(ip),
        calls.network_delete(NET),
        calls.network_list(),
        calls.endpoint_list(),
    ]


def test_in_process_calls_change_the_agent_as_the_http_client(env: RunningAgent) -> None:
    over_http = _same_ip(_changes(env.client))
    assert over_http[2]["state"] == "ready" and over_http[-2:] == [[], []]
    assert _same_ip(_changes(submitted(env))) == over_http
    on_worker = LocalAgentCalls(env.agent, inline, no_health, timeout=5)
    assert _same_ip(env.api.worker.submit(_changes, on_worker).result(10)) == over_http


def test_in_process_calls_time_out_as_the_http_client_when_the_worker_is_stuck(env: RunningAgent) -> None:
    release: Future[None] = Future()
    env.api.worker.submit(release.result, 10)  # the worker is stuck (a locked store, say)
    try:
        with pytest.raises(AgentTimeoutError, match="did not answer within 0.3 s"):
            submitted(env, timeout=0.3).endpoint_list()
    finally:
        release.set_result(None)


# -- the plugin socket: in the agent, and podnet-docker ----------------------------------------
DOCKER_FLOW: list[tuple[str, dict[str, Any]]] = [
    ("/Plugin.Activate", {}),
    ("/IpamDriver.RequestPool", {"AddressSpace": "podnet-local", "Pool": "", "Options": {}}),
    ("/IpamDriver.RequestPool", {"AddressSpace": "podnet-local", "Pool": "10.99.0.0/24", "Options": {}}),
    ("/IpamDriver.RequestAddress", {"PoolID": "podnet:10.44.0.0/24", "Address": "10.44.0.7", "Options": {}}),
    ("/IpamDriver.RequestAddress", {"PoolID": "podnet:10.44.0.0/24", "Address": "10.44.0.7", "Options": {}}),
    (
        "/NetworkDriver.CreateNetwork",
        {"NetworkID": NET, "Options": {}, "IPv4Data": [{"AddressSpace": "podnet-local", "Pool": "0.0.0.0/0"}]},
    ),
    (
        "/NetworkDriver.CreateNetwork",
        {"NetworkID": "bad id", "Options": {}, "IPv4Data": [{"AddressSpace": "podnet-local", "Pool": "0.0.0.0/0"}]},
    ),
    (
        "/NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.44.0.7/32"}, "Options": {}},
    ),
    (
        "/NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.44.0.7/32"}, "Options": {}},
    ),
    (
        "/NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": "f" * 64, "Interface": {"Address": "10.99.0.7/32"}, "Options": {}},
    ),
    ("/NetworkDriver.EndpointOperInfo", {"NetworkID": NET, "EndpointID": EP}),
    ("/NetworkDriver.EndpointOperInfo", {"NetworkID": NET, "EndpointID": "f" * 64}),
    ("/NetworkDriver.Join", {"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/var/run/docker/netns/c1"}),
    ("/NetworkDriver.Join", {"NetworkID": NET, "EndpointID": "f" * 64, "SandboxKey": "/var/run/docker/netns/c2"}),
    ("/NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": EP}),
    ("/NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": EP}),
    ("/NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": EP}),
    ("/IpamDriver.ReleaseAddress", {"PoolID": "podnet:10.44.0.0/24", "Address": "10.44.0.7"}),
    ("/IpamDriver.ReleaseAddress", {"PoolID": "podnet:10.44.0.0/24", "Address": "nope"}),
    ("/NetworkDriver.DeleteNetwork", {"NetworkID": NET}),
    ("/NetworkDriver.DeleteNetwork", {"NetworkID": NET}),
    ("/NetworkDriver.AllocateNetwork", {}),
    ("/NetworkDriver.NoSuchMethod", {}),
]


def flow(sock: str) -> list[tuple[int, Any]]:
    replies = []
    for path, body in DOCKER_FLOW:
        reply = unixhttp.request(sock, "POST", path, body=json.dumps(body).encode(), host="x", timeout=10)
        replies.append((reply.status, json.loads(reply.body)))
    return replies


def test_the_agent_serves_the_plugin_as_podnet_docker_does(tmp_path: Path) -> None:
    (tmp_path / "standalone").mkdir()
    (tmp_path / "in-agent").mkdir()
    with (
        running_agent(tmp_path / "standalone", pod_cidr=POD_CIDR) as env,
        running_plugin(tmp_path / "standalone", env.socket) as sock,
    ):
        expected = flow(sock)
    assert [status for status, _ in expected].count(200) >= 12 and any(s == 500 for s, _ in expected)

    with running_agent(tmp_path / "in-agent", pod_cidr=POD_CIDR) as env:
        config = AgentConfig(
            node_name="node1",
            socket=env.socket,
            pod_cidr=POD_CIDR,
            docker_plugin_socket=str(tmp_path / "in-agent" / "plugin.sock"),
            docker_host=f"unix://{tmp_path}/no-dockerd.sock",
        )
        loop = asyncio.new_event_loop()
        try:
            from podnet.docker.inagent import start_plugin

            service: PluginService = loop.run_until_complete(start_plugin(env.api, config))
            try:
                in_agent = loop.run_until_complete(loop.run_in_executor(None, flow, str(config.docker_plugin_socket)))
            finally:
                loop.run_until_complete(service.stop())
        finally:
            loop.close()
        assert not Path(str(config.docker_plugin_socket)).exists()
        assert env.agent.endpoint_list() == [] and env.agent.network_list() == []
    assert in_agent == expected


def test_an_in_agent_plugin_call_queued_past_its_deadline_never_runs(env: RunningAgent) -> None:
    from podnet.docker.inagent import on_worker
    from podnet.docker.libnetwork import PluginError

    ran: list[str] = []
    release: Future[None] = Future()
    env.api.worker.submit(release.result, 10)
    run = on_worker(env.api, 0.2)
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(PluginError, match="did not answer within 0.2 s: its worker is busy"):
            loop.run_until_complete(run("/NetworkDriver.CreateEndpoint", ran.append, "late", None))
        # Agentless calls do not wait for the worker.
        assert loop.run_until_complete(run("/Plugin.Activate", lambda body: {"ok": body}, 1, None)) == {"ok": 1}
    finally:
        release.set_result(None)
        loop.close()
    env.api.worker.submit(lambda: None).result(5)
    assert ran == []


def test_the_agent_imports_no_docker_plugin_without_the_option() -> None:
    code = (
        "import sys, podnet.cmd.agent, podnet.agent.server, podnet.agent.local\n"
        "print(sorted(m for m in sys.modules if m.startswith(('podnet.docker', 'docker', 'requests'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_agent_flags_and_toml_name_the_plugin_settings(tmp_path: Path) -> None:
    from podnet.agent.config import load_config
    from podnet.cmd.agent import parse_args

    args = parse_args(
        [
            "--docker-plugin-socket",
            "/run/docker/plugins/podnet.sock",
            "--docker-gc-interval",
            "5",
            "--docker-gc-grace",
            "10",
            "--docker-plugin-log-level",
            "debug",
        ]
    )
    overrides = {k: v for k, v in vars(args).items() if k not in ("config", "log_level")}
    config = load_config(None, overrides)
    assert (config.docker_plugin_socket, config.docker_gc_interval_s, config.docker_gc_grace_s) == (
        "/run/docker/plugins/podnet.sock",
        5.0,
        10.0,
    )
    assert config.docker_plugin_log_level == "debug" and config.docker_host == "unix:///var/run/docker.sock"
    toml = tmp_path / "agent.toml"
    toml.write_text('docker-plugin-socket = "/run/p.sock"\ndocker_gc_interval_s = 2.5\n')
    from_file = load_config(str(toml), {})
    assert (from_file.docker_plugin_socket, from_file.docker_gc_interval_s) == ("/run/p.sock", 2.5)
    assert load_config(None, {}).docker_plugin_socket is None


def test_reason_of_a_missing_endpoint_is_the_same_in_process(env: RunningAgent) -> None:
    """The plugin's idempotent DeleteEndpoint switches on it."""
    with pytest.raises(AgentError) as err:
        submitted(env).endpoint_delete("f" * 64)
    assert err.value.reason == Reason.not_found and err.value.status == 404
    assert isinstance(env.client, AgentClient)
