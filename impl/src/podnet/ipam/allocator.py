"""Pod-IP allocation inside one node's pod CIDR (in memory).

Usable addresses exclude the network address (and the broadcast address for
IPv4). The node's router IP (the container's gateway; Cilium's `cilium_host`
address) is reserved on construction and counted as in use. Every allocation
records an owner; an allocation may carry an expiry, after which it is
released unless `confirm` was called (Cilium's "expiration" for IPs handed to
a CNI/docker call that may never create its endpoint).

Candidates rotate like the CIDR set's, so a just-released IP is not reused at
once (stale ARP and conntrack entries on peers point at it for a while).
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from podnet.ipam.cidr import Address, Network, parse_address, parse_cidr
from podnet.ipam.errors import (
    AlreadyAllocatedError,
    InvalidCIDRError,
    IPAMError,
    NotInRangeError,
    PodCIDRExhaustedError,
    QuarantinedError,
    ReservedAddressError,
)

#: Pod CIDRs larger than this (IPv6 /64s) use only their first MAX_ADDRESSES addresses.
MAX_ADDRESSES = 1 << 20
ROUTER_OWNER = "router"
#: Holds the IP of a stored record that cannot be read (see podnet.kvstore.quarantine).
QUARANTINED_OWNER = "quarantined"

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Allocation:
    ip: Address
    owner: str
    expires_at: float | None = None  # None: held until released

    def to_json(self) -> dict[str, Any]:
        return {"ip": str(self.ip), "owner": self.owner, "expires_at": self.expires_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Allocation:
        expires = data.get("expires_at")
        return cls(parse_address(data["ip"]), str(data["owner"]), None if expires is None else float(expires))


def usable_range(pod_cidr: Network) -> tuple[int, int]:
    """First usable address (as int) and how many there are (capped)."""
    first = int(pod_cidr.network_address) + 1
    last = int(pod_cidr.broadcast_address) - (1 if pod_cidr.version == 4 else 0)
    return first, max(0, min(last - first + 1, MAX_ADDRESSES))


def pod_ip_capacity(pod_cidr: Network) -> int:
    """How many pod IPs a pod CIDR gives (usable addresses minus the router IP)."""
    return max(0, usable_range(pod_cidr)[1] - 1)


def validate_owner(owner: object) -> str:
    if not isinstance(owner, str) or not owner.strip() or len(owner) > 512:
        raise IPAMError(f"invalid IP owner {owner!r}: expected a non-empty string of at most 512 characters")
    return owner


class NodeAllocator:
    def __init__(
        self,
        pod_cidr: Network | str,
        *,
        router_ip: Address | str | None = None,
        clock: Clock = time.time,
    ):
        cidr = parse_cidr(pod_cidr, what="pod CIDR").network if isinstance(pod_cidr, str) else pod_cidr
        self.pod_cidr: Network = cidr
        self._first, self.capacity = usable_range(cidr)
        if self.capacity < 2:
            raise InvalidCIDRError(
                f"pod CIDR {cidr} is too small: it needs room for the router IP and at least one pod "
                f"(use at most /{cidr.max_prefixlen - 2 if cidr.version == 4 else cidr.max_prefixlen - 1})"
            )
        self._clock = clock
        # One byte per address (0 free, 1 used) for C-speed `find`; owners and
        # expiries by address index. Allocation objects are built on demand.
        self._used_map = bytearray(self.capacity)
        self._owners: dict[int, str] = {}
        self._expires: dict[int, float] = {}
        self._next = 0
        router = ipaddress.ip_address(self._first) if router_ip is None else self._as_address(router_ip, "router IP")
        self.router_ip: Address = router
        self.allocate_ip(router, ROUTER_OWNER)

    # -- helpers ----------------------------------------------------------
    def _as_address(self, ip: Address | str, what: str = "IP address") -> Address:
        address = parse_address(ip, what=what) if isinstance(ip, str) else ip
        self._index(address)
        return address

    def _index(self, address: Address) -> int:
        index = int(address) - self._first
        if address.version != self.pod_cidr.version or not 0 <= index < self.capacity:
            first = ipaddress.ip_address(self._first)
            last = ipaddress.ip_address(self._first + self.capacity - 1)
            raise NotInRangeError(f"{address} is not in range of pod CIDR {self.pod_cidr} (usable {first}-{last})")
        return index

    def _bounds(self, within: Network) -> tuple[int, int]:
        """The index range [lo, hi) of the usable addresses inside `within`."""
        if within.version != self.pod_cidr.version or not within.subnet_of(self.pod_cidr):  # type: ignore[arg-type]
            raise NotInRangeError(f"pool {within} is not inside pod CIDR {self.pod_cidr}")
        lo = max(0, int(within.network_address) - self._first)
        hi = min(self.capacity, int(within.broadcast_address) - self._first + 1)
        if hi <= lo:
            raise NotInRangeError(f"pool {within} has no usable address in pod CIDR {self.pod_cidr}")
        return lo, hi

    def _record(self, index: int) -> Allocation:
        return Allocation(ipaddress.ip_address(self._first + index), self._owners[index], self._expires.get(index))

    def _take(self, index: int, owner: str, expires_at: float | None) -> None:
        self._used_map[index] = 1
        self._owners[index] = owner
        if expires_at is None:
            self._expires.pop(index, None)
        else:
            self._expires[index] = expires_at

    def expiry(self, expires_in: float | None) -> float | None:
        """When an allocation made now for `expires_in` seconds expires (None: never)."""
        if expires_in is None:
            return None
        if expires_in <= 0:
            raise IPAMError(f"invalid expiration {expires_in!r}: must be a positive number of seconds")
        return self._clock() + expires_in

    def check_pod_ip(self, ip: Address | str) -> Address:
        """`ip` if a pod may have it: inside the pod CIDR, and neither its network or broadcast
        address nor the router IP (`NotInRangeError` / `ReservedAddressError` saying which)."""
        address = parse_address(ip) if isinstance(ip, str) else ip
        cidr = self.pod_cidr
        if address.version != cidr.version or address not in cidr:
            raise NotInRangeError(f"{address} is not in this node's pod CIDR {cidr}")
        if address == cidr.network_address:
            raise ReservedAddressError(f"{address} is the network address of pod CIDR {cidr}: it is never a pod's")
        if cidr.version == 4 and address == cidr.broadcast_address:
            raise ReservedAddressError(f"{address} is the broadcast address of pod CIDR {cidr}: it is never a pod's")
        if address == self.router_ip:
            raise ReservedAddressError(
                f"{address} is the node's router IP (every pod's gateway) in pod CIDR {cidr}: it is never a pod's"
            )
        self._index(address)  # beyond the addresses a large (IPv6) pod CIDR uses
        return address

    # -- queries ----------------------------------------------------------
    @property
    def used(self) -> int:
        return len(self._owners)

    @property
    def pod_capacity(self) -> int:
        return self.capacity - 1

    def is_full(self) -> bool:
        return self.used >= self.capacity

    def get(self, ip: Address | str) -> Allocation | None:
        index = self._index(self._as_address(ip))
        return self._record(index) if index in self._owners else None

    def allocations(self) -> list[Allocation]:
        return [self._record(i) for i in sorted(self._owners)]

    def exhausted_error(self) -> PodCIDRExhaustedError:
        return PodCIDRExhaustedError(
            f"pod CIDR {self.pod_cidr} is exhausted ({self.used}/{self.capacity} in use): "
            "remove containers or pods this node no longer needs (`podnet ipam list` shows who holds each IP)"
        )

    # -- operations -------------------------------------------------------
    def allocate(self, owner: str, *, expires_in: float | None = None, within: Network | None = None) -> Allocation:
        """The next free IP (inside `within`, a sub-range of the pod CIDR, when given)."""
        validate_owner(owner)
        if self._expires:
            self.expire()
        if within is None:
            if self.is_full():
                raise self.exhausted_error()
            index = self._used_map.find(0, self._next)
            if index < 0:
                index = self._used_map.find(0, 0, self._next)
            self._next = (index + 1) % self.capacity
        else:
            lo, hi = self._bounds(within)
            index = self._used_map.find(0, lo, hi)
            if index < 0:
                used = hi - lo - self._used_map.count(0, lo, hi)
                raise PodCIDRExhaustedError(
                    f"pool {within} (in pod CIDR {self.pod_cidr}) is exhausted ({used}/{hi - lo} in use)"
                )
        expires_at = self.expiry(expires_in)
        self._take(index, owner, expires_at)
        return Allocation(ipaddress.ip_address(self._first + index), owner, expires_at)

    def allocate_ip(self, ip: Address | str, owner: str, *, expires_in: float | None = None) -> Allocation:
        validate_owner(owner)
        address = self._as_address(ip)
        index = self._index(address)
        if self._expires:
            self.expire()
        held = self._owners.get(index)
        if held == QUARANTINED_OWNER:
            raise QuarantinedError(
                f"{address} is held by a stored record that cannot be read (quarantined, see healthz); "
                "repair or delete that record first"
            )
        if held is not None:
            what = "the node's router IP" if held == ROUTER_OWNER else f"owner {held!r}"
            raise AlreadyAllocatedError(f"{address} is already allocated in pod CIDR {self.pod_cidr} (held by {what})")
        expires_at = self.expiry(expires_in)
        self._take(index, owner, expires_at)
        return Allocation(address, owner, expires_at)

    def release(self, ip: Address | str) -> Allocation | None:
        """Free `ip`; None when it was not allocated (not an error)."""
        address = self._as_address(ip)
        index = self._index(address)
        if address == self.router_ip:
            raise IPAMError(f"{address} is the node's router IP in pod CIDR {self.pod_cidr}; it cannot be released")
        if index not in self._owners:
            return None
        record = self._record(index)
        del self._owners[index]
        self._expires.pop(index, None)
        self._used_map[index] = 0
        return record

    def confirm(self, ip: Address | str) -> Allocation:
        """Keep an expiring allocation for good (its endpoint now exists)."""
        index = self._index(self._as_address(ip))
        if index not in self._owners:
            raise IPAMError(f"{ip} is not allocated in pod CIDR {self.pod_cidr}; nothing to confirm")
        self._expires.pop(index, None)
        return self._record(index)

    def reassign(self, ip: Address | str, owner: str, *, expires_in: float | None = None) -> Allocation:
        """Give an allocated IP a new owner and expiry (None: keep for good).

        Never the router IP's (a pod holding the node's own address breaks the
        node), nor a quarantined record's."""
        validate_owner(owner)
        address = self._as_address(ip)
        index = self._index(address)
        if address == self.router_ip:
            raise ReservedAddressError(
                f"{address} is the node's router IP in pod CIDR {self.pod_cidr}: it cannot be given to {owner!r}"
            )
        if self._owners.get(index) == QUARANTINED_OWNER:
            raise QuarantinedError(f"{address} is held by a quarantined stored record; it cannot be given to {owner!r}")
        if index not in self._owners:
            raise IPAMError(f"{ip} is not allocated in pod CIDR {self.pod_cidr}; nothing to reassign")
        self._take(index, owner, self.expiry(expires_in))
        return self._record(index)

    def expired(self, now: float | None = None) -> list[Allocation]:
        if not self._expires:
            return []
        now = self._clock() if now is None else now
        return [self._record(i) for i, at in sorted(self._expires.items()) if at <= now]

    def expire(self, now: float | None = None) -> list[Allocation]:
        """Release every allocation whose expiry has passed; returns them."""
        gone = self.expired(now)
        for record in gone:
            self.release(record.ip)
        return gone

    def restore(self, allocations: Iterable[Allocation]) -> None:
        """Load persisted allocations (overwriting what is held for the same IP)."""
        for allocation in allocations:
            index = self._index(self._as_address(allocation.ip))
            if allocation.ip == self.router_ip and allocation.owner != ROUTER_OWNER:
                raise AlreadyAllocatedError(
                    f"persisted allocation of {allocation.ip} to {allocation.owner!r} collides with the router IP"
                )
            self._take(index, allocation.owner, allocation.expires_at)

    def scatter(self) -> None:
        """Continue from a random candidate (after losing a race to another writer)."""
        self._next = random.randrange(self.capacity)

    def forget(self, ip: Address | str) -> None:
        """Drop local knowledge of `ip` (another process released it)."""
        if self._as_address(ip) != self.router_ip:
            self.release(ip)
