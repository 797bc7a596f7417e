"""The libnetwork plugin, over HTTP as dockerd calls it, given hostile requests: always {"Err": …} (issue 13)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent_harness import RunningAgent, running_agent
from tests.interfaces import (
    assert_libnetwork_error,
    assert_store_invariants,
    http_request,
    raw_exchange,
    running_plugin,
)

NET = "n" * 64
EP = "e" * 64
RULE = {"name": "allow-web", "endpointSelector": {"matchLabels": {"id": "app1"}}, "ingress": [{}]}
SMUGGLE = (
    "x HTTP/1.1\r\nHost: podnet\r\n\r\nDELETE /v1/policy HTTP/1.1\r\nHost: podnet\r\nContent-Length: 0\r\n\r\nGET /"
)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[RunningAgent, str]]:
    with running_agent(tmp_path, pod_cidr="10.44.0.0/28") as agent, running_plugin(tmp_path, agent.socket) as plugin:
        yield agent, plugin
        assert_store_invariants(agent.agent)  # whatever the test sent


def post(plugin: str, method: str, body: Any, **kwargs: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw_exchange(plugin, http_request("POST", f"/{method}", raw), **kwargs)


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("NetworkDriver.EndpointOperInfo", {"NetworkID": NET, "EndpointID": SMUGGLE}),
        ("NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": SMUGGLE}),
        (
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": SMUGGLE, "Interface": {"Address": "10.44.0.5/32"}},
        ),
        ("NetworkDriver.Join", {"NetworkID": NET, "EndpointID": SMUGGLE, "SandboxKey": "/x"}),
        ("NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": SMUGGLE}),
        ("NetworkDriver.DeleteNetwork", {"NetworkID": SMUGGLE}),
        (
            "NetworkDriver.CreateNetwork",
            {"NetworkID": "a/../../policy", "IPv4Data": [{"AddressSpace": "podnet-local", "Pool": "0.0.0.0/0"}]},
        ),
        ("NetworkDriver.EndpointOperInfo", {"NetworkID": NET, "EndpointID": "../../policy"}),
        ("NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": "ep?release-ip=true"}),
    ],
)
def test_ids_that_could_change_the_agent_request_get_an_err(
    env: tuple[RunningAgent, str], method: str, body: dict[str, Any]
) -> None:
    agent, plugin = env
    agent.client.request("PUT", "/v1/policy", body=[RULE])
    err = assert_libnetwork_error(post(plugin, method, body), 500)
    assert "invalid EndpointID" in err or "invalid NetworkID" in err
    assert [r["name"] for r in agent.client.request("GET", "/v1/policy")["rules"]] == ["allow-web"]
    assert agent.client.request("GET", "/v1/endpoint") == []


def test_join_without_network_id_is_an_err_even_with_the_label_resolver(tmp_path: Path) -> None:
    """podnet-docker's own after_call (labels from dockerd after a Join) runs inside the error handling."""
    import podnet.cmd.docker as cmd_docker
    from podnet.docker.reconcile import DockerWatcher

    with running_agent(tmp_path, pod_cidr="10.44.0.0/28") as agent:
        watcher = DockerWatcher(agent.client, f"unix://{tmp_path}/no-dockerd.sock")
        loop = asyncio.new_event_loop()
        try:
            after_call = cmd_docker.label_resolver(watcher, loop)
            with running_plugin(tmp_path, agent.socket, after_call=after_call) as plugin:
                reply = post(plugin, "NetworkDriver.Join", {"EndpointID": EP, "SandboxKey": "/var/run/docker/netns/x"})
                assert "missing field NetworkID" in assert_libnetwork_error(reply, 500)
                reply = post(plugin, "NetworkDriver.Join", {"NetworkID": 7, "EndpointID": EP})
                assert "field NetworkID has the wrong type (int)" in assert_libnetwork_error(reply, 500)
        finally:
            loop.close()


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        (
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": 5}},
            "field Interface.Address has the wrong type (int)",
        ),
        (
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": ["10.44.0.5/32"]}},
            "field Interface.Address has the wrong type (list)",
        ),
        (
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "not-an-ip/32"}},
            "invalid Interface.Address 'not-an-ip/32': not an IPv4 address",
        ),
        (
            "IpamDriver.ReleaseAddress",
            {"PoolID": "podnet:10.44.0.0/28", "Address": 5},
            "field Address has the wrong type (int)",
        ),
        (
            "IpamDriver.ReleaseAddress",
            {"PoolID": "podnet:10.44.0.0/28", "Address": "../../policy"},
            "invalid Address '../../policy': not an IPv4 address",
        ),
        ("NetworkDriver.CreateEndpoint", {"NetworkID": NET, "EndpointID": 12}, "field EndpointID has the wrong type"),
    ],
)
def test_fields_of_the_wrong_type_get_a_precise_err(
    env: tuple[RunningAgent, str], method: str, body: dict[str, Any], message: str
) -> None:
    agent, plugin = env
    err = assert_libnetwork_error(post(plugin, method, body), 500)
    assert message in err and "internal error" not in err
    assert agent.client.request("GET", "/v1/endpoint") == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"EndpointID": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"EndpointID": ' + b"[" * 100 + b"]" * 100 + b"}", "nested too deeply"),
        (b'{"NetworkID": "\\ud800", "EndpointID": "x"}', "lone surrogate \\ud800"),
        (b'{"\\udc00": 1}', "lone surrogate \\udc00"),
        (b'{"EndpointID": "\xff"}', "not UTF-8"),
    ],
)
def test_json_that_would_crash_later_is_a_400_err(env: tuple[RunningAgent, str], raw: bytes, message: str) -> None:
    _, plugin = env
    for method in ("NetworkDriver.Join", "NetworkDriver.EndpointOperInfo", "IpamDriver.RequestPool"):
        err = assert_libnetwork_error(post(plugin, method, raw), 400)
        assert "is not valid JSON" in err and message in err


def test_a_body_that_never_arrives_gets_a_408_err_in_time(tmp_path: Path) -> None:
    with (
        running_agent(tmp_path, pod_cidr="10.44.0.0/28") as agent,
        running_plugin(tmp_path, agent.socket, body_timeout_s=0.5) as plugin,
    ):
        lying = b'POST /NetworkDriver.Join HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"Endpoint'
        reply = raw_exchange(plugin, lying, timeout=5)
        assert "did not arrive within 0.5 s" in assert_libnetwork_error(reply, 408)
        assert reply.elapsed < 2 and reply.closed
        # and the plugin still serves
        assert json.loads(post(plugin, "Plugin.Activate", b"").body) == {"Implements": ["NetworkDriver", "IpamDriver"]}


def test_the_plugin_keeps_answering_after_hostile_requests(env: tuple[RunningAgent, str]) -> None:
    _, plugin = env
    started = time.monotonic()
    for raw in (b"[]", b"null", b'"x"', b"{}", b'{"EndpointID": null}', b"1e999999"):
        for method in ("NetworkDriver.Join", "NetworkDriver.CreateEndpoint", "IpamDriver.RequestAddress"):
            assert_libnetwork_error(post(plugin, method, raw))
    assert time.monotonic() - started < 10
