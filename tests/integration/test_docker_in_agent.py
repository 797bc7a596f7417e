"""The docker flow with the agent serving the libnetwork plugin itself (`podnet-agent
--docker-plugin-socket`, no podnet-docker), on a real dockerd 20.10 in its own namespaces:
network create, run, reach by name, labels, rm, network rm; the reconciler in the agent
collects what dockerd forgot; the plugin comes back with the agent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lab.backends.base import wait_for
from lab.backends.netns.node import NetnsNode
from lab.image import IMAGE, INDEX_HTML
from podnet.api.client import AgentClient
from tests.integration.nodes import assert_delivered_to, assert_nothing_left, docker_node, host_snapshot

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def node() -> Iterator[NetnsNode]:
    before = host_snapshot()
    with docker_node("node1", plugin_in_agent=True) as n:
        assert set(n.processes()) == {"dockerd", "podnet-agent"}, "no podnet-docker: the agent serves the plugin"
        yield n
    assert_nothing_left(before)


@pytest.fixture
def net(node: NetnsNode) -> Iterator[str]:
    node.docker("network", "create", "--driver", "podnet", "--ipam-driver", "podnet", "podnet-net")
    yield "podnet-net"
    ids = node.docker("ps", "-aq", "--filter", "network=podnet-net").stdout.split()
    if ids:
        node.docker("rm", "-f", *ids)
    node.docker("network", "rm", "podnet-net", check=False)


def agent(node: NetnsNode) -> AgentClient:
    return AgentClient(str(node.agent_sock))


def endpoint_of(node: NetnsNode, container: str) -> dict[str, Any]:
    result: dict[str, Any] = agent(node).endpoint_get(node.endpoint_id(container))
    return result


def lxc_links(node: NetnsNode) -> list[str]:
    out = node.cmd("ip", "-o", "link").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ": lxc" in line]


def run_app1(node: NetnsNode, net: str) -> str:
    node.docker(
        "run", "-d", "--name", "app1", "--net", net, "-l", "id=app1", IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"
    )
    return node.docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "app1"
    ).stdout.strip()


def fetch(node: NetnsNode, net: str, target: str) -> str:
    return node.docker("run", "--rm", "--net", net, "-l", "id=app2", IMAGE, "wget", "-qO-", f"http://{target}/").stdout


def test_docker_flow_with_the_plugin_in_the_agent(node: NetnsNode, net: str) -> None:
    assert len(agent(node).network_list()) == 1  # recorded by CreateNetwork, in the agent
    ip = run_app1(node, net)
    assert fetch(node, net, "app1").encode() == INDEX_HTML
    wait_for(lambda: endpoint_of(node, "app1")["state"] == "ready", 15, "app1's endpoint to get its labels")
    ep = endpoint_of(node, "app1")
    assert ep["labels"] == ["id=app1"] and ep["container-name"] == "app1"
    assert ep["networking"]["addressing"] == [{"ipv4": ip}]
    assert_delivered_to(node, ip, ep["networking"]["interface-name"], "10.20.0.0/24")
    # The plugin's calls are in the agent's log (--docker-plugin-log-level debug), as the lab's checks read them.
    calls = node.log_text("podnet-agent")
    for call in ("/IpamDriver.RequestAddress", "/NetworkDriver.CreateEndpoint", "/NetworkDriver.Join"):
        assert f"podnet.docker: {call} -> " in calls, call
    node.docker("rm", "-f", "app1")
    wait_for(lambda: lxc_links(node) == [], 5, "app1's veth to be deleted")
    assert agent(node).endpoint_list() == []
    assert ip not in {a["ip"] for a in agent(node).request("GET", "/v1/ipam")["allocations"]}


def test_network_rm_forgets_the_network(node: NetnsNode) -> None:
    node.docker("network", "create", "--driver", "podnet", "--ipam-driver", "podnet", "short-lived")
    assert len(agent(node).network_list()) == 1
    node.docker("network", "rm", "short-lived")
    assert agent(node).network_list() == []
    assert [a["owner"] for a in agent(node).request("GET", "/v1/ipam")["allocations"]] == ["router"]


def test_the_reconciler_in_the_agent_removes_what_dockerd_forgot(node: NetnsNode, net: str) -> None:
    """An endpoint dockerd never heard of (its DeleteEndpoint lost): collected within the grace and a period."""
    network_id = node.docker("network", "inspect", "-f", "{{.Id}}", net).stdout.strip()
    ip = agent(node).ipam_allocate("docker-ipam")["address"]["ipv4"]
    forgotten = "f" * 64
    agent(node).endpoint_create(
        forgotten, {"addressing": {"ipv4": ip}, "docker-endpoint-id": forgotten, "docker-network-id": network_id}
    )
    wait_for(lambda: agent(node).endpoint_list() == [], 15, "the forgotten endpoint to be collected")
    assert ip not in {a["ip"] for a in agent(node).request("GET", "/v1/ipam")["allocations"]}


def test_the_plugin_comes_back_with_the_agent(node: NetnsNode, net: str) -> None:
    ip = run_app1(node, net)
    node.stop("podnet-agent")
    assert not node.plugin_sock.exists(), "the agent removes its plugin socket when it stops"
    failed = node.docker("run", "--rm", "--net", net, IMAGE, "true", check=False, timeout=60)
    assert failed.returncode != 0 and "podnet" in failed.stderr
    node.start_process("podnet-agent")  # as defined: with its plugin socket, ready when both answer
    assert node.plugin_ready()
    assert fetch(node, net, ip).encode() == INDEX_HTML
    node.docker("rm", "-f", "app1")
    wait_for(lambda: lxc_links(node) == [], 5, "app1's veth to be deleted")
