"""What every KVStore backend must do; subclassed per backend with a `store` fixture."""

from __future__ import annotations

from podnet.kvstore import KVStore


class KVStoreContract:
    def test_get_absent_is_none(self, store: KVStore) -> None:
        assert store.get("t/absent") is None

    def test_put_get_roundtrip_and_revisions(self, store: KVStore) -> None:
        r1 = store.put("t/a", "one")
        entry = store.get("t/a")
        assert entry is not None
        assert (entry.value, entry.create_revision, entry.mod_revision) == (b"one", r1, r1)
        r2 = store.put("t/a", b"two")
        assert r2 > r1
        entry = store.get("t/a")
        assert entry is not None
        assert (entry.value, entry.create_revision, entry.mod_revision) == (b"two", r1, r2)

    def test_create_only_when_absent(self, store: KVStore) -> None:
        first = store.create("t/c", "x")
        assert first > 0
        assert store.create("t/c", "y") == 0
        entry = store.get("t/c")
        assert entry is not None and entry.value == b"x" and entry.mod_revision == first

    def test_compare_and_swap(self, store: KVStore) -> None:
        rev = store.put("t/cas", "v1")
        assert store.compare_and_swap("t/cas", "v2", mod_revision=rev - 1) == 0
        new = store.compare_and_swap("t/cas", "v2", mod_revision=rev)
        assert new > rev
        assert store.compare_and_swap("t/cas", "v3", mod_revision=rev) == 0
        entry = store.get("t/cas")
        assert entry is not None and entry.value == b"v2" and entry.mod_revision == new

    def test_delete_plain_and_conditional(self, store: KVStore) -> None:
        rev = store.put("t/d", "v")
        assert store.delete("t/d", mod_revision=rev + 100) is False
        assert store.get("t/d") is not None
        assert store.delete("t/d", mod_revision=rev) is True
        assert store.get("t/d") is None
        assert store.delete("t/d") is False  # absent: not an error
        store.put("t/d", "again")
        assert store.delete("t/d") is True

    def test_compare_and_delete_only_at_the_revision_read(self, store: KVStore) -> None:
        first = store.put("t/cad", "pod-a")
        assert store.delete("t/cad", mod_revision=first) is True
        store.put("t/cad", "pod-b")  # the same key again, another holder: a new revision
        assert store.delete("t/cad", mod_revision=first) is False
        assert store.delete("t/cad", mod_revision=0) is False  # 0 means "absent": nothing to delete
        entry = store.get("t/cad")
        assert entry is not None and entry.value == b"pod-b"
        assert store.delete("t/never", mod_revision=first) is False

    def test_list_prefix_is_sorted_and_bounded(self, store: KVStore) -> None:
        for key in ["p/b", "p/a", "p/a/x", "pq", "o"]:
            store.put(key, key)
        assert [e.key for e in store.list_prefix("p/")] == ["p/a", "p/a/x", "p/b"]
        assert [e.value for e in store.list_prefix("p/a")] == [b"p/a", b"p/a/x"]
        assert store.list_prefix("zzz/") == []

    def test_revision_moves_on_every_write_only(self, store: KVStore) -> None:
        before = store.revision()
        store.get("t/r")
        store.list_prefix("t/")
        assert store.revision() == before
        store.put("t/r", "1")
        after_put = store.revision()
        assert after_put > before
        assert store.create("t/r", "2") == 0
        assert store.revision() == after_put
        store.delete("t/r")
        assert store.revision() > after_put

    def test_binary_values(self, store: KVStore) -> None:
        payload = bytes(range(256))
        store.put("t/bin", payload)
        entry = store.get("t/bin")
        assert entry is not None and entry.value == payload
