"""etcd v3 backend (etcd's grpc-gateway JSON API, over the standard library's http.client).

Used when several nodes share one store (the multi-node lab runs Debian's
`etcd-server` on the control node). Conditional writes are etcd transactions
comparing a key's mod revision, so they are atomic cluster-wide.

Every call is one JSON POST to `/v3/kv/…`, on a keep-alive connection of the
calling thread's own. No client library: etcd3gw (with futurist and requests
below it) cost 0.26 s of imports here, ~8 s in a TCG VM, for that one POST.
"""

from __future__ import annotations

import base64
import json
import threading
import weakref
from collections.abc import Sequence
from http.client import HTTPConnection, HTTPException, RemoteDisconnected
from typing import Any

from podnet.kvstore.base import (
    Condition,
    Entry,
    KVStore,
    KVStoreError,
    NothingNewer,
    Operation,
    Put,
    as_bytes,
    check_operations,
)


def _b64(data: bytes | str) -> str:
    return base64.b64encode(as_bytes(data)).decode()


def _prefix_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return _b64(b"\0")  # whole keyspace
    raw[-1] += 1
    return _b64(bytes(raw))


class _Connection(threading.local):
    """The calling thread's connection, and the store generation it was opened in."""

    conn: HTTPConnection | None = None
    generation = 0


class EtcdStore(KVStore):
    def __init__(self, endpoints: list[tuple[str, int]], *, timeout_s: float = 10.0):
        if not endpoints:
            raise KVStoreError("etcd kvstore URL names no endpoint (expected etcd://HOST:PORT)")
        self.url = "etcd://" + ",".join(f"{h}:{p}" for h, p in endpoints)
        self._endpoints = endpoints
        self._timeout_s = timeout_s
        self._local = _Connection()
        self._generation = 0  # reconnect() moves it: every thread opens a new connection
        self._opened: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()  # every thread's
        self._busy: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()  # those a call is using
        self._opened_lock = threading.Lock()

    def _connection(self) -> tuple[HTTPConnection, bool]:
        """The thread's connection, and whether it was used before (it may have gone stale)."""
        local = self._local
        if local.conn is not None and local.generation != self._generation:
            local.conn.close()
            local.conn = None
        if local.conn is not None:
            return local.conn, True
        host, port = self._endpoints[0]
        local.conn = HTTPConnection(host, port, timeout=self._timeout_s)
        local.generation = self._generation
        self._opened.add(local.conn)
        return local.conn, False

    def _drop(self) -> None:
        if self._local.conn is not None:
            self._local.conn.close()
            self._local.conn = None

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        while True:
            with self._opened_lock:  # reconnect() closes only connections no call is using
                conn, reused = self._connection()
                self._busy.add(conn)
            try:
                conn.request("POST", f"/v3{path}", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
            except (RemoteDisconnected, BrokenPipeError, ConnectionResetError) as err:
                self._drop()
                if reused:  # an idle keep-alive connection etcd closed: the request never reached it
                    continue
                raise KVStoreError(f"kvstore {self.url} is unreachable ({path}): {err}") from err
            except (OSError, HTTPException) as err:  # refused, timed out, no route, a garbled reply
                self._drop()
                raise KVStoreError(f"kvstore {self.url} is unreachable ({path}): {err or type(err).__name__}") from err
            finally:
                with self._opened_lock:
                    self._busy.discard(conn)
            break
        try:
            result = json.loads(data) if data else {}
        except ValueError:
            result = None
        if response.status != 200 or not isinstance(result, dict):
            detail = result.get("message") or result.get("error") if isinstance(result, dict) else None
            text = detail or data[:200].decode(errors="replace") or response.reason
            raise KVStoreError(f"kvstore {self.url} refused {path}: HTTP {response.status}: {text}")
        return result

    @staticmethod
    def _entry(kv: dict[str, Any]) -> Entry:
        return Entry(
            key=base64.b64decode(kv["key"]).decode(),
            value=base64.b64decode(kv.get("value", "")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
        )

    def get(self, key: str) -> Entry | None:
        result = self._post("/kv/range", {"key": _b64(key)})
        kvs = result.get("kvs", [])
        return self._entry(kvs[0]) if kvs else None

    def put(self, key: str, value: bytes | str) -> int:
        result = self._post("/kv/put", {"key": _b64(key), "value": _b64(value)})
        return int(result["header"]["revision"])

    def create(self, key: str, value: bytes | str) -> int:
        return self.compare_and_swap(key, value, mod_revision=0)

    def _txn(self, key: str, mod_revision: int, success: dict[str, Any]) -> int:
        """Run `success` if `key`'s mod revision matches; the new revision, or 0."""
        txn = {
            "compare": [{"key": _b64(key), "result": "EQUAL", "target": "MOD", "mod_revision": mod_revision}],
            "success": [success],
            "failure": [],
        }
        result = self._post("/kv/txn", txn)
        return int(result["header"]["revision"]) if result.get("succeeded", False) else 0

    def compare_and_swap(self, key: str, value: bytes | str, *, mod_revision: int) -> int:
        return self._txn(key, mod_revision, {"request_put": {"key": _b64(key), "value": _b64(value)}})

    def delete(self, key: str, *, mod_revision: int | None = None) -> bool:
        request = {"key": _b64(key)}
        if mod_revision is None:
            return int(self._post("/kv/deleterange", request).get("deleted", 0)) > 0
        if mod_revision == 0:
            return False
        return self._txn(key, mod_revision, {"request_delete_range": request}) > 0

    @staticmethod
    def _compare(condition: Condition) -> dict[str, Any]:
        if isinstance(condition, NothingNewer):
            # A range compare holds for every key in the range (and for an empty range):
            # each key's mod revision is below revision + 1.
            return {
                "key": _b64(condition.prefix),
                "range_end": _prefix_end(condition.prefix),
                "target": "MOD",
                "result": "LESS",
                "mod_revision": condition.revision + 1,
            }
        return {"key": _b64(condition.key), "target": "MOD", "result": "EQUAL", "mod_revision": condition.mod_revision}

    def commit(self, conditions: Sequence[Condition], operations: Sequence[Operation]) -> int:
        check_operations(operations)
        success = [
            {"request_put": {"key": _b64(op.key), "value": _b64(op.value)}}
            if isinstance(op, Put)
            else {"request_delete_range": {"key": _b64(op.key)}}
            for op in operations
        ]
        txn = {"compare": [self._compare(c) for c in conditions], "success": success, "failure": []}
        result = self._post("/kv/txn", txn)
        return int(result["header"]["revision"]) if result.get("succeeded", False) else 0

    def list_prefix(self, prefix: str) -> list[Entry]:
        result = self._post(
            "/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix), "sort_order": "ASCEND"}
        )
        return [self._entry(kv) for kv in result.get("kvs", [])]

    def revision(self) -> int:
        result = self._post("/kv/range", {"key": _b64("\0"), "count_only": True})
        return int(result["header"]["revision"])

    def close(self) -> None:
        self._generation += 1
        with self._opened_lock:
            opened, self._opened = list(self._opened), weakref.WeakSet()
        for conn in opened:
            conn.close()

    @property
    def peer(self) -> tuple[str, int] | None:
        return self._endpoints[0]

    def reconnect(self) -> None:
        """New connections from every thread's next call (they follow the routes' new source): the
        idle ones are closed now, those in use when their call ends."""
        with self._opened_lock:
            self._generation += 1
            for conn in [c for c in self._opened if c not in self._busy]:
                conn.close()
