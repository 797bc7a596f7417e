from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.kvstore import KVStore, KVStoreError, open_store
from podnet.kvstore.sqlite import SQLiteStore
from tests.kvstore_contract import KVStoreContract


class TestSQLiteStore(KVStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[KVStore]:
        with open_store(f"sqlite://{tmp_path}/state.db") as store:
            yield store


def test_two_handles_see_each_others_writes(tmp_path: Path) -> None:
    a = SQLiteStore(tmp_path / "s.db")
    b = SQLiteStore(tmp_path / "s.db")
    assert a.create("k", "from a")
    assert b.create("k", "from b") == 0
    entry = b.get("k")
    assert entry is not None and entry.value == b"from a"
    assert a.revision() == b.revision()
    assert a.integrity_check() == "ok"


def test_state_survives_reopen(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        rev = store.put("k", "v")
    with SQLiteStore(tmp_path / "s.db") as store:
        entry = store.get("k")
        assert entry is not None and entry.mod_revision == rev and store.revision() == rev


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://x", "unsupported kvstore URL 'redis://x'"),
        ("sqlite://relative.db", "the path must be absolute"),
        ("sqlite:///tmp/x.db?fsync=1", "unknown option(s) fsync"),
        ("sqlite:///tmp/x.db?synchronous=sometimes", "invalid sqlite synchronous mode 'sometimes'"),
        ("sqlite:///nonexistent-dir/x.db", "directory /nonexistent-dir does not exist"),
        ("etcd://", "expected sqlite:///ABSOLUTE/PATH or etcd://HOST:PORT"),
        ("etcd://host", "endpoint 'host' is not HOST:PORT"),
        ("etcd://host:99999", "endpoint 'host:99999' is not HOST:PORT"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(KVStoreError) as err:
        open_store(url)
    assert message in str(err.value)


def test_etcd_url_parses_endpoints() -> None:
    store = open_store("etcd://127.0.0.1:2379,[::1]:2380")
    assert store.url == "etcd://127.0.0.1:2379,::1:2380"
    store.close()


def test_unreachable_etcd_is_a_clear_error() -> None:
    store = open_store("etcd://127.0.0.1:9")
    with pytest.raises(KVStoreError, match=r"kvstore etcd://127.0.0.1:9 is unreachable"):
        store.get("x")


def test_many_processes_open_a_new_store_at_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import sys; from podnet.kvstore.sqlite import SQLiteStore; SQLiteStore(sys.argv[1]).put('k', 'v')"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "new.db")], stderr=subprocess.PIPE)
        for _ in range(8)
    ]
    errors = [p.communicate()[1].decode() for p in procs if p.wait() != 0]
    assert errors == []


def test_busy_timeout_comes_from_the_url_and_a_locked_store_is_a_kvstore_error_in_time(tmp_path: Path) -> None:
    import sqlite3
    import time

    with open_store(f"sqlite://{tmp_path}/s.db?busy_timeout=0.3") as store:
        assert store.put("k", "v")
        holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process's writer
        try:
            started = time.monotonic()
            with pytest.raises(KVStoreError, match=r"is locked by another writer: writing k waited 0.3 s"):
                store.put("k", "w")
            assert 0.25 < time.monotonic() - started < 1.5
            assert store.revision() > 0  # reading the revision does not wait for the write lock
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.put("k", "w")  # and the handle works once the lock is gone


def test_the_default_busy_timeout_is_well_below_the_clients_deadline(tmp_path: Path) -> None:
    from podnet.api.client import DEFAULT_TIMEOUT_S

    store = open_store(f"sqlite://{tmp_path}/s.db")
    assert isinstance(store, SQLiteStore) and store.busy_timeout_s * 4 <= DEFAULT_TIMEOUT_S
    store.close()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("busy_timeout=soon", "busy_timeout 'soon' is not a number of seconds"),
        ("busy_timeout=-1", "invalid sqlite busy_timeout -1.0"),
        ("busy_timeout=nan", "invalid sqlite busy_timeout nan"),
        ("busy_timeout=1e9", "invalid sqlite busy_timeout 1000000000.0"),
    ],
)
def test_a_bad_busy_timeout_says_why(tmp_path: Path, query: str, message: str) -> None:
    with pytest.raises(KVStoreError, match=message):
        open_store(f"sqlite://{tmp_path}/s.db?{query}")


def test_a_failed_commit_rolls_back_and_releases_the_write_lock(tmp_path: Path) -> None:
    """A COMMIT SQLite refuses (here a deferred foreign key, as a full disk or an I/O error would) must not
    leave the connection inside its transaction, holding the write lock for every other process."""
    store = SQLiteStore(tmp_path / "s.db", busy_timeout_s=0.5)
    other = SQLiteStore(tmp_path / "s.db", busy_timeout_s=0.5)
    try:
        db = store._db
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
        db.execute(
            "CREATE TRIGGER orphan AFTER INSERT ON kv WHEN NEW.key = 'bad' BEGIN INSERT INTO child VALUES (1); END"
        )
        before = store.revision()
        with pytest.raises(KVStoreError, match="writing bad failed: FOREIGN KEY constraint failed"):
            store.put("bad", "v")
        assert store.get("bad") is None and store.revision() == before  # nothing of it stayed
        assert other.put("from-other", "v")  # the write lock was released
        assert store.put("good", "v")  # and this handle is not stuck inside a transaction
        assert store.integrity_check() == "ok"
    finally:
        store.close()
        other.close()
