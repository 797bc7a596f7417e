"""Property tests: IPAM against a plain-set model, for arbitrary operation sequences."""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from podnet.ipam import (
    CIDRSet,
    CIDRSetExhaustedError,
    ClusterPool,
    ClusterPoolExhaustedError,
    NodeAllocator,
    PodCIDRExhaustedError,
)
from podnet.ipam.allocator import Allocation
from podnet.ipam.cidr import Network
from podnet.ipam.durable import DurableNodeAllocator
from podnet.kvstore.sqlite import SQLiteStore


@st.composite
def cluster_cidrs(draw: st.DrawFn) -> tuple[Network, int]:
    version = draw(st.sampled_from([4, 6]))
    max_len = 32 if version == 4 else 128
    prefix = draw(st.integers(8, max_len - 8))
    mask = prefix + draw(st.integers(0, 7))
    raw = draw(st.integers(0, (1 << max_len) - 1))
    net_type = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return net_type((raw, prefix), strict=False), mask


class CIDRSetMachine(RuleBasedStateMachine):
    @rule(spec=cluster_cidrs())
    @precondition(lambda self: not hasattr(self, "cidr_set"))
    def create(self, spec: tuple[Network, int]) -> None:
        self.cidr_set = CIDRSet(*spec)
        self.model: set[Network] = set()

    @rule()
    @precondition(lambda self: hasattr(self, "cidr_set"))
    def allocate(self) -> None:
        if len(self.model) == self.cidr_set.capacity:
            try:
                self.cidr_set.allocate()
            except CIDRSetExhaustedError:
                return
            raise AssertionError("allocate on a full set did not raise")
        got = self.cidr_set.allocate()
        assert got not in self.model
        assert got.subnet_of(self.cidr_set.cluster_cidr)  # type: ignore[arg-type]
        assert got.prefixlen == self.cidr_set.mask_size
        self.model.add(got)

    @rule(data=st.data())
    @precondition(lambda self: hasattr(self, "cidr_set") and self.model)
    def release(self, data: st.DataObject) -> None:
        victim = data.draw(st.sampled_from(sorted(self.model, key=lambda n: int(n.network_address))))
        self.cidr_set.release(victim)
        self.cidr_set.release(victim)  # idempotent
        self.model.discard(victim)
        if len(self.model) == self.cidr_set.capacity - 1:
            assert self.cidr_set.allocate() == victim  # the only free subnet is reused
            self.model.add(victim)

    @rule(data=st.data())
    @precondition(lambda self: hasattr(self, "cidr_set"))
    def occupy(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, self.cidr_set.capacity - 1))
        subnet = self.cidr_set.subnet(index)
        self.cidr_set.occupy(subnet)
        self.cidr_set.occupy(subnet)  # idempotent
        self.model.add(subnet)

    @invariant()
    def consistent(self) -> None:
        if hasattr(self, "cidr_set"):
            assert self.cidr_set.used == len(self.model)
            assert set(self.cidr_set.allocated()) == self.model
            assert self.cidr_set.is_full() == (len(self.model) == self.cidr_set.capacity)


TestCIDRSet = CIDRSetMachine.TestCase
TestCIDRSet.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


class NodeAllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.alloc = NodeAllocator("10.9.0.0/28", clock=lambda: self.now)
        self.model: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, Allocation] = {}

    @rule(owner=st.text(min_size=1, max_size=8).filter(str.strip), expiring=st.booleans())
    def allocate(self, owner: str, expiring: bool) -> None:
        self.expire_model()
        try:
            got = self.alloc.allocate(owner, expires_in=5.0 if expiring else None)
        except PodCIDRExhaustedError:
            assert len(self.model) == self.alloc.pod_capacity
            return
        assert got.ip not in self.model and got.ip != self.alloc.router_ip
        assert got.ip in self.alloc.pod_cidr
        assert got.ip not in (self.alloc.pod_cidr.network_address, self.alloc.pod_cidr.broadcast_address)
        self.model[got.ip] = got

    @rule(data=st.data())
    @precondition(lambda self: self.model)
    def release(self, data: st.DataObject) -> None:
        victim = data.draw(st.sampled_from(sorted(self.model)))
        self.alloc.release(victim)
        assert self.alloc.release(victim) is None
        del self.model[victim]

    @rule(seconds=st.floats(0, 4))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    def expire_model(self) -> None:
        for ip, a in list(self.model.items()):
            if a.expires_at is not None and a.expires_at <= self.now:
                del self.model[ip]

    @invariant()
    def consistent_and_restorable(self) -> None:
        held = {a.ip: a for a in self.alloc.allocations() if a.ip != self.alloc.router_ip}
        self.expire_model()
        live = {ip: a for ip, a in held.items() if a.expires_at is None or a.expires_at > self.now}
        assert live == self.model
        copy = NodeAllocator("10.9.0.0/28", clock=lambda: self.now)
        copy.restore(self.alloc.allocations())
        assert copy.allocations() == self.alloc.allocations()


TestNodeAllocator = NodeAllocatorMachine.TestCase
TestNodeAllocator.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


@given(
    sizes=st.lists(st.integers(20, 26), min_size=1, max_size=4),
    mask=st.integers(26, 28),
    nodes=st.integers(1, 80),
)
@settings(max_examples=60, deadline=None)
def test_cluster_pool_fills_cidrs_in_order_without_overlap(sizes: list[int], mask: int, nodes: int) -> None:
    cidrs = [f"10.{i * 16}.0.0/{size}" for i, size in enumerate(sizes)]  # never overlapping
    pool = ClusterPool(cidrs, mask)
    handed: list[Network] = []
    for _ in range(nodes):
        try:
            handed.append(pool.allocate())
        except ClusterPoolExhaustedError:
            assert len(handed) == pool.capacity
            break
    assert len(set(handed)) == len(handed)
    parents = [pool.parent_of(c) for c in handed]
    order = [s.cluster_cidr for s in pool.sets]
    assert parents == sorted(parents, key=order.index)  # first non-full set wins


@given(ops=st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from(["alloc", "release"])), max_size=40))
@settings(max_examples=40, deadline=None)
def test_durable_allocators_sharing_a_store_never_collide(ops: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "s.db") as store:
        allocators = {name: DurableNodeAllocator(store, "10.8.0.0/28") for name in "ab"}
        mine: dict[str, list[ipaddress.IPv4Address | ipaddress.IPv6Address]] = {"a": [], "b": []}
        for name, op in ops:
            alloc = allocators[name]
            if op == "alloc":
                try:
                    mine[name].append(alloc.allocate(name).ip)
                except PodCIDRExhaustedError:
                    assert len(mine["a"]) + len(mine["b"]) == alloc.mem.pod_capacity
            elif mine[name]:
                alloc.release(mine[name].pop(0))
        assert not set(mine["a"]) & set(mine["b"])
        stored = DurableNodeAllocator(store, "10.8.0.0/28").allocations()
        assert {a.ip for a in stored} == set(mine["a"]) | set(mine["b"]) | {allocators["a"].router_ip}
