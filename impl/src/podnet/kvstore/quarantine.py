"""Stored records that cannot be read: kept as they are, listed, never acted on.

One bad record must never stop a node, and what cannot be read must never be
taken for absent (an endpoint record a newer version wrote is not a leak; an
allocation with a broken expiry still holds its IP). Whoever reads a record
and cannot make sense of it puts its key here with the reason, and treats
what the key itself says as taken: the IP of a pod-IP key stays reserved, the
CIDR of a node-CIDR key is never handed out, the veth of an endpoint key is
not a leak. Nothing here writes or deletes: the record stays in the store for
a person (or a later version) to repair; `GET /v1/healthz` and
`podnet status` list it, and a record that reads well again leaves the list
at the next read.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from podnet.kvstore.base import Entry

log = logging.getLogger("podnet.quarantine")


@dataclass(frozen=True)
class QuarantinedRecord:
    key: str
    reason: str


class UnreadableRecordError(ValueError):
    """A stored record's value cannot be used; the message says why."""


def json_object(entry: Entry) -> dict[str, Any]:
    """The record's JSON object, or `UnreadableRecordError` saying why not."""
    try:
        data = json.loads(entry.value)
    except (ValueError, UnicodeDecodeError) as err:
        raise UnreadableRecordError(f"not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise UnreadableRecordError(f"not a JSON object (a {type(data).__name__})")
    return data


class Quarantine:
    """The unreadable records one process knows of, by key (thread-safe)."""

    def __init__(self) -> None:
        self._records: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, key: str, reason: str) -> None:
        with self._lock:
            known = self._records.get(key)
            self._records[key] = reason
        if known != reason:
            log.warning("quarantined stored record %s: %s (kept as it is; repair or delete it)", key, reason)

    def discard(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def reset(self, prefix: str, found: dict[str, str]) -> None:
        """After re-reading every key under `prefix`: exactly `found` is quarantined there."""
        with self._lock:
            for key in [k for k in self._records if k.startswith(prefix) and k not in found]:
                del self._records[key]
        for key, reason in found.items():
            self.add(key, reason)

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def reason(self, key: str) -> str | None:
        return self._records.get(key)

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self._records if k.startswith(prefix))

    def records(self) -> list[QuarantinedRecord]:
        with self._lock:
            return [QuarantinedRecord(k, r) for k, r in sorted(self._records.items())]
