"""Identities in a store: label sets that cannot collide, references, collection,
and agents of version 1 (before issue 13) beside this one. Subclassed per store."""

from __future__ import annotations

import json

from podnet.identity import FIRST_IDENTITY, IdentityAllocator, IdentityCollector, security_labels
from podnet.kvstore import KVStore, keys
from tests.interleaved import Interleaved

GRACE = 600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Version1Agent:
    """What agents before issue 13 wrote: labels joined by ';', the highest number + 1,
    both keys created only if absent (podnet.identity as of commit 840133e)."""

    def __init__(self, store: KVStore):
        self.store = store

    def identity_for(self, labels: list[str]) -> int:
        wanted = security_labels(labels)
        key = keys.identity_by_labels(";".join(wanted))
        for _ in range(100):
            held = self.store.get(key)
            if held is not None:
                return int(held.value)
            used = [keys.identity_number(e.key) for e in self.store.list_prefix(keys.IDENTITY_IDS)]
            number = max(used, default=FIRST_IDENTITY - 1) + 1
            if not self.store.create(keys.identity_by_id(number), json.dumps(wanted)):
                continue
            if self.store.create(key, str(number)):
                return number
            self.store.delete(keys.identity_by_id(number))
        raise AssertionError("contention")


def endpoint_record(store: KVStore, node: str, endpoint_id: str, identity: int) -> None:
    store.put(keys.endpoint(node, endpoint_id), json.dumps({"id": endpoint_id, "identity": identity}))


class IdentityStoreContract:
    def test_label_sets_joined_alike_get_different_identities(self, store: KVStore) -> None:
        ids = IdentityAllocator(store, "node1")
        real = ids.identity_for(["id=app2", "role=x"])
        impostor = ids.identity_for(["id=app2;role=x"])
        assert impostor != real
        assert ids.all() == {real: ["id=app2", "role=x"], impostor: ["id=app2;role=x"]}
        assert IdentityAllocator(store, "node2").identity_for(["role=x", "id=app2"]) == real

    def test_version1_keys_are_adopted_only_when_ids_agrees(self, store: KVStore) -> None:
        old = Version1Agent(store)
        app1 = old.identity_for(["id=app1"])
        app2 = old.identity_for(["id=app2", "role=x"])
        assert old.identity_for(["id=app2;role=x"]) == app2  # version 1's collision, as stored
        new = IdentityAllocator(store, "node1")
        assert new.identity_for(["id=app1"]) == app1
        assert new.identity_for(["role=x", "id=app2"]) == app2
        impostor = new.identity_for(["id=app2;role=x"])
        assert impostor not in (app1, app2) and impostor > app2  # numbering continues after the highest
        # the adopted mappings now have keys of this version
        assert store.get(keys.identity_by_labelset('["id=app1"]')) is not None

    def test_both_versions_at_once_never_share_a_number(self, store: KVStore) -> None:
        old, new = Version1Agent(store), IdentityAllocator(store, "node1")
        got: dict[str, int] = {}
        for i in range(6):
            got[f"new{i}"] = new.identity_for([f"id=new{i}"])
            got[f"old{i}"] = old.identity_for([f"id=old{i}"])
        assert len(set(got.values())) == len(got)
        stored = new.all()
        assert all(stored[n] == [f"id={name}"] for name, n in got.items())

    def test_unused_identities_are_collected_after_the_grace_period(self, store: KVStore) -> None:
        clock = Clock()
        ids = IdentityAllocator(store, "node1", clock=clock)
        collector = IdentityCollector(store, grace_s=GRACE, clock=clock)
        current = 0
        for i in range(30):  # one endpoint relabelled 30 times
            current = ids.identity_for([f"id=v{i}"])
            ids.release_unused({current})
            clock.now += 1
        assert ids.held == {current}
        clock.now += GRACE - 31
        early = collector.collect()
        assert early.collected == [] and early.waiting == 29
        clock.now += 31
        result = collector.collect()
        assert len(result.collected) == 29 and current not in result.collected
        assert list(ids.all()) == [current]
        assert [e.key for e in store.list_prefix(keys.IDENTITY_LABELSETS)] == [
            keys.identity_by_labelset(f'["id=v{29}"]')
        ]
        assert [e.key for e in store.list_prefix(keys.IDENTITY_REFS)] == [keys.identity_ref(current, "node1")]

    def test_a_reference_on_any_node_or_an_endpoint_record_keeps_an_identity(self, store: KVStore) -> None:
        clock = Clock()
        a, b = IdentityAllocator(store, "node-a", clock=clock), IdentityAllocator(store, "node-b", clock=clock)
        shared = a.identity_for(["id=shared"])
        assert b.identity_for(["id=shared"]) == shared
        a.release_unused(set())
        legacy = Version1Agent(store).identity_for(["id=old"])  # no reference, an endpoint record
        endpoint_record(store, "node-c", "ep1", legacy)
        a.identity_for(["id=top"])  # the highest number is always kept: keep the others collectable
        a.release_unused(set())
        clock.now += 10 * GRACE
        collector = IdentityCollector(store, grace_s=GRACE, clock=clock)
        assert collector.collect().collected == []
        clock.now += 10 * GRACE
        assert collector.collect().collected == []
        assert set(a.all()) == {shared, legacy, a.identity_for(["id=top"])}

    def test_a_reference_taken_while_collecting_keeps_the_identity(self, store: KVStore) -> None:
        clock = Clock()
        a = IdentityAllocator(store, "node-a", clock=clock)
        number = a.identity_for(["id=app1"])
        a.identity_for(["id=top"])
        a.release_unused(set())
        clock.now += 2 * GRACE
        hooked = Interleaved(store)
        collector = IdentityCollector(hooked, grace_s=GRACE, clock=clock)
        b = IdentityAllocator(store, "node-b", clock=clock)

        def node_b_starts_using_it() -> None:  # after the collector's last read, before its removal
            assert b.identity_for(["id=app1"]) == number

        hooked.after_reading(keys.NODES, node_b_starts_using_it)
        result = collector.collect()
        assert number not in result.collected
        assert a.all()[number] == ["id=app1"]
        assert b.held == {number}

    def test_an_endpoint_written_while_collecting_keeps_the_identity(self, store: KVStore) -> None:
        """A version-1 agent (no references) gives the number to a new endpoint
        right after the collector's last read: the removal must fail."""
        clock = Clock()
        a = IdentityAllocator(store, "node-a", clock=clock)
        number = a.identity_for(["id=app1"])
        a.identity_for(["id=top"])
        a.release_unused(set())
        clock.now += 2 * GRACE
        hooked = Interleaved(store)
        hooked.after_reading(keys.NODES, lambda: endpoint_record(store, "node-old", "ep1", number))
        assert IdentityCollector(hooked, grace_s=GRACE, clock=clock).collect().collected == []
        assert a.all()[number] == ["id=app1"]

    def test_numbers_are_never_reused(self, store: KVStore) -> None:
        clock = Clock()
        ids = IdentityAllocator(store, "node1", clock=clock)
        first = [ids.identity_for([f"id=gone{i}"]) for i in range(5)]
        ids.release_unused(set())
        clock.now += 2 * GRACE
        collected = IdentityCollector(store, grace_s=GRACE, clock=clock).collect().collected
        assert collected == first[:-1]  # the highest stays
        # a node that still holds the old mapping in its cache does not apply it again
        again = ids.identity_for(["id=gone0"])
        assert again not in first
        fresh = IdentityAllocator(store, "node2").identity_for(["id=new"])
        assert fresh > again > max(first)
        # nor does an agent of version 1, which picks the highest + 1
        assert Version1Agent(store).identity_for(["id=old"]) > fresh

    def test_a_collected_identity_is_recreated_by_its_holder(self, store: KVStore) -> None:
        """An endpoint restored with an identity collected while its agent was away
        (or given to it by a version-1 agent's cache)."""
        clock = Clock()
        ids = IdentityAllocator(store, "node1", clock=clock)
        number = ids.identity_for(["id=app1"])
        ids.identity_for(["id=top"])
        ids.release_unused(set())
        clock.now += 2 * GRACE
        assert number in IdentityCollector(store, grace_s=GRACE, clock=clock).collect().collected
        restarted = IdentityAllocator(store, "node1", clock=clock)
        assert restarted.hold(number, ["id=app1"]) is True
        assert restarted.all()[number] == ["id=app1"]
        assert restarted.hold(number, ["id=other"]) is False  # a number never means other labels

    def test_allocation_does_not_scan(self, store: KVStore) -> None:
        hooked = Interleaved(store)
        ids = IdentityAllocator(hooked, "node1")
        ids.identity_for(["id=first"])  # the first ever starts the counter after the highest existing
        hooked.listed.clear()
        for i in range(20):
            ids.identity_for([f"id=v{i}"])
        assert hooked.listed == []
