"""Interface names derived from endpoint IDs (Cilium's `lxc<hash>` scheme)."""

from __future__ import annotations

import hashlib

IFNAMSIZ = 15  # usable characters in a Linux interface name
HOST_PREFIX = "lxc"
TEMP_PREFIX = "tmp"


def _digest(endpoint_id: str) -> str:
    return hashlib.sha256(endpoint_id.encode()).hexdigest()


def host_ifname(endpoint_id: str) -> str:
    """The host-side veth of an endpoint: `lxc` + 12 hex digits."""
    return HOST_PREFIX + _digest(endpoint_id)[: IFNAMSIZ - len(HOST_PREFIX)]


def temp_ifname(endpoint_id: str) -> str:
    """The container-side veth before the runtime moves and renames it."""
    return TEMP_PREFIX + _digest(endpoint_id)[: IFNAMSIZ - len(TEMP_PREFIX)]


def mac_for(endpoint_id: str, side: str) -> str:
    """A stable, locally administered unicast MAC for one side of an endpoint."""
    raw = bytearray(hashlib.sha256(f"{side}:{endpoint_id}".encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)
