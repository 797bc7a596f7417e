"""The key-value store interface every piece of podnet state goes through.

Keys are `/`-separated strings, values are bytes. Every write bumps a
store-wide revision; each entry remembers the revision that created it and the
one that last modified it, so callers can do compare-and-swap and
compare-and-delete without locks (etcd's model, reproduced by the SQLite
backend). `commit` writes several keys at once under conditions (an etcd
transaction; one SQLite transaction).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from podnet.errors import PodnetError, Reason


class KVStoreError(PodnetError):
    """The store could not be opened or did not answer."""

    reason = Reason.store_unavailable


@dataclass(frozen=True)
class Entry:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class Unchanged:
    """Condition: `key` was last modified at `mod_revision` (0: `key` is absent)."""

    key: str
    mod_revision: int


@dataclass(frozen=True)
class NothingNewer:
    """Condition: no key under `prefix` was created or modified after `revision`.

    (Deleting a key under `prefix` does not break it.)"""

    prefix: str
    revision: int


@dataclass(frozen=True)
class Put:
    key: str
    value: bytes | str


@dataclass(frozen=True)
class Delete:
    """Delete `key` (absent: nothing to do)."""

    key: str


Condition = Unchanged | NothingNewer
Operation = Put | Delete


def check_operations(operations: Sequence[Operation]) -> None:
    keys = [op.key for op in operations]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise KVStoreError(f"a transaction writes each key at most once; repeated: {', '.join(twice)}")


def as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


class KVStore(abc.ABC):
    """get / put / delete (compare-and-delete) / list-prefix / create / compare-and-swap / commit."""

    url: str

    @abc.abstractmethod
    def get(self, key: str) -> Entry | None:
        """The entry at `key`, or None."""

    @abc.abstractmethod
    def put(self, key: str, value: bytes | str) -> int:
        """Write unconditionally; returns the new store revision."""

    @abc.abstractmethod
    def create(self, key: str, value: bytes | str) -> int:
        """Write only if `key` does not exist.

        Returns the entry's new mod revision, or 0 when the key exists.
        """

    @abc.abstractmethod
    def compare_and_swap(self, key: str, value: bytes | str, *, mod_revision: int) -> int:
        """Write only if `key` was last modified at `mod_revision` (0: absent).

        Returns the entry's new mod revision, or 0 when the condition failed.
        """

    @abc.abstractmethod
    def delete(self, key: str, *, mod_revision: int | None = None) -> bool:
        """Delete `key` (only if unchanged since `mod_revision`, when given).

        True if something was deleted; deleting an absent key is not an error.
        """

    @abc.abstractmethod
    def commit(self, conditions: Sequence[Condition], operations: Sequence[Operation]) -> int:
        """Apply every operation at once if every condition holds (one atomic transaction).

        Returns the store revision after it (> 0), or 0 when a condition failed
        and nothing was written. Each key appears in at most one operation.
        """

    @abc.abstractmethod
    def list_prefix(self, prefix: str) -> list[Entry]:
        """Every entry whose key starts with `prefix`, sorted by key."""

    @abc.abstractmethod
    def revision(self) -> int:
        """The store-wide revision: it changes whenever anything is written.

        Cheap to poll; this is how watchers notice changes on every backend.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store object is unusable afterwards."""

    @property
    def peer(self) -> tuple[str, int] | None:
        """Where the store's connections go (host, port): None for a store without any (SQLite)."""
        return None

    def reconnect(self) -> None:
        """Close the pooled connections; the next call opens a new one, from the source address
        the kernel chooses then (a store without connections has nothing to do)."""
        return None

    def __enter__(self) -> KVStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
