"""The source documents' docker flow on a real dockerd 20.10 in its own namespaces.

docker network create --driver podnet --ipam-driver podnet podnet-net
docker run -d --name app1 --net podnet-net -l id=app1 IMAGE httpd -f -p 80 -h /www
docker run --rm --net podnet-net -l id=app2 IMAGE wget -qO- http://app1/
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from lab.backends.base import wait_for
from lab.backends.netns.node import NetnsNode
from lab.image import IMAGE, INDEX_HTML
from podnet.api import unixhttp
from podnet.api.client import AgentClient
from tests.integration.nodes import (
    PYTHON,
    assert_delivered_to,
    assert_nothing_left,
    datapath,
    docker_node,
    host_snapshot,
)

pytestmark = pytest.mark.root


@pytest.fixture(scope="module", params=["bpf", "routes"])
def node(request: pytest.FixtureRequest) -> Iterator[NetnsNode]:
    before = host_snapshot()
    with docker_node("node1", "--datapath", request.param) as n:
        assert agent(n).healthz()["datapath"]["message"].startswith("eBPF" if request.param == "bpf" else "veth")
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


def run_app1(node: NetnsNode, net: str, name: str = "app1", *extra: str) -> str:
    node.docker(
        "run",
        "-d",
        "--name",
        name,
        "--net",
        net,
        "-l",
        f"id={name}",
        *extra,
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    )
    return node.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name).stdout.strip()


def fetch(node: NetnsNode, net: str, target: str, *, label: str = "id=app2") -> str:
    return node.docker("run", "--rm", "--net", net, "-l", label, IMAGE, "wget", "-qO-", f"http://{target}/").stdout


def lxc_links(node: NetnsNode) -> list[str]:
    out = node.cmd("ip", "-o", "link").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ": lxc" in line]


def endpoint_of(node: NetnsNode, container: str) -> dict[str, Any]:
    result: dict[str, Any] = agent(node).endpoint_get(node.endpoint_id(container))
    return result


def test_network_create_shows_podnet_drivers_and_pool(node: NetnsNode, net: str) -> None:
    inspect = json.loads(node.docker("network", "inspect", net).stdout)[0]
    health = agent(node).healthz()
    assert inspect["Driver"] == "podnet"
    assert inspect["IPAM"]["Driver"] == "podnet"
    assert inspect["IPAM"]["Config"] == [{"Subnet": "0.0.0.0/0", "Gateway": "10.20.0.1"}]  # as cilium-docker
    assert health["pod-cidr"] == "10.20.0.0/24"
    assert [n["id"] for n in agent(node).request("GET", "/v1/docker/network")] == [inspect["Id"]]


def test_second_network_while_containers_run(node: NetnsNode, net: str) -> None:
    """The node's per-pod /32 routes overlap the pod CIDR; dockerd must not loop on RequestPool."""
    ip = run_app1(node, net)
    wait_for(lambda: endpoint_of(node, "app1")["state"] == "ready", 15, "app1's endpoint to get its labels")
    assert_delivered_to(node, ip, endpoint_of(node, "app1")["networking"]["interface-name"], "10.20.0.0/24")
    log = node.logs / "podnet-docker.log"
    before = log.read_text().count("/IpamDriver.RequestPool ->")
    try:
        node.docker("network", "create", "--driver", "podnet", "--ipam-driver", "podnet", "net-two", timeout=20)
        node.docker("run", "--rm", "--net", "net-two", IMAGE, "sh", "-c", ":", timeout=30)
    finally:
        node.docker("network", "rm", "net-two", check=False)
    requests = log.read_text().count("/IpamDriver.RequestPool ->") - before
    assert requests == 1, f"dockerd asked for a pool {requests} times"


def test_app2_reaches_app1_by_name_and_ip(node: NetnsNode, net: str) -> None:
    ip = run_app1(node, net)
    assert fetch(node, net, "app1").encode() == INDEX_HTML
    assert fetch(node, net, ip).encode() == INDEX_HTML
    inspect = json.loads(node.docker("network", "inspect", net).stdout)[0]
    [(container_id, attached)] = inspect["Containers"].items()
    assert attached["Name"] == "app1" and attached["IPv4Address"] == f"{ip}/32"
    wait_for(lambda: endpoint_of(node, "app1")["state"] == "ready", 15, "app1's endpoint to get its labels")
    ep = endpoint_of(node, "app1")
    assert ep["labels"] == ["id=app1"] and ep["container-name"] == "app1" and ep["container-id"] == container_id
    assert ep["networking"]["addressing"] == [{"ipv4": ip}]
    assert ep["counters"]["tx-packets"] > 0 and ep["counters"]["rx-packets"] > 0
    # routed design: /32 in the container, default via the router IP, a /32 host route on the node
    routes = node.docker("exec", "app1", "ip", "route").stdout
    assert "default via 10.20.0.1 dev eth0" in routes and "10.20.0.1 dev eth0 scope link" in routes
    assert f"inet {ip}/32" in node.docker("exec", "app1", "ip", "addr", "show", "eth0").stdout
    assert_delivered_to(node, ip, ep["networking"]["interface-name"], "10.20.0.0/24")
    owners = {a["ip"]: a["owner"] for a in agent(node).request("GET", "/v1/ipam")["allocations"]}
    assert owners[ip] == f"endpoint:{ep['id']}"


def test_stop_and_rm_release_ip_and_veth(node: NetnsNode, net: str) -> None:
    ip = run_app1(node, net)
    assert len(lxc_links(node)) == 1
    node.docker("stop", "-t", "1", "app1")
    node.docker("rm", "app1")
    wait_for(lambda: lxc_links(node) == [], 5, "app1's veth to be deleted")
    assert ip not in {a["ip"] for a in agent(node).request("GET", "/v1/ipam")["allocations"]}
    assert agent(node).request("GET", "/v1/endpoint") == []
    assert f"{ip} dev lxc" not in node.cmd("ip", "route").stdout
    if datapath(node) == "bpf":
        assert agent(node).request("GET", "/v1/bpf")["endpoints"] == []


def test_network_rm_releases_the_pool(node: NetnsNode) -> None:
    node.docker("network", "create", "--driver", "podnet", "--ipam-driver", "podnet", "short-lived")
    assert len(agent(node).request("GET", "/v1/docker/network")) == 1
    node.docker("network", "rm", "short-lived")
    assert agent(node).request("GET", "/v1/docker/network") == []
    assert [a["owner"] for a in agent(node).request("GET", "/v1/ipam")["allocations"]] == ["router"]


def test_ip_subnet_and_gateway_options(node: NetnsNode) -> None:
    node.docker(
        "network",
        "create",
        "--driver",
        "podnet",
        "--ipam-driver",
        "podnet",
        "--subnet",
        "10.20.0.0/24",
        "--ip-range",
        "10.20.0.128/26",
        "--gateway",
        "10.20.0.1",
        "ranged",
    )
    try:
        node.docker("run", "-d", "--name", "fixed", "--net", "ranged", "--ip", "10.20.0.150", IMAGE, "sleep", "60")
        assert (
            node.docker(
                "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "fixed"
            ).stdout.strip()
            == "10.20.0.150"
        )
        node.docker("run", "-d", "--name", "ranged1", "--net", "ranged", IMAGE, "sleep", "60")
        ip = node.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "ranged1")
        assert ip.stdout.strip().startswith("10.20.0.1") and 128 <= int(ip.stdout.strip().split(".")[-1]) < 192
        taken = node.docker(
            "run", "--rm", "--net", "ranged", "--ip", "10.20.0.150", IMAGE, "sh", "-c", ":", check=False
        )
        assert taken.returncode != 0 and "10.20.0.150 is already allocated" in taken.stderr
        outside = node.docker(
            "run", "--rm", "--net", "ranged", "--ip", "10.20.0.5", IMAGE, "sh", "-c", ":", check=False
        )
        assert (
            outside.returncode != 0
            and "--ip 10.20.0.5 is not inside the network's pool 10.20.0.128/26" in outside.stderr
        )
    finally:
        node.docker("rm", "-f", "fixed", "ranged1", check=False)
        node.docker("network", "rm", "ranged", check=False)
    bad_subnet = node.docker(
        "network",
        "create",
        "--driver",
        "podnet",
        "--ipam-driver",
        "podnet",
        "--subnet",
        "192.168.77.0/24",
        "elsewhere",
        check=False,
    )
    assert bad_subnet.returncode != 0
    assert "--subnet 192.168.77.0/24 does not fit this node's pod CIDR 10.20.0.0/24" in bad_subnet.stderr
    bad_gw = node.docker(
        "network",
        "create",
        "--driver",
        "podnet",
        "--ipam-driver",
        "podnet",
        "--subnet",
        "10.20.0.0/24",
        "--gateway",
        "10.20.0.254",
        "gw",
        check=False,
    )
    assert bad_gw.returncode != 0 and "routes every container through this node's router IP 10.20.0.1" in bad_gw.stderr
    no_ipam = node.docker("network", "create", "--driver", "podnet", "noipam", check=False)
    assert no_ipam.returncode != 0 and "needs the podnet IPAM driver" in no_ipam.stderr
    published = node.docker("network", "create", "--driver", "podnet", "--ipam-driver", "podnet", "pub")
    try:
        assert published.returncode == 0
        p = node.docker("run", "--rm", "--net", "pub", "-p", "8080:80", IMAGE, "sh", "-c", ":", check=False)
        assert p.returncode != 0 and "podnet does not publish ports" in p.stderr
    finally:
        node.docker("network", "rm", "pub", check=False)
    wait_for(lambda: lxc_links(node) == [], 5, "every veth to be deleted")
    assert [a["owner"] for a in agent(node).request("GET", "/v1/ipam")["allocations"]] == ["router"]


def test_agent_restart_keeps_containers_reachable(node: NetnsNode, net: str) -> None:
    ip = run_app1(node, net)
    node.docker("run", "-d", "--name", "client", "--net", net, IMAGE, "sleep", "300")
    for name in ("app1", "client"):  # labels arrive asynchronously; compare settled states
        wait_for(lambda n=name: endpoint_of(node, n)["state"] == "ready", 15, f"{name}'s labels")
    before = agent(node).request("GET", "/v1/ipam")
    endpoints_before = {e["id"]: e["state"] for e in agent(node).request("GET", "/v1/endpoint")}
    node.stop("podnet-agent")
    # Existing endpoints need no agent: the kernel forwards on its own.
    assert node.docker("exec", "client", "wget", "-qO-", f"http://{ip}/").stdout.encode() == INDEX_HTML
    node.start_agent(PYTHON)
    assert agent(node).request("GET", "/v1/ipam") == before
    assert {e["id"]: e["state"] for e in agent(node).request("GET", "/v1/endpoint")} == endpoints_before
    assert endpoint_of(node, "app1")["networking"]["addressing"] == [{"ipv4": ip}]
    assert fetch(node, net, "app1").encode() == INDEX_HTML
    assert len(lxc_links(node)) == 2


def test_plugin_restart_keeps_containers_reachable(node: NetnsNode, net: str) -> None:
    run_app1(node, net)
    node.stop("podnet-docker")
    node.start_plugin(PYTHON)
    assert fetch(node, net, "app1").encode() == INDEX_HTML
    node.docker("rm", "-f", "app1")
    wait_for(lambda: lxc_links(node) == [], 5, "app1's veth to be deleted")


def test_dockerd_restart_leaves_state_consistent(node: NetnsNode, net: str) -> None:
    run_app1(node, net, "app1", "--restart", "always")
    node.stop("dockerd", timeout_s=30)
    node.start_dockerd()
    wait_for(
        lambda: node.docker("inspect", "-f", "{{.State.Running}}", "app1").stdout.strip() == "true",
        30,
        "app1 to be restarted by dockerd",
    )
    assert fetch(node, net, "app1").encode() == INDEX_HTML

    def consistent() -> bool:
        endpoints = agent(node).request("GET", "/v1/endpoint")
        owners = [a["owner"] for a in agent(node).request("GET", "/v1/ipam")["allocations"]]
        return len(endpoints) == 1 and len(lxc_links(node)) == 1 and len(owners) == 2

    wait_for(consistent, 20, "the agent to match dockerd after its restart (one endpoint, one veth, one IP)")


def test_exhaustion_and_agent_down_errors_reach_the_docker_cli() -> None:
    with docker_node("tiny", "--pod-cidr", "10.99.0.0/29") as tiny:
        tiny.docker("network", "create", "--driver", "podnet", "--ipam-driver", "podnet", "small")
        for i in range(5):  # a /29: 6 usable addresses, one is the router IP
            tiny.docker("run", "-d", "--name", f"c{i}", "--net", "small", IMAGE, "sleep", "300")
        full = tiny.docker("run", "--rm", "--net", "small", IMAGE, "sh", "-c", ":", check=False)
        assert full.returncode != 0
        assert "pod CIDR 10.99.0.0/29 is exhausted (6/6 in use)" in full.stderr, full.stderr
        assert "Traceback" not in full.stderr
        tiny.docker("rm", "-f", "c0")
        tiny.docker("run", "--rm", "--net", "small", IMAGE, "sh", "-c", ":")  # room again
        tiny.stop("podnet-agent")
        down = tiny.docker("run", "--rm", "--net", "small", IMAGE, "sh", "-c", ":", check=False)
        assert down.returncode != 0
        assert f"podnet agent is unreachable at unix://{tiny.agent_sock}" in down.stderr, down.stderr


def raw_post(path: str, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
    reply = unixhttp.request(path, "POST", method, body=body, host="x")
    return reply.status, json.loads(reply.body) if reply.body else None


def test_malformed_json_and_unknown_methods(node: NetnsNode) -> None:
    sock = str(node.plugin_dir / "podnet.sock")
    status, body = raw_post(sock, "/NetworkDriver.CreateNetwork", b"{not json")
    assert status == 400 and "is not valid JSON" in body["Err"]
    status, body = raw_post(sock, "/NetworkDriver.Frobnicate", b"{}")
    assert status == 404 and "unknown method /NetworkDriver.Frobnicate" in body["Err"]
    status, body = raw_post(sock, "/NetworkDriver.CreateEndpoint", b'{"NetworkID": 7}')
    assert status == 500 and "field EndpointID" in body["Err"]
    status, body = raw_post(sock, "/Plugin.Activate", b"")
    assert status == 200 and body == {"Implements": ["NetworkDriver", "IpamDriver"]}


def test_agent_api_rejects_bad_input_and_rolls_back(node: NetnsNode) -> None:
    client = agent(node)
    from podnet.api.client import AgentError

    with pytest.raises(AgentError) as err:
        client.endpoint_create(
            "rollback-test",
            {"addressing": {"ipv4": "10.20.0.77"}, "netns": "/run/netns/pn-nonexistent", "interface-name": "eth0"},
        )
    assert err.value.status == 400 and "network namespace /run/netns/pn-nonexistent does not exist" in str(err.value)
    assert lxc_links(node) == []
    assert "10.20.0.77" not in {a["ip"] for a in client.request("GET", "/v1/ipam")["allocations"]}
    with pytest.raises(AgentError, match="invalid endpoint id"):
        client.endpoint_get("bad id!")
    with pytest.raises(AgentError, match="missing query parameter owner"):
        client.request("POST", "/v1/ipam")
    with pytest.raises(AgentError, match=r"10\.30\.0\.1 is not in range of pod CIDR 10\.20\.0\.0/24"):
        client.ipam_allocate_ip("10.30.0.1", "x")


def test_docker_sdk_drives_the_same_flow(node: NetnsNode) -> None:
    sdk = docker.DockerClient(base_url=f"unix://{node.docker_sock}")
    ipam = docker.types.IPAMConfig(driver="podnet")
    network = sdk.networks.create("sdk-net", driver="podnet", ipam=ipam)
    try:
        app1 = sdk.containers.run(
            IMAGE,
            ["httpd", "-f", "-p", "80", "-h", "/www"],
            name="sdk-app1",
            network="sdk-net",
            labels={"id": "app1"},
            detach=True,
        )
        time.sleep(0.3)
        out = sdk.containers.run(IMAGE, ["wget", "-qO-", "http://sdk-app1/"], network="sdk-net", remove=True)
        assert out == INDEX_HTML
        app1.remove(force=True)
    finally:
        network.remove()
        sdk.close()
