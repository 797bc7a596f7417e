"""Two writers on one pod CIDR, interleaved deterministically; subclassed per store.

Writer A and writer B are two `DurableNodeAllocator`s on the same store and
pod CIDR (two agent processes overlapping, or two nodes misconfigured with one
pod CIDR). `Interleaved` wraps A's store so that B's steps run at an exact
point of A's operation: right after A has read a key. Whatever the
interleaving, an IP must never end up with two owners.
"""

from __future__ import annotations

import pytest

from podnet.ipam import AlreadyAllocatedError, DurableNodeAllocator, PodCIDRExhaustedError
from podnet.kvstore import KVStore
from tests.interleaved import Interleaved

CIDR = "10.60.0.0/24"
IP = "10.60.0.2"  # the first pod IP (10.60.0.1 is the router's)
KEY = "podnet/ipam/pods/10.60.0.0_24/10.60.0.2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def owners(store: KVStore, cidr: str = CIDR) -> dict[str, str]:
    return {str(a.ip): a.owner for a in DurableNodeAllocator(store, cidr).allocations()}


class TwoWritersContract:
    def test_release_deletes_only_the_allocation_it_read(self, store: KVStore) -> None:
        """A releases pod-a's expired IP; between A's read and A's delete, B expires
        it and gives it to pod-b. A must not delete pod-b's allocation (else the
        next allocation hands 10.60.0.2 to pod-c as well)."""
        clock = Clock()
        hooked = Interleaved(store)
        a = DurableNodeAllocator(hooked, CIDR, clock=clock)
        assert str(a.allocate("cni/pod-a", expires_in=30).ip) == IP
        clock.now += 31  # pod-a's runtime never created its endpoint
        b = DurableNodeAllocator(store, CIDR, clock=clock)

        def writer_b() -> None:
            taken = b.allocate("cni/pod-b", expires_in=30)  # expires pod-a's first, at the revision it read
            assert str(taken.ip) == IP
            b.claim(IP, "endpoint:pod-b")

        hooked.after_reading(KEY, writer_b)
        a.release(IP)  # pod-a's late release
        assert owners(store)[IP] == "endpoint:pod-b"
        pod_c = DurableNodeAllocator(store, CIDR, clock=clock).allocate("cni/pod-c")  # A, restarted
        assert str(pod_c.ip) != IP
        assert a.get(IP) is not None and a.get(IP).owner == "endpoint:pod-b"  # type: ignore[union-attr]

    def test_release_leaves_an_ip_that_changed_hands_since_it_was_read(self, store: KVStore) -> None:
        """The same without a hook: A's view is older than the store's."""
        clock = Clock()
        a = DurableNodeAllocator(store, "10.60.0.0/30", clock=clock)  # one pod IP: 10.60.0.2
        a.allocate("cni/pod-a", expires_in=30)
        clock.now += 31
        b = DurableNodeAllocator(store, "10.60.0.0/30", clock=clock)
        assert str(b.allocate("cni/pod-b").ip) == IP
        b.claim(IP, "endpoint:pod-b")
        assert a.release(IP) is None  # A saw pod-a there; pod-b holds it now
        with pytest.raises(PodCIDRExhaustedError):
            a.allocate("cni/pod-c")
        assert owners(store, "10.60.0.0/30") == {"10.60.0.1": "router", IP: "endpoint:pod-b"}

    def test_claim_takes_over_only_the_allocation_it_read(self, store: KVStore) -> None:
        """pod-b's IPAM allocation (through A) expires; B gives 10.60.0.2 to pod-c's
        endpoint; then A creates pod-b's endpoint on the IP it handed out. A's claim
        must not take pod-c's IP."""
        clock = Clock()
        a = DurableNodeAllocator(store, CIDR, clock=clock)
        assert str(a.allocate("cni/pod-b", expires_in=30).ip) == IP
        clock.now += 31
        b = DurableNodeAllocator(store, CIDR, clock=clock)
        assert str(b.allocate("cni/pod-c", expires_in=30).ip) == IP
        b.claim(IP, "endpoint:pod-c")
        with pytest.raises(AlreadyAllocatedError, match=r"10.60.0.2 .*'endpoint:pod-c'"):
            a.claim(IP, "endpoint:pod-b")
        assert owners(store)[IP] == "endpoint:pod-c"
        held = a.get(IP)  # A re-read it: its caller now sees the real holder
        assert held is not None and held.owner == "endpoint:pod-c"

    def test_claim_racing_a_writer_between_read_and_swap(self, store: KVStore) -> None:
        """A confirms pod-b's allocation; between A's read and A's swap, B expires it
        and hands it to pod-c. A's swap fails, A re-reads and refuses."""
        clock = Clock()
        hooked = Interleaved(store)
        a = DurableNodeAllocator(hooked, CIDR, clock=clock)
        assert str(a.allocate("cni/pod-b", expires_in=30).ip) == IP
        clock.now += 31
        b = DurableNodeAllocator(store, CIDR, clock=clock)

        def writer_b() -> None:
            assert str(b.allocate("cni/pod-c").ip) == IP

        hooked.after_reading(KEY, writer_b)
        with pytest.raises(AlreadyAllocatedError, match="'cni/pod-c'"):
            a.confirm(IP)
        assert owners(store)[IP] == "cni/pod-c"

    def test_claim_follows_an_unchanged_owner_at_a_new_revision(self, store: KVStore) -> None:
        """B rewrote pod-b's allocation (new expiry), same owner: A's claim re-reads and wins."""
        clock = Clock()
        a = DurableNodeAllocator(store, CIDR, clock=clock)
        a.allocate("cni/pod-b", expires_in=30)
        b = DurableNodeAllocator(store, CIDR, clock=clock)
        b.claim(IP, "cni/pod-b", expires_in=60)
        assert a.claim(IP, "endpoint:pod-b").owner == "endpoint:pod-b"
        assert owners(store)[IP] == "endpoint:pod-b"
