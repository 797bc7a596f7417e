"""Replay every request dockerd 20.10 sent to a remote driver; assert what libnetwork needs back.

The agent is real (SQLite store); only the kernel is faked. Ids and addresses
that the recording plugin chose are mapped to the ones podnet hands out.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.datapath.names import host_ifname, temp_ifname
from podnet.docker.libnetwork import Handlers, PluginError, method_table
from tests.agent_harness import RunningAgent, running_agent

HERE = Path(__file__).resolve()
SHARED = HERE.parents[3] / "shared" / "fixtures" / "libnetwork" / "dockerd-20.10-requests.jsonl"
VENDORED = HERE.parents[1] / "fixtures" / "libnetwork" / "dockerd-20.10-requests.jsonl"
FIXTURE = SHARED if SHARED.exists() else VENDORED

# What podnet refuses in the recorded flows, and why; the rest of such a flow is
# never sent by dockerd once the call fails.
EXPECTED_ERRORS = {
    (
        "create probe-err2 (subnet given, --gateway given, --opt, --label)",
        "/IpamDriver.RequestPool",
    ): "--subnet 10.214.0.0/16 does not fit this node's pod CIDR 10.20.0.0/24",
    (
        "host: run -d app1 with -p 8080:80 --expose 81 --mac-address --network-alias",
        "/NetworkDriver.CreateEndpoint",
    ): "podnet does not publish ports",
}
DEPENDS_ON_FAILED = {
    "run with --ip 10.214.1.77 on probe-err2": "create probe-err2 (subnet given, --gateway given, --opt, --label)"
}


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, cluster_cidrs=["10.20.0.0/16"], mask_size=24) as running:
        yield running


class Replay:
    def __init__(self, env: RunningAgent):
        self.env = env
        self.methods = method_table(Handlers(env.client))
        self.pools: dict[str, str] = {}
        self.addresses: dict[str, str] = {}
        self.pending: list[str] = []
        self.gateway = ""

    def translate(self, path: str, body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        body = json.loads(json.dumps(body))
        if "PoolID" in body:
            body["PoolID"] = self.pools.get(body["PoolID"], body["PoolID"])
        if body.get("AddressSpace") == "probe-local":
            body["AddressSpace"] = "podnet-local"
        for data in body.get("IPv4Data") or []:
            data.update(AddressSpace="podnet-local", Pool=self.env.agent.pod_cidr, Gateway=f"{self.gateway}/32")
        if path == "/NetworkDriver.CreateEndpoint":
            recorded = body["Interface"]["Address"].split("/")[0]
            ours = self.pending.pop(0)
            self.addresses[recorded] = ours
            body["Interface"]["Address"] = f"{ours}/32"
        if path == "/IpamDriver.ReleaseAddress":
            recorded = body["Address"]
            body["Address"] = self.addresses.get(recorded, self.gateway if recorded.endswith(".1") else recorded)
        return body

    def check(self, path: str, recorded: Any, body: Any, reply: dict[str, Any]) -> None:
        agent = self.env.agent
        if path == "/Plugin.Activate":
            assert reply == {"Implements": ["NetworkDriver", "IpamDriver"]}
        elif path == "/NetworkDriver.GetCapabilities":
            assert reply == {"Scope": "local", "ConnectivityScope": "local"}
        elif path == "/IpamDriver.GetCapabilities":
            assert reply["RequiresMACAddress"] is False
        elif path == "/IpamDriver.GetDefaultAddressSpaces":
            assert set(reply) == {"LocalDefaultAddressSpace", "GlobalDefaultAddressSpace"}
        elif path == "/IpamDriver.RequestPool":
            # no --subnet: 0.0.0.0/0 (dockerd's overlap check skips it), the pod CIDR in the PoolID
            assert reply["Pool"] == (body.get("Pool") or "0.0.0.0/0")
            assert reply["PoolID"] == f"podnet:{body.get('Pool') or agent.pod_cidr}"
            assert reply["Data"] == {"com.docker.network.gateway": f"{agent.router_ip}/32"}
            self.pools[f"probe-{recorded.get('Pool') or '10.213.0.0/16'}"] = reply["PoolID"]
            self.gateway = agent.router_ip
        elif path == "/IpamDriver.RequestAddress":
            address = ipaddress.ip_interface(reply["Address"])
            assert address.network.prefixlen == 32
            if (body.get("Options") or {}).get("RequestAddressType") == "com.docker.network.gateway":
                assert str(address.ip) == agent.router_ip
            else:
                assert address.ip in agent.ipam.pod_cidr
                held = agent.ipam.get(address.ip)
                assert held is not None and held.owner == "docker-ipam" and held.expires_at is not None
                self.pending.append(str(address.ip))
        elif path == "/NetworkDriver.CreateEndpoint":
            assert reply == {"Interface": {}}  # libnetwork supplied the address
            ip = body["Interface"]["Address"].split("/")[0]
            endpoint = agent.endpoints.get(body["EndpointID"])
            assert endpoint.networking.addressing[0].ipv4 == ip
            assert agent.ipam.get(ip).owner == f"endpoint:{body['EndpointID']}"  # type: ignore[union-attr]
            assert self.env.datapath.routes[ip] == host_ifname(body["EndpointID"])
        elif path == "/NetworkDriver.Join":
            assert reply["InterfaceName"] == {"SrcName": temp_ifname(body["EndpointID"]), "DstPrefix": "eth"}
            router = agent.router_ip
            assert reply["StaticRoutes"] == [
                {"Destination": f"{router}/32", "RouteType": 1},
                {"Destination": "0.0.0.0/0", "RouteType": 0, "NextHop": router},
            ]
            assert reply["DisableGatewayService"] is True and reply["Gateway"] == ""
            assert temp_ifname(body["EndpointID"]) in self.env.datapath.links  # the veth dockerd will move
        elif path == "/NetworkDriver.EndpointOperInfo":
            assert reply["Value"]["podnet.endpoint"] == body["EndpointID"]
        elif path == "/NetworkDriver.DeleteEndpoint":
            assert reply == {}
            assert agent.endpoints.find(body["EndpointID"]) is None
            assert host_ifname(body["EndpointID"]) not in self.env.datapath.links
        elif path == "/IpamDriver.ReleaseAddress":
            assert reply == {}
            if body["Address"] != agent.router_ip:
                assert agent.ipam.get(body["Address"]) is None
        else:
            assert reply == {}, (path, reply)


def test_replay_every_recorded_request(env: RunningAgent) -> None:
    replay = Replay(env)
    failed_flows: set[str] = set()
    seen_paths = set()
    for record in load():
        flow, path = record["flow"], record["path"]
        if flow in failed_flows or DEPENDS_ON_FAILED.get(flow) in failed_flows:
            continue
        body = replay.translate(path, record["request"])
        handler = replay.methods[path]
        expected = EXPECTED_ERRORS.get((flow, path))
        if expected:
            with pytest.raises(PluginError) as err:
                handler(body)
            assert expected in str(err.value)
            failed_flows.add(flow)
            continue
        replay.check(path, record["request"], body, handler(body))
        seen_paths.add(path)
    assert len(seen_paths) >= 17
    # Nothing left behind but the IP of the refused `-p` container, expiring on its own.
    assert env.agent.endpoints.list() == []
    assert env.datapath.host_veths() == []
    leftovers = [a for a in env.agent.ipam.allocations() if a.owner != "router"]
    assert [(a.owner, a.expires_at is not None) for a in leftovers] == [("docker-ipam", True)]
    assert env.agent.network_list() == []


def test_every_dockerd_method_is_answered(env: RunningAgent) -> None:
    methods = method_table(Handlers(env.client))
    assert {r["path"] for r in load()} <= set(methods)
    for path in (
        "/NetworkDriver.DiscoverNew",
        "/NetworkDriver.DiscoverDelete",
        "/NetworkDriver.ProgramExternalConnectivity",
    ):
        assert methods[path]({}) == {}
    with pytest.raises(PluginError, match="swarm network allocation is not supported"):
        methods["/NetworkDriver.AllocateNetwork"]({})


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/IpamDriver.RequestPool", {"AddressSpace": "podnet-local", "Pool": "", "V6": True}, "IPv4 only"),
        (
            "/IpamDriver.RequestPool",
            {"Pool": "10.20.0.0/24", "SubPool": "10.30.0.0/24"},
            "--ip-range 10.30.0.0/24 is not inside --subnet",
        ),
        ("/IpamDriver.RequestAddress", {"PoolID": "someone-else", "Address": ""}, "unknown PoolID 'someone-else'"),
        ("/IpamDriver.RequestAddress", {"PoolID": "podnet:10.20.0.0/24", "Address": "x"}, "invalid --ip 'x'"),
        (
            "/IpamDriver.RequestAddress",
            {
                "PoolID": "podnet:10.20.0.0/24",
                "Address": "10.20.0.9",
                "Options": {"RequestAddressType": "com.docker.network.gateway"},
            },
            "use --gateway 10.20.0.1 or omit it",
        ),
        ("/NetworkDriver.CreateNetwork", {"NetworkID": "n", "IPv4Data": []}, "exactly one IPv4 pool, got 0"),
        (
            "/NetworkDriver.CreateNetwork",
            {"NetworkID": "n", "Options": {"com.docker.network.enable_ipv6": True}, "IPv4Data": []},
            "IPv4 only",
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            {"NetworkID": "n", "EndpointID": "e", "Interface": {}},
            "without an IPv4 address",
        ),
        ("/NetworkDriver.CreateEndpoint", ["not", "an", "object"], "must be a JSON object"),
        ("/NetworkDriver.EndpointOperInfo", {"EndpointID": "unknown-endpoint"}, "endpoint unknown-endpoint not found"),
    ],
)
def test_bad_requests_get_actionable_errors(env: RunningAgent, path: str, body: Any, message: str) -> None:
    with pytest.raises(PluginError) as err:
        method_table(Handlers(env.client))[path](body)
    assert message in str(err.value)


def test_exhaustion_message_names_the_cidr_and_usage(tmp_path: Path) -> None:
    with running_agent(tmp_path, pod_cidr="10.99.0.0/30") as env:
        methods = method_table(Handlers(env.client))
        pool = methods["/IpamDriver.RequestPool"]({"AddressSpace": "podnet-local", "Pool": ""})["PoolID"]
        methods["/IpamDriver.RequestAddress"]({"PoolID": pool, "Address": ""})
        with pytest.raises(PluginError) as err:
            methods["/IpamDriver.RequestAddress"]({"PoolID": pool, "Address": ""})
        assert "pod CIDR 10.99.0.0/30 is exhausted (2/2 in use)" in str(err.value)


def test_unreachable_agent_names_the_socket(tmp_path: Path) -> None:
    from podnet.api.client import AgentClient, AgentUnreachableError

    handlers = Handlers(AgentClient(str(tmp_path / "nope.sock")))
    with pytest.raises(AgentUnreachableError, match=r"podnet agent is unreachable at unix://.*nope\.sock"):
        handlers.request_pool({"Pool": ""})
