"""The agent with a real store and API, the kernel faked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.agent.config import ConfigError, load_config
from podnet.agent.service import Agent
from podnet.api.client import AgentError
from podnet.api.models import EndpointChangeRequest
from podnet.datapath.names import host_ifname
from podnet.kvstore import open_store
from tests.agent_harness import RunningAgent, running_agent
from tests.fakes import FakeDatapath


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningAgent]:
    with running_agent(tmp_path, cluster_cidrs=["10.20.30.40/24", "50.60.70.80/24"], mask_size=26) as running:
        yield running


def create(env: RunningAgent, endpoint_id: str, **extra: object) -> dict[str, object]:
    ip = env.client.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]
    body = {"addressing": {"ipv4": ip}, **extra}
    result: dict[str, object] = env.client.endpoint_create(endpoint_id, body)
    return result


def test_single_node_takes_its_pod_cidr_from_the_cluster_pool(env: RunningAgent) -> None:
    node = env.client.request("GET", "/v1/node")
    assert node == {
        "name": "node1",
        "pod-cidrs": ["10.20.30.0/26"],
        "router-ip": "10.20.30.1",
        "cluster-pool": "10.20.30.0/24, 50.60.70.0/24 at /26",
    }
    config = env.client.request("GET", "/v1/config")
    assert config["notes"] == [
        "10.20.30.40/24 has host bits set; using its network 10.20.30.0/24",
        "50.60.70.80/24 has host bits set; using its network 50.60.70.0/24",
    ]


def test_ipam_allocation_matches_ciliums_shape(env: RunningAgent) -> None:
    reply = env.client.ipam_allocate("docker-ipam")
    assert reply["address"] == {"ipv4": "10.20.30.2"}
    assert reply["host-addressing"] == {"ipv4": {"ip": "10.20.30.1", "alloc-range": "10.20.30.0/26", "enabled": True}}
    assert reply["ipv4"]["gateway"] == "10.20.30.1" and reply["ipv4"]["cidrs"] == ["10.20.30.0/26"]


def test_endpoint_life_cycle_and_states(env: RunningAgent) -> None:
    ep = create(env, "ep1")
    assert ep["state"] == "waiting-for-identity"
    ip = ep["networking"]["addressing"][0]["ipv4"]  # type: ignore[index]
    owners = {a["ip"]: a for a in env.client.request("GET", "/v1/ipam")["allocations"]}
    assert owners[ip]["owner"] == "endpoint:ep1" and "expires-at" not in owners[ip]
    patched = env.client.endpoint_patch("ep1", {"labels": ["id=app1"], "container-name": "app1"})
    assert patched["state"] == "ready" and patched["labels"] == ["id=app1"]
    assert [x["state"] for x in patched["log"]] == ["waiting-for-identity", "ready"]
    with pytest.raises(AgentError) as err:
        env.client.endpoint_patch("ep1", {"addressing": {"ipv4": "10.20.30.9"}})
    assert err.value.status == 400 and "cannot change" in str(err.value)
    deleted = env.client.endpoint_delete("ep1")
    assert deleted["state"] == "disconnecting"
    # the runtime releases the IP next; until then it waits, expiring
    held = {a["ip"]: a for a in env.client.request("GET", "/v1/ipam")["allocations"]}[ip]
    assert held["owner"] == "released-endpoint:ep1" and held["expires-at"] > 0
    assert env.client.ipam_release(ip) == {"ip": ip, "released": True, "owner": "released-endpoint:ep1"}
    assert env.client.ipam_release(ip) == {"ip": ip, "released": False}
    with pytest.raises(AgentError) as err:
        env.client.endpoint_get("ep1")
    assert err.value.status == 404


def test_conflicts_and_bad_input(env: RunningAgent) -> None:
    create(env, "ep1")
    with pytest.raises(AgentError) as err:
        env.client.endpoint_create("ep1", {"addressing": {"ipv4": "10.20.30.9"}})
    assert err.value.status == 409 and "endpoint ep1 already exists" in str(err.value)
    ep1_ip = env.client.endpoint_get("ep1")["networking"]["addressing"][0]["ipv4"]
    with pytest.raises(AgentError, match="already used by endpoint ep1"):
        env.client.endpoint_create("ep2", {"addressing": {"ipv4": ep1_ip}})
    with pytest.raises(AgentError, match="in use by endpoint ep1; delete the endpoint first"):
        env.client.ipam_release(ep1_ip)
    with pytest.raises(AgentError, match="not in this node's pod CIDR 10.20.30.0/26"):
        env.client.endpoint_create("ep3", {"addressing": {"ipv4": "192.168.1.1"}})
    with pytest.raises(AgentError, match="addressing.ipv4: 'nope' is not an IPv4 address"):
        env.client.endpoint_create("ep3", {"addressing": {"ipv4": "nope"}})
    with pytest.raises(AgentError, match="surprise: Extra inputs are not permitted"):
        env.client.endpoint_create("ep3", {"addressing": {"ipv4": "10.20.30.9"}, "surprise": 1})
    with pytest.raises(AgentError, match="invalid Expiration header 'maybe'"):
        env.client.request("POST", "/v1/ipam", query={"owner": "x"}, headers={"Expiration": "maybe"})
    with pytest.raises(AgentError) as err:
        env.client.request("GET", "/v1/nothing")
    assert err.value.status == 404 and "no such API path: GET /v1/nothing" in str(err.value)
    with pytest.raises(AgentError) as err:
        env.client.request("DELETE", "/v1/healthz")
    assert err.value.status == 405


def test_datapath_failure_rolls_back_the_ip_claim(env: RunningAgent) -> None:
    ip = env.client.ipam_allocate("docker-ipam", expiration=True)["address"]["ipv4"]
    env.datapath.fail_next = "creating veth: boom"
    with pytest.raises(AgentError) as err:
        env.client.endpoint_create("ep1", {"addressing": {"ipv4": ip}})
    assert err.value.status == 500 and "boom" in str(err.value)
    held = {a["ip"]: a for a in env.client.request("GET", "/v1/ipam")["allocations"]}[ip]
    assert held["owner"] == "docker-ipam"  # still the runtime's, still expiring
    assert env.datapath.host_veths() == [] and env.client.request("GET", "/v1/endpoint") == []


def test_exhaustion_is_a_503_with_the_cidr_and_usage(tmp_path: Path) -> None:
    with running_agent(tmp_path, pod_cidr="10.99.0.0/30") as env:
        env.client.ipam_allocate("a")
        with pytest.raises(AgentError) as err:
            env.client.ipam_allocate("b")
        assert err.value.status == 503
        assert str(err.value).startswith("pod CIDR 10.99.0.0/30 is exhausted (2/2 in use): remove containers or pods")
        assert env.client.healthz()["ipam"]["state"] == "degraded"


def test_restart_restores_and_removes_leaks(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/state.db")
    datapath = FakeDatapath()
    config = load_config(None, {"node_name": "n1", "socket": str(tmp_path / "s"), "store": store.url})
    agent = Agent(config, store, datapath)
    agent.start()
    for name in ("keep", "veth-gone", "route-gone"):
        ip = agent.ipam_allocate("docker-ipam", expiration=True).address.ipv4
        assert ip is not None
        agent.endpoint_create(name, EndpointChangeRequest(addressing={"ipv4": ip}))  # type: ignore[arg-type]
    before = agent.ipam_state()
    # what a crash can leave: a veth nobody owns, an IP owned by a vanished endpoint
    datapath.links["lxcdeadbeef0000"] = 99
    agent.ipam.allocate_ip("10.20.0.200", "endpoint:vanished")
    # and what can vanish under a live endpoint
    del datapath.links[host_ifname("veth-gone")]
    gone_route = agent.endpoints.get("route-gone").networking.addressing[0].ipv4
    del datapath.routes[gone_route]  # type: ignore[arg-type]

    restarted = Agent(config, store, datapath)
    report = restarted.start()
    assert report.endpoints == 3
    assert report.not_ready == ["veth-gone"]
    assert report.leaked_veths_removed == ["lxcdeadbeef0000"]
    assert report.leaked_ips_released == ["10.20.0.200"]
    assert report.routes_restored == [gone_route]
    assert restarted.endpoints.get("veth-gone").state == "not-ready"
    assert restarted.ipam_state() == before
    assert restarted.endpoint_get("keep").state == "waiting-for-identity"


def test_config_errors_are_precise(tmp_path: Path) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text('cluster-cidrs = ["10.0.0.0"]\nmtu = 9\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(bad), {})
    text = str(err.value)
    assert text.startswith(f"invalid agent configuration ({bad}):")
    assert "cluster_cidrs: invalid cluster CIDR '10.0.0.0': missing prefix length" in text
    assert "mtu: Input should be greater than or equal to 576" in text
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="invalid agent configuration"):
        load_config(str(bad), {})
    with pytest.raises(ConfigError, match="cannot read agent configuration"):
        load_config(str(tmp_path / "missing.toml"), {})


def test_openapi_document_is_current() -> None:
    from podnet.api.openapi import render

    committed = Path(__file__).resolve().parents[2] / "docs" / "agent-openapi.json"
    assert committed.read_text() == render(), "regenerate with: python -m podnet.api.openapi > docs/agent-openapi.json"
    doc = json.loads(committed.read_text())
    assert {"/v1/healthz", "/v1/ipam", "/v1/ipam/{ip}", "/v1/endpoint/{id}"} <= set(doc["paths"])
    schema = doc["components"]["schemas"]["IPAMResponse"]
    assert "host-addressing" in schema["properties"]


def test_served_openapi_matches_the_models(env: RunningAgent) -> None:
    from podnet.api.openapi import build

    assert env.client.request("GET", "/v1/openapi.json") == json.loads(json.dumps(build()))


def test_cni_route_runs_the_plugin_for_the_compiled_binary(env: RunningAgent) -> None:
    import http.client
    import socket as socketlib

    def post(body: object) -> tuple[int, str | None, str]:
        conn = http.client.HTTPConnection("podnet")
        conn.sock = socketlib.socket(socketlib.AF_UNIX)
        conn.sock.connect(env.socket)
        conn.request("POST", "/v1/cni", json.dumps(body), {"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, reply.getheader("Podnet-CNI-Exit"), reply.read().decode()

    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "podnet", "agentSocket": env.socket})
    env_vars = {"CNI_COMMAND": "STATUS"}
    assert post({"env": env_vars, "stdin": conf})[:3] == (200, "0", "")
    add = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"}
    status, exit_code, text = post({"env": add, "stdin": "{not json"})
    assert (status, exit_code) == (200, "1") and json.loads(text)["code"] == 6  # the plugin's decoding error
    status, _, text = post({"env": {"PATH": "/bin"}, "stdin": conf})
    assert status == 400 and "only CNI_* variables are forwarded, not PATH" in text


def test_policy_selects_endpoints_by_identity_and_reaches_the_datapath(env: RunningAgent) -> None:
    app1 = create(env, "ep-app1", labels=["id=app1"])
    app2 = create(env, "ep-app2", labels=["id=app2"])
    ip1 = app1["networking"]["addressing"][0]["ipv4"]  # type: ignore[index]
    ip2 = app2["networking"]["addressing"][0]["ipv4"]  # type: ignore[index]
    assert env.datapath.policy_endpoints == {ip1: (app1["identity"], False), ip2: (app2["identity"], False)}
    rule = {
        "name": "app1-from-app2",
        "endpointSelector": {"matchLabels": {"id": "app1"}},
        "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}], "toPorts": [{"ports": [{"port": "80"}]}]}],
    }
    state = env.client.request("PUT", "/v1/policy", body=rule)
    assert state["message"] == "imported 1 rule(s); 1 endpoint(s) of this node under policy: ep-app1"
    assert state["enforced"] is False  # the fake datapath is "routes"
    assert env.datapath.policy_endpoints[ip1] == (app1["identity"], True)
    assert env.datapath.policy_entries == {
        (app2["identity"], app1["identity"], 6, 80),
        (app2["identity"], app1["identity"], 17, 80),
    }
    assert [r["name"] for r in env.client.request("GET", "/v1/policy")["rules"]] == ["app1-from-app2"]
    # relabelling app2 takes it out of the rule
    relabelled = env.client.endpoint_patch("ep-app2", {"labels": ["id=other"]})
    assert relabelled["identity"] != app2["identity"]
    assert env.datapath.policy_endpoints[ip2] == (relabelled["identity"], False)
    assert relabelled["identity"] not in {src for src, *_ in env.datapath.policy_entries}
    assert env.client.request("DELETE", "/v1/policy/app1-from-app2")["deleted"] == ["app1-from-app2"]
    assert env.datapath.policy_endpoints[ip1] == (app1["identity"], False)


def test_policy_api_errors(env: RunningAgent) -> None:
    with pytest.raises(AgentError) as err:
        env.client.request("DELETE", "/v1/policy/nope")
    assert err.value.status == 404 and "policy rule nope not found" in str(err.value)
    with pytest.raises(AgentError) as err:
        env.client.request("PUT", "/v1/policy", body=[])
    assert err.value.status == 400 and "non-empty JSON array" in str(err.value)
    dup = {"name": "a", "endpointSelector": {}}
    with pytest.raises(AgentError) as err:
        env.client.request("PUT", "/v1/policy", body=[dup, dup])
    assert err.value.status == 400 and "repeated: a" in str(err.value)
    with pytest.raises(AgentError) as err:
        env.client.request("GET", "/v1/bpf")
    assert err.value.status == 400 and "runs the routes datapath, which has no BPF maps" in str(err.value)
    with pytest.raises(AgentError) as err:
        list(env.client.stream("/v1/monitor", query={"type": "nope"}))
    assert "invalid type 'nope'" in str(err.value)
    assert env.client.request("GET", "/v1/policy")["rules"] == []
