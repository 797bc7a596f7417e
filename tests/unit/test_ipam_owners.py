"""An IP's owner names who holds it; the owners the agent writes itself are not a client's to take
(found by the fuzz suite, tests/fuzz: `POST /v1/ipam?owner=endpoint:ghost` held an IP that
`DELETE /v1/ipam/{ip}` then refused to release, forever: "in use by endpoint ghost")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.api.client import AgentError
from tests.agent_harness import RunningAgent, running_agent
from tests.interfaces import assert_rest_error, assert_store_invariants, http_request, raw_exchange


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, pod_cidr="10.44.0.0/28") as running:
        yield running
        assert_store_invariants(running.agent)


@pytest.mark.parametrize("owner", ["router", "endpoint:ghost", "endpoint:", "released-endpoint:ep1", "quarantined"])
def test_a_client_cannot_hold_an_ip_under_an_owner_the_agent_reserves(env: RunningAgent, owner: str) -> None:
    for call in (lambda: env.client.ipam_allocate(owner), lambda: env.client.ipam_allocate_ip("10.44.0.5", owner)):
        with pytest.raises(AgentError) as caught:
            call()
        assert caught.value.status == 400
        assert f"owner {owner!r} is the agent's own" in str(caught.value)
    assert [a.owner for a in env.agent.ipam.allocations()] == ["router"]


@pytest.mark.parametrize("owner", ["default/app\n1", "app\x1b[31m", "x\x7f"])
def test_an_owner_with_a_control_character_is_a_400(env: RunningAgent, owner: str) -> None:
    from urllib.parse import quote

    reply = raw_exchange(env.socket, http_request("POST", f"/v1/ipam?owner={quote(owner)}"))
    assert "control character" in assert_rest_error(reply, 400)["message"]
    assert [a.owner for a in env.agent.ipam.allocations()] == ["router"]


def test_every_ip_a_client_allocated_can_be_released(env: RunningAgent) -> None:
    for owner in ("default/app1", "docker-ipam", "cni/c0ffee01", "endpoint-like/not:reserved"):
        ip = env.client.ipam_allocate(owner)["address"]["ipv4"]
        assert env.client.ipam_release(ip)["released"] is True
    assert [a.owner for a in env.agent.ipam.allocations()] == ["router"]
