"""Two writers on one pod CIDR, on the embedded SQLite store (etcd: tests/integration)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.kvstore import KVStore
from podnet.kvstore.sqlite import SQLiteStore
from tests.ipam_two_writers import TwoWritersContract


class TestTwoWritersOnSQLite(TwoWritersContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[KVStore]:
        with SQLiteStore(tmp_path / "state.db") as s:
            yield s
