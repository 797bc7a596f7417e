"""Restore never destroys, and one bad record never stops a node: unknown fields ignored, the unreadable quarantined."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from podnet.agent.config import AgentConfig, load_config
from podnet.agent.service import Agent
from podnet.api.client import AgentError
from podnet.api.models import EndpointChangeRequest
from podnet.cli import main as cli
from podnet.datapath.names import host_ifname
from podnet.errors import PodnetError
from podnet.identity import encode_labels
from podnet.ipam import ClusterPool
from podnet.kvstore import KVStore, keys, open_store
from podnet.operator.reconcile import Operator
from podnet.operator.registry import node_status, register_node
from tests.agent_harness import running_agent
from tests.fakes import FakeDatapath

POD_CIDR = "10.99.0.0/29"  # 10.99.0.1 the router, .2-.6 for pods


@dataclass
class Node:
    store: KVStore
    datapath: FakeDatapath
    config: AgentConfig
    agent: Agent

    def restart(self) -> Agent:
        self.agent = Agent(self.config, self.store, self.datapath)
        self.agent.start()
        return self.agent

    def endpoint(self, endpoint_id: str, labels: list[str] | None = None) -> str:
        ip = self.agent.ipam_allocate("docker-ipam", expiration=True).address.ipv4
        assert ip is not None
        request = EndpointChangeRequest.model_validate({"addressing": {"ipv4": ip}, "labels": labels})
        self.agent.endpoint_create(endpoint_id, request)
        return ip

    def edit(self, key: str, change: dict[str, object]) -> None:
        entry = self.store.get(key)
        assert entry is not None
        self.store.put(key, json.dumps({**json.loads(entry.value), **change}))

    def owners(self) -> dict[str, str]:
        return {str(a.ip): a.owner for a in self.agent.ipam.allocations()}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    store = open_store(f"sqlite://{tmp_path}/state.db")
    config = load_config(None, {"node_name": "n1", "socket": str(tmp_path / "s"), "store": store.url})
    config = config.model_copy(update={"pod_cidr": POD_CIDR})
    datapath = FakeDatapath()
    agent = Agent(config, store, datapath)
    agent.start()
    yield Node(store, datapath, config, agent)
    store.close()


def test_endpoint_record_with_an_unknown_field_keeps_its_veth_and_ip(node: Node) -> None:
    ip = node.endpoint("ep1")
    key = keys.endpoint("n1", "ep1")
    node.edit(key, {"bandwidth": {"egress": "10M"}})  # as a newer version could write
    report = node.restart().last_restore
    assert report.leaked_veths_removed == [] and report.leaked_ips_released == []
    assert host_ifname("ep1") in node.datapath.links
    assert node.owners()[ip] == "endpoint:ep1"
    assert node.agent.healthz().quarantined == []
    # never handed to another pod, and the field survives the agent's own writes
    handed = {node.agent.ipam_allocate(f"p{i}").address.ipv4 for i in range(4)}
    assert ip not in handed
    node.agent.endpoint_patch("ep1", EndpointChangeRequest.model_validate({"labels": ["id=app1"]}))
    stored = json.loads(node.store.get(key).value)  # type: ignore[union-attr]
    assert stored["bandwidth"] == {"egress": "10M"} and stored["labels"] == ["id=app1"]


def test_endpoint_record_that_cannot_be_read_is_quarantined_not_destroyed(node: Node) -> None:
    ip = node.endpoint("ep1", ["id=app1"])
    key = keys.endpoint("n1", "ep1")
    node.edit(key, {"identity": "two hundred"})  # a non-integer identity
    before = node.store.get(key)
    report = node.restart().last_restore
    assert report.leaked_veths_removed == [] and report.leaked_ips_released == []
    assert report.quarantined == [key]
    assert host_ifname("ep1") in node.datapath.links and node.owners()[ip] == "endpoint:ep1"
    [quarantined] = node.agent.healthz().quarantined
    assert quarantined.key == key and "identity" in quarantined.reason
    node.agent.gc()  # periodic leak collection spares it too
    assert host_ifname("ep1") in node.datapath.links
    assert node.store.get(key) == before  # kept exactly as it was
    with pytest.raises(PodnetError) as caught:  # its id is not reused meanwhile
        node.endpoint("ep1")
    assert caught.value.reason == "quarantined"
    # repaired by hand: back at the next collection
    node.edit(key, {"identity": None})
    node.agent.gc()
    assert node.agent.healthz().quarantined == [] and node.agent.endpoint_get("ep1").id == "ep1"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"ip": "10.99.0.5", "owner": "docker-ipam", "expires_at": "soon"}, "a field has a wrong value"),
        ({"owner": "docker-ipam", "expires_at": None}, "it has no 'ip'"),
    ],
    ids=["expires-soon", "no-ip"],
)
def test_unreadable_allocation_keeps_its_ip_reserved(
    node: Node, record: dict[str, object], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = keys.pod_ip(node.agent.ipam.pod_cidr, "10.99.0.5")
    node.store.put(key, json.dumps(record))
    agent = node.restart()  # the old code: a traceback, the agent never starts
    [quarantined] = agent.healthz().quarantined
    assert quarantined.key == key and quarantined.reason.startswith(reason)
    assert agent.last_restore.leaked_ips_released == []
    handed = {agent.ipam_allocate(f"p{i}").address.ipv4 for i in range(4)}
    assert handed == {"10.99.0.2", "10.99.0.3", "10.99.0.4", "10.99.0.6"}  # never .5
    agent.gc()  # never expires either
    with pytest.raises(PodnetError) as caught:  # nor released by hand
        agent.ipam_release("10.99.0.5")
    assert caught.value.reason == "quarantined"
    assert json.loads(node.store.get(key).value) == record  # type: ignore[union-attr]


def test_quarantined_records_are_listed_by_healthz_and_podnet_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_agent(tmp_path, pod_cidr=POD_CIDR):
        pass
    with open_store(f"sqlite://{tmp_path}/state.db") as store:
        key = "podnet/ipam/pods/10.99.0.0_29/10.99.0.4"
        store.put(key, b"{not json")
    with running_agent(tmp_path, pod_cidr=POD_CIDR) as env:
        health = env.client.healthz()
        assert health["state"] == "degraded"
        assert [q["key"] for q in health["quarantined"]] == [key]
        assert health["quarantined"][0]["reason"].startswith("not valid JSON")
        assert cli(["status", "--socket", env.socket]) == 0
        out = capsys.readouterr().out
        assert "quarantined" in out and key in out and "not valid JSON" in out
        with pytest.raises(AgentError) as caught:
            env.client.ipam_allocate_ip("10.99.0.4", "someone")
        assert (caught.value.status, caught.value.reason) == (409, "quarantined")


def test_bad_node_cidr_record_stops_no_agent_and_is_never_handed_out(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/state.db")
    key = keys.node_cidr(ClusterPool(["10.30.0.0/24"], 26).allocate())  # 10.30.0.0/26
    store.put(key, json.dumps({"node": "gone"}))  # no cidr
    config = load_config(
        None,
        {
            "node_name": "n1",
            "socket": str(tmp_path / "s"),
            "store": store.url,
            "cluster_cidrs": ["10.30.0.0/24"],
            "mask_size": 26,
        },
    )
    agent = Agent(config, store, FakeDatapath())  # the old code: InvalidCIDRError, every agent of the cluster
    agent.start()
    assert agent.pod_cidr == "10.30.0.64/26"
    assert [(q.key, q.reason) for q in agent.healthz().quarantined] == [
        (key, "invalid its cidr None: expected a string like 10.0.0.0/16")
    ]
    operator = Operator(store, ClusterPool(["10.30.0.0/24"], 26))
    assert key in operator.pool.quarantine
    assert {str(operator.pool.allocate(n)) for n in ("n2", "n3")} == {"10.30.0.128/26", "10.30.0.192/26"}
    assert json.loads(store.get(key).value) == {"node": "gone"}  # type: ignore[union-attr]
    store.close()


def test_node_registrations_with_unknown_fields_or_unreadable_stop_no_operator(tmp_path: Path) -> None:
    with open_store(f"sqlite://{tmp_path}/state.db") as store:
        register_node(store, "n1", "10.0.0.11")
        entry = store.get(keys.cluster_node("n1"))
        assert entry is not None
        store.put(entry.key, json.dumps({**json.loads(entry.value), "zone": "rack-2"}))  # a newer version's field
        store.put(keys.cluster_node("n2"), b"{not json")
        store.put(keys.cluster_status("n3"), json.dumps({"name": "n3", "pod_cidrs": "10.30.0.0/26"}))
        outcome = Operator(store, ClusterPool(["10.30.0.0/24"], 26)).reconcile()  # the old code: a traceback
        assert outcome.allocated == {"n1": "10.30.0.0/26"}
        status = node_status(store, "n1")
        assert status is not None and status.pod_cidrs == ["10.30.0.0/26"]
        assert register_node(store, "n1", "10.0.0.11").node_ip == "10.0.0.11"


def test_unreadable_identity_records_are_listed_and_stop_nothing(node: Node) -> None:
    node.endpoint("ep1", ["id=app1"])
    node.store.put(keys.identity_by_id(900), b"{not json")
    node.store.put(keys.IDENTITY_IDS + "nine-hundred", b'["id=x"]')
    bad_labels = keys.identity_by_labelset(encode_labels(["id=bad"]))
    node.store.put(bad_labels, b"two hundred")  # a non-integer identity
    agent = node.restart()
    assert agent.endpoint_get("ep1").state == "ready"
    assert {q.key for q in agent.healthz().quarantined} == {
        keys.identity_by_id(900),
        keys.IDENTITY_IDS + "nine-hundred",
    }
    with pytest.raises(PodnetError) as caught:  # the old code: a 500 (internal), every time
        node.endpoint("ep2", ["id=bad"])
    assert caught.value.reason == "quarantined" and bad_labels in str(caught.value)
    assert bad_labels in {q.key for q in agent.healthz().quarantined}
    assert node.store.get(bad_labels).value == b"two hundred"  # type: ignore[union-attr]
    assert "ep2" not in {e.id for e in agent.endpoint_list()} and host_ifname("ep2") not in node.datapath.links
    node.store.delete(bad_labels)  # repaired by hand: usable at once, off the list at the next refresh
    node.endpoint("ep2", ["id=bad"])
    agent.gc()
    assert bad_labels not in {q.key for q in agent.healthz().quarantined}
