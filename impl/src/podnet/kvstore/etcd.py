"""etcd v3 backend (through etcd's grpc-gateway JSON API, with etcd3gw).

Used when several nodes share one store (the multi-node lab runs Debian's
`etcd-server` on the control node). Conditional writes are etcd transactions
comparing a key's mod revision, so they are atomic cluster-wide.

etcd3gw (and requests below it, ~0.15 s) is imported by the first call, not by
opening the store: an agent waiting for its pod CIDR serves its healthz first.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

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

if TYPE_CHECKING:
    from etcd3gw.client import Etcd3Client

T = TypeVar("T")


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


class EtcdStore(KVStore):
    def __init__(self, endpoints: list[tuple[str, int]], *, timeout_s: float = 10.0):
        if not endpoints:
            raise KVStoreError("etcd kvstore URL names no endpoint (expected etcd://HOST:PORT)")
        self.url = "etcd://" + ",".join(f"{h}:{p}" for h, p in endpoints)
        self._endpoints = endpoints
        self._timeout_s = timeout_s
        self._client: Etcd3Client | None = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Etcd3Client:
        """etcd3gw's client, made (and etcd3gw imported) on first use."""
        with self._client_lock:
            if self._client is None:
                from etcd3gw.client import Etcd3Client

                host, port = self._endpoints[0]
                self._client = Etcd3Client(host=host, port=port, timeout=self._timeout_s, api_path="/v3/")
            return self._client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from etcd3gw import exceptions as etcd_exceptions  # imported by the client already

        try:
            return fn()
        except (etcd_exceptions.ConnectionFailedError, etcd_exceptions.ConnectionTimeoutError) as err:
            raise KVStoreError(f"kvstore {self.url} is unreachable ({what}): {err}") from err
        except etcd_exceptions.Etcd3Exception as err:
            raise KVStoreError(f"kvstore {self.url} refused {what}: {err.detail_text or err}") from err

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        client = self.client
        result: dict[str, Any] = self._call(path, lambda: client.post(client.get_url(path), json=payload))
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
        if self._client is not None:
            self._client.session.close()

    @property
    def peer(self) -> tuple[str, int] | None:
        return self._endpoints[0]

    def reconnect(self) -> None:
        # requests' Session stays usable: closing empties its pools, the next call fills them again.
        if self._client is not None:  # none yet: the first call opens its connections anew
            self._client.session.close()
