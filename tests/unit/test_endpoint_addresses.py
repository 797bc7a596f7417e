"""An endpoint's address is a pod's: never the router IP, the network or broadcast address, or outside the pod CIDR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podnet.agent.config import load_config
from podnet.agent.service import Agent
from podnet.api.client import AgentError
from podnet.api.models import EndpointChangeRequest
from podnet.datapath.names import host_ifname
from podnet.ipam import DurableNodeAllocator, IPAMError, NodeAllocator, NotInRangeError
from podnet.kvstore import keys, open_store
from tests.agent_harness import running_agent
from tests.fakes import FakeDatapath

POD_CIDR = "10.99.0.0/28"


@pytest.mark.parametrize(
    ("ip", "reason", "says"),
    [
        ("10.99.0.1", "reserved-address", "is the node's router IP (every pod's gateway) in pod CIDR 10.99.0.0/28"),
        ("10.99.0.0", "reserved-address", "is the network address of pod CIDR 10.99.0.0/28"),
        ("10.99.0.15", "reserved-address", "is the broadcast address of pod CIDR 10.99.0.0/28"),
        ("10.99.0.16", "not-in-range", "is not in this node's pod CIDR 10.99.0.0/28"),
    ],
)
def test_router_ip_cannot_be_stolen_by_an_endpoint(tmp_path: Path, ip: str, reason: str, says: str) -> None:
    with running_agent(tmp_path, pod_cidr=POD_CIDR) as env:
        with pytest.raises(AgentError) as caught:
            env.client.endpoint_create("x", {"addressing": {"ipv4": ip}})
        assert (caught.value.status, caught.value.reason) == (400, reason)
        assert f"{ip} {says}" in str(caught.value)
        owners = {a["ip"]: a["owner"] for a in env.client.request("GET", "/v1/ipam")["allocations"]}
        assert owners == {"10.99.0.1": "router"}
        assert env.client.request("GET", "/v1/endpoint") == [] and env.datapath.host_veths() == []
    # the store still starts an agent
    with running_agent(tmp_path, pod_cidr=POD_CIDR) as env:
        assert env.client.healthz()["state"] == "ok"


def test_reassign_and_claim_never_take_the_router_ip(tmp_path: Path) -> None:
    mem = NodeAllocator(POD_CIDR)
    with pytest.raises(IPAMError, match="10.99.0.1 is the node's router IP") as caught:
        mem.reassign("10.99.0.1", "endpoint:x")
    assert caught.value.reason == "reserved-address"
    with open_store(f"sqlite://{tmp_path}/state.db") as store:
        durable = DurableNodeAllocator(store, POD_CIDR)
        with pytest.raises(IPAMError, match="10.99.0.1 is the node's router IP") as caught:
            durable.claim("10.99.0.1", "endpoint:x")
        assert caught.value.reason == "reserved-address"
        for outside in ("10.99.0.0", "10.99.0.15", "10.99.0.16"):
            with pytest.raises(NotInRangeError):
                durable.claim(outside, "endpoint:x")
        held = durable.get("10.99.0.1")
        assert held is not None and held.owner == "router"
        entry = store.get(keys.pod_ip(durable.pod_cidr, "10.99.0.1"))
        assert entry is not None and json.loads(entry.value)["owner"] == "router"


def test_a_store_where_the_router_ip_was_stolen_still_starts_the_agent(tmp_path: Path) -> None:
    """What the old code left: the router IP's allocation owned by endpoint x, x's record with the router IP."""
    store = open_store(f"sqlite://{tmp_path}/state.db")
    datapath = FakeDatapath()
    config = load_config(
        None, {"node_name": "n1", "socket": str(tmp_path / "s"), "store": store.url, "pod_cidr": POD_CIDR}
    )
    agent = Agent(config, store, datapath)
    agent.start()
    ip = agent.ipam_allocate("docker-ipam", expiration=True).address.ipv4
    assert ip is not None
    agent.endpoint_create("good", _request(ip))
    # forge the stolen state
    good = json.loads(store.get(keys.endpoint("n1", "good")).value)  # type: ignore[union-attr]
    stolen = {**good, "id": "x"}
    stolen["networking"] = {**good["networking"], "addressing": [{"ipv4": "10.99.0.1"}]}
    store.put(keys.endpoint("n1", "x"), json.dumps(stolen))
    router_key = keys.pod_ip(agent.ipam.pod_cidr, "10.99.0.1")
    store.put(router_key, json.dumps({"ip": "10.99.0.1", "owner": "endpoint:x", "expires_at": None}))
    datapath.links[host_ifname("x")] = 77

    restarted = Agent(config, store, datapath)
    report = restarted.start()  # the old code: AlreadyAllocatedError, the agent never starts again
    assert report.endpoints == 1 and report.leaked_veths_removed == []
    health = restarted.healthz()
    assert health.state == "degraded"
    assert {(q.key, q.reason) for q in health.quarantined} == {
        (router_key, "it gives the node's router IP 10.99.0.1 to 'endpoint:x'; the router keeps it"),
        (
            keys.endpoint("n1", "x"),
            "its address cannot be a pod's: 10.99.0.1 is the node's router IP (every pod's gateway) "
            "in pod CIDR 10.99.0.0/28: it is never a pod's",
        ),
    }
    assert restarted.ipam.get("10.99.0.1").owner == "router"  # type: ignore[union-attr]
    assert host_ifname("x") in datapath.links  # kept, never destroyed
    assert json.loads(store.get(router_key).value)["owner"] == "endpoint:x"  # type: ignore[union-attr]
    assert [e.id for e in restarted.endpoint_list()] == ["good"]


def _request(ip: str) -> EndpointChangeRequest:
    return EndpointChangeRequest.model_validate({"addressing": {"ipv4": ip}})


def test_a_runtimes_del_waits_for_the_veth_and_dockers_delete_endpoint_does_not(tmp_path: Path) -> None:
    """A runtime's DEL (release_ip: CNI, the reconciler) returns once the pod's interface is gone, since it
    may ADD the same container at once; docker's DeleteEndpoint, which follows the sandbox's end, does not wait."""
    with running_agent(tmp_path, pod_cidr=POD_CIDR) as env:
        env.client.endpoint_create("cni1", {"addressing": {"ipv4": "10.99.0.2"}})
        env.client.endpoint_create("docker1", {"addressing": {"ipv4": "10.99.0.3"}})
        env.client.endpoint_delete("docker1")
        assert env.datapath.waited == []
        env.client.endpoint_delete("cni1", release_ip=True)
        assert env.datapath.waited == ["cni1"]
