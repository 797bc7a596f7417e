"""Docker requests podnet cannot honour, through the docker CLI on a real dockerd: refused with what to do
instead, and nothing half-done (issue 13 item 17)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from lab.backends.netns.node import NetnsNode
from lab.image import IMAGE
from podnet.api.client import AgentClient
from tests.integration.nodes import docker_node

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def node() -> Iterator[NetnsNode]:
    with docker_node("refuse", "--datapath", "routes") as n:
        yield n


def create(node: NetnsNode, name: str, *flags: str) -> Any:
    return node.docker("network", "create", "--driver", "podnet", "--ipam-driver", "podnet", *flags, name, check=False)


def state(node: NetnsNode) -> dict[str, Any]:
    agent = AgentClient(str(node.agent_sock))
    lines = node.cmd("ip", "-o", "link").stdout.splitlines()
    return {
        "networks": sorted(n["id"] for n in agent.request("GET", "/v1/docker/network")),
        "endpoints": sorted(e["id"] for e in agent.request("GET", "/v1/endpoint")),
        "ips": sorted((a["ip"], a["owner"]) for a in agent.request("GET", "/v1/ipam")["allocations"]),
        "lxc": sorted(line.split(":")[1].strip().split("@")[0] for line in lines if ": lxc" in line),
    }


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--internal",), "--internal is not supported by podnet"),
        (("-o", "foo=bar"), "podnet takes no driver options (-o/--opt), got foo=bar"),
    ],
    ids=["internal", "unknown-option"],
)
def test_network_create_flags_podnet_cannot_honour_are_refused(
    node: NetnsNode, flags: tuple[str, ...], says: str
) -> None:
    before = state(node)
    proc = create(node, "refused-net", *flags)
    assert proc.returncode != 0 and says in proc.stderr, proc.stderr
    assert "refused-net" not in node.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert state(node) == before


def test_docker_network_connect_of_a_second_podnet_network_is_refused(node: NetnsNode) -> None:
    assert create(node, "na").returncode == 0 and create(node, "nb").returncode == 0
    nb = node.docker("network", "inspect", "-f", "{{.Id}}", "nb").stdout.strip()
    try:
        node.docker("run", "-d", "--name", "s1", "--net", "na", IMAGE, "sleep", "600")
        before = state(node)
        proc = node.docker("network", "connect", "nb", "s1", check=False)
        assert proc.returncode != 0
        assert "is already on podnet network" in proc.stderr and "docker network disconnect" in proc.stderr, proc.stderr
        assert "file exists" not in proc.stderr
        assert state(node) == before  # no endpoint, IP or veth left from the attempt
        # the container keeps working on na, untouched
        assert "eth1" not in node.docker("exec", "s1", "ip", "-o", "link").stdout
        routes = node.docker("exec", "s1", "ip", "route").stdout
        assert "default via 10.20.0.1 dev eth0" in routes, routes
        node.docker("exec", "s1", "ping", "-c", "1", "-W", "2", "10.20.0.1")
        # doing what the message says works: off na, and (dockerd kept nb in its settings) on nb at the restart
        node.docker("network", "disconnect", "na", "s1")
        node.docker("restart", "s1")
        inspect = json.loads(node.docker("inspect", "s1").stdout)[0]
        assert sorted(inspect["NetworkSettings"]["Networks"]) == ["nb"]
        eid = inspect["NetworkSettings"]["Networks"]["nb"]["EndpointID"]
        assert AgentClient(str(node.agent_sock)).endpoint_get(eid)["docker-network-id"] == nb
        node.docker("exec", "s1", "ping", "-c", "1", "-W", "2", "10.20.0.1")
    finally:
        node.docker("rm", "-f", "s1", check=False)
        node.docker("network", "rm", "na", "nb", check=False)
