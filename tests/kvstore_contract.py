"""What every KVStore backend must do; subclassed per backend with a `store` fixture."""

from __future__ import annotations

import pytest

from podnet.kvstore import Delete, KVStore, KVStoreError, NothingNewer, Put, Unchanged


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

    def test_commit_writes_everything_at_one_revision_or_nothing(self, store: KVStore) -> None:
        old = store.put("x/old", "gone soon")
        rev = store.commit([Unchanged("x/new", 0), Unchanged("x/old", old)], [Put("x/new", "n"), Delete("x/old")])
        assert rev > old and store.revision() == rev
        entry = store.get("x/new")
        assert entry is not None and (entry.value, entry.mod_revision) == (b"n", rev)
        assert store.get("x/old") is None
        # a stale condition: nothing written, revision unchanged
        assert store.commit([Unchanged("x/new", rev - 1)], [Put("x/new", "m"), Put("x/other", "o")]) == 0
        assert store.revision() == rev
        assert store.get("x/other") is None
        entry = store.get("x/new")
        assert entry is not None and entry.value == b"n"
        # unchanged(0) means absent
        assert store.commit([Unchanged("x/new", 0)], [Put("x/other", "o")]) == 0
        assert store.commit([Unchanged("x/absent", 0)], [Put("x/other", "o")]) > rev

    def test_commit_nothing_newer_under_a_prefix(self, store: KVStore) -> None:
        store.put("r/1/a", "in use")
        store.put("r/10/a", "another prefix")
        seen = store.revision()
        assert store.commit([NothingNewer("r/1/", seen)], [Put("mark", "1")]) > seen
        seen = store.revision()
        store.put("r/10/b", "outside r/1/")
        assert store.commit([NothingNewer("r/1/", seen)], [Put("mark", "2")]) > 0
        seen = store.revision()
        store.put("r/1/b", "new under r/1/")
        assert store.commit([NothingNewer("r/1/", seen)], [Put("mark", "3")]) == 0
        seen = store.revision()
        store.put("r/1/a", "modified")
        assert store.commit([NothingNewer("r/1/", seen)], [Put("mark", "4")]) == 0
        seen = store.revision()
        store.delete("r/1/a")  # deletions do not count
        assert store.commit([NothingNewer("r/1/", seen), NothingNewer("r/2/", 0)], [Put("mark", "5")]) > 0
        entry = store.get("mark")
        assert entry is not None and entry.value == b"5"

    def test_commit_of_only_absent_deletes_keeps_the_revision(self, store: KVStore) -> None:
        store.put("k", "v")
        before = store.revision()
        assert store.commit([], [Delete("absent")]) >= before
        assert store.revision() == before

    def test_commit_refuses_a_key_written_twice(self, store: KVStore) -> None:
        with pytest.raises(KVStoreError, match="repeated: k"):
            store.commit([], [Put("k", "1"), Delete("k")])
