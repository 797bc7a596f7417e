"""The kvstore-backed allocators, on the embedded SQLite store."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.ipam import AlreadyAllocatedError, ClusterPool, ClusterPoolExhaustedError, IPAMError, PodCIDRExhaustedError
from podnet.ipam.durable import DurableNodeAllocator
from podnet.ipam.nodecidrs import DurableClusterPool
from podnet.kvstore.sqlite import SQLiteStore
from tests.seed import SEED_CLUSTER_CIDRS
from tests.unit.test_allocator import FakeClock

SEED = SEED_CLUSTER_CIDRS


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "state.db") as s:
        yield s


def test_restart_restores_exactly(store: SQLiteStore) -> None:
    clock = FakeClock()
    a = DurableNodeAllocator(store, "10.20.30.0/26", clock=clock)
    a.allocate("docker/app1")
    a.allocate_ip("10.20.30.40", "docker/app2", expires_in=60)
    before = a.allocations()
    b = DurableNodeAllocator(store, "10.20.30.0/26", clock=clock)
    assert b.allocations() == before
    assert b.allocate("docker/app3").ip not in {x.ip for x in before}


def test_two_allocators_never_hand_out_the_same_ip(store: SQLiteStore) -> None:
    a = DurableNodeAllocator(store, "10.0.0.0/28")
    b = DurableNodeAllocator(store, "10.0.0.0/28")  # same starting point as a
    got = [a.allocate("a").ip, b.allocate("b").ip, a.allocate("a").ip, b.allocate("b").ip]
    assert len(set(got)) == 4
    owners = {x.ip: x.owner for x in DurableNodeAllocator(store, "10.0.0.0/28").allocations()}
    assert [owners[i] for i in got] == ["a", "b", "a", "b"]


def test_exhaustion_sees_releases_by_other_processes(store: SQLiteStore) -> None:
    a = DurableNodeAllocator(store, "10.0.0.0/29")
    b = DurableNodeAllocator(store, "10.0.0.0/29")
    ips = [a.allocate(f"p{i}").ip for i in range(5)]
    with pytest.raises(PodCIDRExhaustedError, match=r"10.0.0.0/29 is exhausted \(6/6 in use\)"):
        a.allocate("more")
    b.release(ips[2])
    assert a.allocate("more").ip == ips[2]


def test_specific_ip_held_elsewhere(store: SQLiteStore) -> None:
    a = DurableNodeAllocator(store, "10.0.0.0/24")
    b = DurableNodeAllocator(store, "10.0.0.0/24")
    a.allocate_ip("10.0.0.7", "first")
    with pytest.raises(AlreadyAllocatedError, match="held by owner 'first'"):
        b.allocate_ip("10.0.0.7", "second")


def test_release_unknown_is_noop(store: SQLiteStore) -> None:
    a = DurableNodeAllocator(store, "10.0.0.0/24")
    assert a.release("10.0.0.99") is None
    before = store.revision()
    assert a.release("10.0.0.99") is None
    assert store.revision() == before


def test_expiry_is_durable_and_confirm_wins(store: SQLiteStore) -> None:
    clock = FakeClock()
    a = DurableNodeAllocator(store, "10.0.0.0/24", clock=clock)
    temp = a.allocate("cni/x", expires_in=30)
    kept = a.allocate("cni/y", expires_in=30)
    other = DurableNodeAllocator(store, "10.0.0.0/24", clock=clock)
    other.confirm(kept.ip)  # confirmed in another process
    clock.now += 31
    assert [x.ip for x in a.expire()] == [temp.ip]
    fresh = DurableNodeAllocator(store, "10.0.0.0/24", clock=clock)
    held = {x.ip: x for x in fresh.allocations()}
    assert temp.ip not in held
    assert held[kept.ip].expires_at is None


def test_router_ip_held_by_another_in_the_store_is_quarantined_and_stays_the_routers(store: SQLiteStore) -> None:
    a = DurableNodeAllocator(store, "10.0.0.0/24", router_ip="10.0.0.254")
    a.allocate_ip("10.0.0.1", "someone")
    b = DurableNodeAllocator(store, "10.0.0.0/24")
    key = "podnet/ipam/pods/10.0.0.0_24/10.0.0.1"
    assert [(r.key, r.reason) for r in b.quarantine.records()] == [
        (key, "it gives the node's router IP 10.0.0.1 to 'someone'; the router keeps it")
    ]
    held = b.get("10.0.0.1")
    assert held is not None and held.owner == "router"
    entry = store.get(key)
    assert entry is not None and b'"someone"' in entry.value  # kept as it is


def test_corrupt_record_is_quarantined_with_its_key_and_its_ip_stays_taken(store: SQLiteStore) -> None:
    store.put("podnet/ipam/pods/10.0.0.0_29/10.0.0.5", b"{not json")
    a = DurableNodeAllocator(store, "10.0.0.0/29")
    [record] = a.quarantine.records()
    assert record.key == "podnet/ipam/pods/10.0.0.0_29/10.0.0.5" and record.reason.startswith("not valid JSON")
    got = {str(a.allocate(f"pod{i}").ip) for i in range(4)}
    assert got == {"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6"}
    with pytest.raises(PodCIDRExhaustedError):
        a.allocate("pod5")


def test_cluster_pool_seed_example_is_durable(store: SQLiteStore) -> None:
    pool = DurableClusterPool(store, ClusterPool(SEED, 26))
    nodes = [f"node{i}" for i in range(1, 9)]
    got = {n: str(pool.allocate(n)) for n in nodes}
    assert got["node1"] == "10.20.30.0/26" and got["node5"] == "50.60.70.0/26" and got["node8"] == "50.60.70.192/26"
    assert pool.allocate("node3") == ipaddress.ip_network("10.20.30.128/26")  # idempotent per node
    with pytest.raises(ClusterPoolExhaustedError, match="cluster pool exhausted: 8 of 8 node CIDRs in use"):
        pool.allocate("node9")
    # the operator restarts: same view, node2 is deleted, node9 gets its CIDR
    restarted = DurableClusterPool(store, ClusterPool(SEED, 26))
    assert {nc.node: str(nc.cidr) for nc in restarted.node_cidrs()} == got
    assert restarted.release_node("node2") == [ipaddress.ip_network("10.20.30.64/26")]
    assert str(restarted.allocate("node9")) == "10.20.30.64/26"


def test_cluster_pool_keeps_orphans_from_an_old_config(store: SQLiteStore) -> None:
    DurableClusterPool(store, ClusterPool(["192.168.0.0/24"], 26)).allocate("old")
    pool = DurableClusterPool(store, ClusterPool(SEED, 26))
    assert [(o.node, str(o.cidr)) for o in pool.orphans] == [("old", "192.168.0.0/26")]
    assert pool.node_cidrs() == []


def test_bad_node_name(store: SQLiteStore) -> None:
    pool = DurableClusterPool(store, ClusterPool(SEED, 26))
    with pytest.raises(IPAMError, match="invalid node name 'Node_1'"):
        pool.allocate("Node_1")
