"""Identities: label-set keys that cannot collide (property), collection, bounded caches, on SQLite;
through a real agent: policy never admits an impostor, relabelling leaves no identity behind."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.identity import IdentityAllocator, encode_labels, security_labels
from podnet.kvstore import KVStore
from podnet.kvstore.sqlite import SQLiteStore
from tests.agent_harness import running_agent
from tests.identity_contract import IdentityStoreContract, Version1Agent

LABEL_SETS = st.lists(st.text(max_size=12), max_size=5)


class TestIdentitiesOnSQLite(IdentityStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[KVStore]:
        with SQLiteStore(tmp_path / "state.db") as s:
            yield s


@given(LABEL_SETS, LABEL_SETS)
def test_distinct_label_sets_never_share_a_key(a: list[str], b: list[str]) -> None:
    key_a, key_b = encode_labels(security_labels(a)), encode_labels(security_labels(b))
    assert (key_a == key_b) == (set(security_labels(a)) == set(security_labels(b)))
    assert json.loads(key_a) == security_labels(a)  # the key decodes back to the label set
    assert key_a.isascii()


@given(st.lists(LABEL_SETS, min_size=2, max_size=8))
@settings(max_examples=40, deadline=None)
def test_distinct_label_sets_never_share_an_identity(label_sets: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "s.db") as store:
        ids = IdentityAllocator(store, "node1")
        numbers = {tuple(security_labels(labels)): ids.identity_for(labels) for labels in label_sets}
        assert len(set(numbers.values())) == len(numbers)
        stored = ids.all()
        assert all(stored[n] == list(labels) for labels, n in numbers.items())


def test_label_cache_is_bounded(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        ids = IdentityAllocator(store, "node1", cache_size=8)
        numbers = [ids.identity_for([f"id=v{i}"]) for i in range(50)]
        assert ids.cached == 8
        ids.release_unused({numbers[-1]})
        assert ids.held == {numbers[-1]}
        assert ids.identity_for(["id=v0"]) == numbers[0]  # forgotten, read again


def test_policy_for_a_label_never_admits_one_containing_a_semicolon(tmp_path: Path) -> None:
    with running_agent(tmp_path, pod_cidr="10.60.0.0/24") as env:

        def endpoint(name: str, labels: list[str]) -> dict[str, object]:
            ip = env.client.ipam_allocate(f"cni/{name}")["ipv4"]["ip"]
            created: dict[str, object] = env.client.endpoint_create(
                name, {"addressing": {"ipv4": ip}, "labels": labels}
            )
            return created

        app1 = endpoint("app1", ["id=app1"])
        app2 = endpoint("app2", ["id=app2", "role=x"])
        impostor = endpoint("impostor", ["id=app2;role=x"])  # one docker label
        rule = {
            "name": "app2-to-app1",
            "endpointSelector": {"matchLabels": {"id": "app1"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}]}],
        }
        env.client.request("PUT", "/v1/policy", body=[rule])
        assert impostor["identity"] != app2["identity"]
        sources = {src for src, dst, *_ in env.datapath.policy_entries if dst == app1["identity"]}
        assert sources == {app2["identity"]}


def test_relabelling_an_endpoint_leaves_only_the_identity_in_use(tmp_path: Path) -> None:
    with running_agent(tmp_path, pod_cidr="10.60.0.0/24", identity_gc_grace_s=0, identity_gc_interval_s=0.001) as env:
        ip = env.client.ipam_allocate("cni/pod")["ipv4"]["ip"]
        env.client.endpoint_create("ep", {"addressing": {"ipv4": ip}, "labels": ["id=v0"]})
        for i in range(1, 200):
            current = env.client.endpoint_patch("ep", {"labels": [f"id=v{i}"]})["identity"]
        env.agent.gc()
        identities = [i for i in env.client.request("GET", "/v1/identity") if not i["reserved"]]
        assert identities == [{"id": current, "labels": ["id=v199"], "reserved": False}]
        assert env.agent.identities.allocator.held == {current}
        env.client.endpoint_delete("ep", release_ip=True)
        env.agent.gc()
        assert env.agent.identities.allocator.held == set()
        env.client.endpoint_create("ep2", {"addressing": {"ipv4": ip}, "labels": ["id=v0"]})
        env.agent.gc()
        identities = [i for i in env.client.request("GET", "/v1/identity") if not i["reserved"]]
        assert [i["id"] for i in identities] == [current + 1]  # v199's, the highest, went once it was not


def test_restore_gives_an_endpoint_with_a_collided_version1_identity_its_own(tmp_path: Path) -> None:
    """Upgrade: version 1 gave ["id=app2;role=x"] the identity of ["id=app2", "role=x"]."""
    store = f"sqlite://{tmp_path}/state.db"
    with running_agent(tmp_path, pod_cidr="10.60.0.0/24") as env:
        real = env.client.endpoint_create(
            "app2", {"addressing": {"ipv4": "10.60.0.2"}, "labels": ["id=app2", "role=x"]}
        )["identity"]
        env.client.endpoint_create("impostor", {"addressing": {"ipv4": "10.60.0.3"}, "labels": ["id=app2;role=x"]})
        record = env.agent.endpoints.get("impostor").model_copy(update={"identity": real})
        env.agent.endpoints.save(record)  # as version 1 stored it
    with SQLiteStore(store.removeprefix("sqlite://")) as s:
        Version1Agent(s).identity_for(["id=app2;role=x"])  # and its collided key
    with running_agent(tmp_path, pod_cidr="10.60.0.0/24") as env:
        restored = env.client.endpoint_get("impostor")["identity"]
        assert restored != real
        assert env.client.endpoint_get("app2")["identity"] == real
        names = {i["id"]: i["labels"] for i in env.client.request("GET", "/v1/identity")}
        assert names[restored] == ["id=app2;role=x"] and names[real] == ["id=app2", "role=x"]
