"""podnet's state store: one interface, an embedded SQLite and an etcd backend.

Pick one with a URL:

- ``sqlite:///var/lib/podnet/state.db`` (default; one node, several processes)
- ``sqlite:///PATH?synchronous=full`` (fsync every commit; survives power loss)
- ``sqlite:///PATH?busy_timeout=5`` (seconds a write waits for another process's
  write lock before failing with a `KVStoreError`; 5 by default, well below the
  agent clients' 30 s deadline)
- ``etcd://10.0.0.1:2379`` (several nodes; Debian's ``etcd-server``)
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from podnet.kvstore.base import (
    Condition,
    Delete,
    Entry,
    KVStore,
    KVStoreError,
    NothingNewer,
    Operation,
    Put,
    Unchanged,
)

__all__ = [
    "DEFAULT_URL",
    "Condition",
    "Delete",
    "Entry",
    "KVStore",
    "KVStoreError",
    "NothingNewer",
    "Operation",
    "Put",
    "Unchanged",
    "open_store",
]

DEFAULT_URL = "sqlite:///var/lib/podnet/state.db"
_EXPECTED = "expected sqlite:///ABSOLUTE/PATH or etcd://HOST:PORT"


def open_store(url: str) -> KVStore:
    """Open the store a URL names; a bad URL is a `KVStoreError` saying why."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from podnet.kvstore.sqlite import DEFAULT_BUSY_TIMEOUT_S, SQLiteStore

        if parts.netloc or not parts.path.startswith("/"):
            raise KVStoreError(f"invalid kvstore URL {url!r}: the path must be absolute ({_EXPECTED})")
        query = parse_qs(parts.query)
        unknown = set(query) - {"synchronous", "busy_timeout"}
        if unknown:
            raise KVStoreError(f"invalid kvstore URL {url!r}: unknown option(s) {', '.join(sorted(unknown))}")
        synchronous = query.get("synchronous", ["normal"])[-1]
        busy = query.get("busy_timeout", [str(DEFAULT_BUSY_TIMEOUT_S)])[-1]
        try:
            busy_timeout_s = float(busy)
        except ValueError:
            raise KVStoreError(
                f"invalid kvstore URL {url!r}: busy_timeout {busy!r} is not a number of seconds"
            ) from None
        return SQLiteStore(parts.path, synchronous=synchronous, busy_timeout_s=busy_timeout_s)
    if parts.scheme == "etcd":
        from podnet.kvstore.etcd import EtcdStore

        endpoints: list[tuple[str, int]] = []
        for item in filter(None, parts.netloc.split(",")):
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise KVStoreError(f"invalid kvstore URL {url!r}: endpoint {item!r} is not HOST:PORT")
            endpoints.append((host.strip("[]"), int(port)))
        if not endpoints or parts.path not in ("", "/"):
            raise KVStoreError(f"invalid kvstore URL {url!r}: {_EXPECTED}")
        return EtcdStore(endpoints)
    raise KVStoreError(f"unsupported kvstore URL {url!r}: {_EXPECTED}")
