"""A real store that runs another writer's steps at an exact point of a reader's operation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from podnet.kvstore import Condition, Entry, KVStore, Operation


class Interleaved(KVStore):
    """Delegates to `store`; the next `get(key)` or `list_prefix(key)` of a hooked key runs
    `then()` after reading, before returning what it read."""

    def __init__(self, store: KVStore):
        self.store = store
        self.url = store.url
        self._hooks: dict[str, Callable[[], None]] = {}
        self.listed: list[str] = []  # every prefix listed, in order

    def after_reading(self, key: str, then: Callable[[], None]) -> None:
        self._hooks[key] = then

    def _fire(self, key: str) -> None:
        hook = self._hooks.pop(key, None)
        if hook is not None:
            hook()

    def get(self, key: str) -> Entry | None:
        entry = self.store.get(key)
        self._fire(key)
        return entry

    def list_prefix(self, prefix: str) -> list[Entry]:
        entries = self.store.list_prefix(prefix)
        self.listed.append(prefix)
        self._fire(prefix)
        return entries

    def put(self, key: str, value: bytes | str) -> int:
        return self.store.put(key, value)

    def create(self, key: str, value: bytes | str) -> int:
        return self.store.create(key, value)

    def compare_and_swap(self, key: str, value: bytes | str, *, mod_revision: int) -> int:
        return self.store.compare_and_swap(key, value, mod_revision=mod_revision)

    def delete(self, key: str, *, mod_revision: int | None = None) -> bool:
        return self.store.delete(key, mod_revision=mod_revision)

    def commit(self, conditions: Sequence[Condition], operations: Sequence[Operation]) -> int:
        return self.store.commit(conditions, operations)

    def revision(self) -> int:
        return self.store.revision()

    def close(self) -> None:
        pass
