from __future__ import annotations

import ipaddress

import pytest

from podnet.ipam import AlreadyAllocatedError, IPAMError, NodeAllocator, NotInRangeError, PodCIDRExhaustedError
from podnet.ipam.allocator import ROUTER_OWNER, Allocation, pod_ip_capacity

ip = ipaddress.ip_address


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_excludes_network_and_broadcast_and_reserves_router() -> None:
    a = NodeAllocator("10.20.30.0/30")
    assert a.router_ip == ip("10.20.30.1")
    assert a.get("10.20.30.1") == Allocation(ip("10.20.30.1"), ROUTER_OWNER)
    got = a.allocate("pod-a")
    assert got.ip == ip("10.20.30.2")
    with pytest.raises(PodCIDRExhaustedError, match=r"pod CIDR 10.20.30.0/30 is exhausted \(2/2 in use\)"):
        a.allocate("pod-b")
    for bad in ("10.20.30.0", "10.20.30.3"):
        with pytest.raises(
            NotInRangeError, match=rf"{bad} is not in range of pod CIDR 10.20.30.0/30 \(usable 10.20.30.1-10.20.30.2\)"
        ):
            a.allocate_ip(bad, "x")


def test_seed_slash26_capacity_and_exhaustion_message() -> None:
    a = NodeAllocator("10.20.30.0/26")
    assert (a.capacity, a.pod_capacity, pod_ip_capacity(a.pod_cidr)) == (62, 61, 61)
    ips = [a.allocate(f"pod-{i}").ip for i in range(61)]
    assert len(set(ips)) == 61 and a.router_ip not in ips
    with pytest.raises(PodCIDRExhaustedError, match=r"pod CIDR 10.20.30.0/26 is exhausted \(62/62 in use\)"):
        a.allocate("one-too-many")


def test_custom_router_ip_and_ipv6() -> None:
    a = NodeAllocator("10.0.0.0/24", router_ip="10.0.0.254")
    assert a.allocate("p").ip == ip("10.0.0.1")
    with pytest.raises(NotInRangeError):
        NodeAllocator("10.0.0.0/24", router_ip="10.0.1.1")
    v6 = NodeAllocator("fd00::/120")
    assert v6.capacity == 255  # no broadcast in IPv6; the network address is still excluded
    assert v6.allocate("p").ip == ip("fd00::2")


def test_too_small_pod_cidr() -> None:
    with pytest.raises(IPAMError, match=r"pod CIDR 10.0.0.0/31 is too small"):
        NodeAllocator("10.0.0.0/31")


def test_owner_recorded_and_validated() -> None:
    a = NodeAllocator("10.0.0.0/24")
    got = a.allocate("default/app1")
    assert a.get(got.ip) == Allocation(got.ip, "default/app1")
    for bad in ("", "   ", None, "x" * 513):
        with pytest.raises(IPAMError, match="invalid IP owner"):
            a.allocate(bad)  # type: ignore[arg-type]


def test_allocate_specific_ip() -> None:
    a = NodeAllocator("10.0.0.0/24")
    got = a.allocate_ip("10.0.0.77", "docker/app")
    assert got.ip == ip("10.0.0.77")
    with pytest.raises(
        AlreadyAllocatedError,
        match=r"10.0.0.77 is already allocated in pod CIDR 10.0.0.0/24 \(held by owner 'docker/app'\)",
    ):
        a.allocate_ip("10.0.0.77", "other")
    with pytest.raises(AlreadyAllocatedError, match=r"held by the node's router IP"):
        a.allocate_ip("10.0.0.1", "other")
    with pytest.raises(IPAMError, match="invalid IP address 'ten'"):
        a.allocate_ip("ten", "x")


def test_release_unknown_is_noop_and_router_cannot_be_released() -> None:
    a = NodeAllocator("10.0.0.0/24")
    assert a.release("10.0.0.9") is None
    got = a.allocate("p")
    assert a.release(got.ip) == got
    assert a.release(got.ip) is None
    with pytest.raises(IPAMError, match="is the node's router IP"):
        a.release("10.0.0.1")


def test_rotation_does_not_reuse_a_just_released_ip() -> None:
    a = NodeAllocator("10.0.0.0/24")
    first = a.allocate("a")
    a.release(first.ip)
    assert a.allocate("b").ip != first.ip


def test_expiration_releases_unless_confirmed() -> None:
    clock = FakeClock()
    a = NodeAllocator("10.0.0.0/29", clock=clock)
    temp = a.allocate("cni/pod-a", expires_in=60)
    kept = a.allocate("cni/pod-b", expires_in=60)
    assert temp.expires_at == 1060.0
    assert a.confirm(kept.ip).expires_at is None
    clock.now += 59
    assert a.expire() == []
    clock.now += 1
    assert [x.ip for x in a.expire()] == [temp.ip]
    assert a.get(temp.ip) is None
    assert a.get(kept.ip) is not None and a.get(kept.ip).expires_at is None  # type: ignore[union-attr]
    with pytest.raises(IPAMError, match="nothing to confirm"):
        a.confirm(temp.ip)
    with pytest.raises(IPAMError, match="invalid expiration"):
        a.allocate("x", expires_in=0)


def test_expired_allocations_are_reclaimed_when_the_pool_is_full() -> None:
    clock = FakeClock()
    a = NodeAllocator("10.0.0.0/30", clock=clock)
    a.allocate("stale", expires_in=10)
    clock.now += 11
    assert a.allocate("fresh").owner == "fresh"


def test_restore_reproduces_state_exactly() -> None:
    clock = FakeClock()
    a = NodeAllocator("10.0.0.0/24", router_ip="10.0.0.200", clock=clock)
    a.allocate("x")
    a.allocate_ip("10.0.0.50", "y", expires_in=30)
    a.allocate("z")
    b = NodeAllocator("10.0.0.0/24", router_ip="10.0.0.200", clock=clock)
    b.restore(Allocation.from_json(r.to_json()) for r in a.allocations())
    assert b.allocations() == a.allocations()
    assert b.used == a.used
    with pytest.raises(AlreadyAllocatedError, match="collides with the router IP"):
        b.restore([Allocation(ip("10.0.0.200"), "someone")])
