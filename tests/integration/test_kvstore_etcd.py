"""The KVStore contract against a real etcd."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from podnet.ipam import ClusterPool, DurableClusterPool, DurableNodeAllocator
from podnet.kvstore import KVStore, open_store
from tests.identity_contract import IdentityStoreContract
from tests.ipam_two_writers import TwoWritersContract
from tests.kvstore_contract import KVStoreContract


class TestEtcdStore(KVStoreContract):
    @pytest.fixture
    def store(self, etcd_url: str) -> Iterator[KVStore]:
        with open_store(etcd_url) as store:
            yield store


class TestTwoWritersOnEtcd(TwoWritersContract):
    @pytest.fixture
    def store(self, etcd_url: str) -> Iterator[KVStore]:
        with open_store(etcd_url) as store:
            yield store


class TestIdentitiesOnEtcd(IdentityStoreContract):
    @pytest.fixture
    def store(self, etcd_url: str) -> Iterator[KVStore]:
        with open_store(etcd_url) as store:
            yield store


def test_ipam_state_lives_in_etcd(etcd_url: str) -> None:
    with open_store(etcd_url) as store:
        pool = DurableClusterPool(store, ClusterPool(["10.20.30.40/24", "50.60.70.80/24"], 26))
        assert [str(pool.allocate(f"node{i}")) for i in (1, 2)] == ["10.20.30.0/26", "10.20.30.64/26"]
        alloc = DurableNodeAllocator(store, pool.cidrs_of("node1")[0])
        first = alloc.allocate("docker/app1")
    with open_store(etcd_url) as store:
        again = DurableClusterPool(store, ClusterPool(["10.20.30.40/24", "50.60.70.80/24"], 26))
        assert str(again.allocate("node3")) == "10.20.30.128/26"
        restored = DurableNodeAllocator(store, "10.20.30.0/26")
        assert restored.get(first.ip) == first


def test_operator_on_etcd_gives_the_seed_example(etcd_url: str) -> None:
    from podnet.ipam import ClusterPool
    from podnet.operator.reconcile import Operator
    from podnet.operator.registry import node_status, register_node

    with open_store(etcd_url) as store:
        for i in range(1, 10):
            register_node(store, f"node{i}", f"192.168.50.{4 * i - 2}")
        outcome = Operator(store, ClusterPool(["10.20.30.40/24", "50.60.70.80/24"], 26)).reconcile()
        assert outcome.allocated["node1"] == "10.20.30.0/26" and outcome.allocated["node8"] == "50.60.70.192/26"
        status = node_status(store, "node9")
        assert status is not None and status.condition is not None
        assert status.condition.reason == "ClusterPoolExhausted"
