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
