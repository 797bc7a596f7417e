"""Docker requests podnet cannot honour are refused with what to do instead, never half-done (the plugin and a
real agent, kernel faked; through the docker CLI in tests/integration/test_docker_refusals.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.docker.libnetwork import Handlers, PluginError
from tests.agent_harness import RunningAgent, running_agent


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, pod_cidr="10.99.0.0/28") as running:
        yield running


def network(handlers: Handlers, network_id: str, **options: Any) -> dict[str, Any]:
    body = {
        "NetworkID": network_id,
        "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}, **options},
        "IPv4Data": [{"AddressSpace": "podnet-local", "Gateway": "10.99.0.1/32", "Pool": "0.0.0.0/0"}],
        "IPv6Data": [],
    }
    return handlers.create_network(body)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"com.docker.network.internal": True}, "--internal is not supported by podnet"),
        ({"com.docker.network.generic": {"foo": "bar"}}, "podnet takes no driver options (-o/--opt), got foo=bar"),
        (
            {"com.docker.network.generic": {"com.docker.network.driver.mtu": "1400"}},
            "got com.docker.network.driver.mtu=1400",
        ),
    ],
    ids=["internal", "unknown-option", "mtu-option"],
)
def test_network_options_podnet_cannot_honour_are_refused(
    env: RunningAgent, options: dict[str, Any], says: str
) -> None:
    handlers = Handlers(env.client)
    with pytest.raises(PluginError, match=says.replace("(", r"\(").replace(")", r"\)")):
        network(handlers, "n1", **options)
    assert env.client.request("GET", "/v1/docker/network") == []
    assert network(handlers, "n1") == {}  # without them: fine


def _endpoint(handlers: Handlers, env: RunningAgent, network_id: str, endpoint_id: str) -> str:
    pool = handlers.request_pool({"AddressSpace": "podnet-local", "Pool": "", "SubPool": "", "V6": False})["PoolID"]
    address = handlers.request_address({"PoolID": pool, "Address": "", "Options": {}})["Address"]
    handlers.create_endpoint(
        {"NetworkID": network_id, "EndpointID": endpoint_id, "Interface": {"Address": address}, "Options": {}}
    )
    return str(address)


def test_a_second_podnet_network_in_one_container_is_refused_at_join(env: RunningAgent) -> None:
    handlers = Handlers(env.client)
    network(handlers, "na")
    network(handlers, "nb")
    sandbox = "/var/run/docker/netns/cd78ee2a9450"
    _endpoint(handlers, env, "na", "ep-a")
    assert handlers.join({"NetworkID": "na", "EndpointID": "ep-a", "SandboxKey": sandbox, "Options": {}})
    assert env.client.endpoint_get("ep-a")["sandbox-key"] == sandbox
    _endpoint(handlers, env, "nb", "ep-b")
    with pytest.raises(PluginError) as caught:
        handlers.join({"NetworkID": "nb", "EndpointID": "ep-b", "SandboxKey": sandbox, "Options": {}})
    message = str(caught.value)
    assert "is already on podnet network na (endpoint ep-a, 10.99.0.2)" in message
    assert "disconnect it from that network first (docker network disconnect na CONTAINER)" in message
    assert env.client.endpoint_get("ep-b").get("sandbox-key") is None  # nothing half-done
    # another container joins nb as usual
    assert handlers.join({"NetworkID": "nb", "EndpointID": "ep-b", "SandboxKey": "/var/run/docker/netns/other"})
