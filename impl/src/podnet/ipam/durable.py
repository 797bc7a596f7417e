"""IPAM state kept in the kvstore, safe with several processes at once.

One key per allocation, written with an atomic create: whoever creates the key
holds the address, so two processes (or two nodes sharing etcd) can never hand
out the same one. Each process keeps an in-memory map to pick candidates fast;
a lost race just teaches it that the candidate is taken. A process killed at
any point leaves each key either fully written or absent.

Layout (see podnet.kvstore.keys):
    podnet/ipam/pods/<pod-cidr>/<ip>     {"ip", "owner", "expires_at"}
    podnet/ipam/nodecidrs/<node-cidr>    {"node", "cidr"}
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from podnet.ipam.allocator import ROUTER_OWNER, Allocation, Clock, NodeAllocator, validate_owner
from podnet.ipam.cidr import Address, Network, parse_address, parse_cidr
from podnet.ipam.clusterpool import ClusterPool
from podnet.ipam.errors import AlreadyAllocatedError, IPAMError, NotInRangeError, PodCIDRExhaustedError
from podnet.kvstore import Entry, KVStore, KVStoreError, keys

_RETRIES = 5  # conditional writes lost in a row before giving up (each one means another writer progressed)


class CorruptRecordError(IPAMError):
    """A stored record cannot be read back."""


def _decode(entry: Entry) -> dict[str, Any]:
    try:
        data = json.loads(entry.value)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    except ValueError as err:
        raise CorruptRecordError(
            f"kvstore record {entry.key} is not valid JSON ({err}); remove it or restore a backup"
        ) from err


class DurableNodeAllocator:
    """A `NodeAllocator` whose every change is a kvstore transaction."""

    def __init__(
        self,
        store: KVStore,
        pod_cidr: Network | str,
        *,
        router_ip: Address | str | None = None,
        clock: Clock = time.time,
    ):
        self.store = store
        self._clock = clock
        self.mem = NodeAllocator(pod_cidr, router_ip=router_ip, clock=clock)
        self.prefix = keys.pod_ips(self.mem.pod_cidr)
        self._revs: dict[Address, int] = {}
        self._claim_router()
        self.refresh()

    @property
    def pod_cidr(self) -> Network:
        return self.mem.pod_cidr

    @property
    def router_ip(self) -> Address:
        return self.mem.router_ip

    def _key(self, ip: Address) -> str:
        return keys.pod_ip(self.mem.pod_cidr, ip)

    def _claim_router(self) -> None:
        router = self.mem.get(self.mem.router_ip)
        assert router is not None
        key = self._key(router.ip)
        if self.store.create(key, json.dumps(router.to_json())):
            return
        entry = self.store.get(key)
        if entry is not None and _decode(entry).get("owner") != ROUTER_OWNER:
            raise AlreadyAllocatedError(
                f"router IP {router.ip} is allocated to {_decode(entry).get('owner')!r} in the kvstore; "
                f"choose another router IP or release it"
            )

    def refresh(self) -> None:
        """Re-read every allocation of this pod CIDR from the store."""
        entries = self.store.list_prefix(self.prefix)
        held = {}
        for entry in entries:
            allocation = Allocation.from_json(_decode(entry))
            held[allocation.ip] = (allocation, entry.mod_revision)
        for record in self.mem.allocations():
            if record.ip not in held:
                self.mem.forget(record.ip)
                self._revs.pop(record.ip, None)
        self.mem.restore(a for a, _ in held.values())
        self._revs = {ip: rev for ip, (_, rev) in held.items()}

    def _learn(self, ip: Address) -> Allocation | None:
        """Sync one address from the store into memory."""
        entry = self.store.get(self._key(ip))
        if entry is None:
            self.mem.forget(ip)
            self._revs.pop(ip, None)
            return None
        allocation = Allocation.from_json(_decode(entry))
        self.mem.restore([allocation])
        self._revs[ip] = entry.mod_revision
        return allocation

    def _write_new(self, allocation: Allocation) -> bool:
        try:
            revision = self.store.create(self._key(allocation.ip), json.dumps(allocation.to_json()))
        except KVStoreError:
            self.mem.forget(allocation.ip)  # nothing was written: memory must not hold the address either
            raise
        if revision:
            self._revs[allocation.ip] = revision
        return revision > 0

    def expire(self, now: float | None = None) -> list[Allocation]:
        """Release expired allocations (unless another process confirmed them first)."""
        gone = []
        for record in self.mem.expired(now):
            rev = self._revs.get(record.ip, 0)
            if self.store.delete(self._key(record.ip), mod_revision=rev):
                self.mem.release(record.ip)
                self._revs.pop(record.ip, None)
                gone.append(record)
            else:
                self._learn(record.ip)
        return gone

    def allocate(self, owner: str, *, expires_in: float | None = None, within: Network | None = None) -> Allocation:
        validate_owner(owner)
        refreshed = False
        while True:
            self.expire()
            try:
                candidate = self.mem.allocate(owner, expires_in=expires_in, within=within)
            except PodCIDRExhaustedError:
                if refreshed:
                    raise
                self.refresh()  # other processes may have released addresses
                refreshed = True
                continue
            if self._write_new(candidate):
                return candidate
            # Lost the race: learn who holds it, and get out of the other writers' way.
            self._learn(candidate.ip)
            self.mem.scatter()

    def allocate_ip(self, ip: Address | str, owner: str, *, expires_in: float | None = None) -> Allocation:
        address = parse_address(ip) if isinstance(ip, str) else ip
        for _ in range(3):
            self._learn(address)
            self.expire()
            allocation = self.mem.allocate_ip(address, owner, expires_in=expires_in)
            if self._write_new(allocation):
                return allocation
        raise AlreadyAllocatedError(f"{address} is being allocated concurrently in pod CIDR {self.pod_cidr}; try again")

    def release(self, ip: Address | str) -> Allocation | None:
        """Free `ip`: the allocation this allocator last saw there (what `get` showed).

        Deletes only at the revision it read (compare-and-delete). When another
        writer changed the record in between, it is read again: still the same
        owner (a new expiry), it retries; another owner now, it is left alone.
        Returns what was released, or None.
        """
        address = parse_address(ip) if isinstance(ip, str) else ip
        if address == self.mem.router_ip:
            self.mem.release(address)  # the router IP's error
        seen = self.mem.get(address)  # validates the range; the owner the caller saw
        for _ in range(_RETRIES):
            current = self._learn(address)
            if current is None:
                return None
            if seen is None:
                seen = current  # the caller saw nothing: the holder as first read
            if current.owner != seen.owner:
                return None
            if self.store.delete(self._key(address), mod_revision=self._revs[address]):
                self.mem.release(address)
                self._revs.pop(address, None)
                return current
        raise IPAMError(f"{address} in pod CIDR {self.pod_cidr} kept changing while being released; try again")

    def confirm(self, ip: Address | str) -> Allocation:
        """Keep an expiring allocation for good."""
        address = parse_address(ip) if isinstance(ip, str) else ip
        current = self._learn(address)
        if current is None:
            raise IPAMError(f"{address} is not allocated in pod CIDR {self.pod_cidr}; nothing to confirm")
        if current.expires_at is None:
            return current
        return self.claim(address, current.owner)

    def claim(self, ip: Address | str, owner: str, *, expires_in: float | None = None) -> Allocation:
        """Make `owner` the holder of `ip` (allocating it if free), with a new expiry.

        How an endpoint takes over the IP its runtime asked for (an expiring
        allocation becomes permanent), and how a deleted endpoint hands it back
        to expiry until the runtime releases it.

        Takes over only what the caller saw (`get`): the holder read from the
        store must be `owner` itself or the owner this allocator last saw there,
        and the swap happens only at the revision read (compare-and-swap); when
        another writer changed the record in between, it is read again and
        checked again. A holder the caller never saw is an
        `AlreadyAllocatedError` naming it (and `get` now shows it).
        """
        address = parse_address(ip) if isinstance(ip, str) else ip
        validate_owner(owner)
        seen = self.mem.get(address)
        accepted = {owner} if seen is None else {owner, seen.owner}
        for _ in range(_RETRIES):
            current = self._learn(address)
            if current is None:
                try:
                    return self.allocate_ip(address, owner, expires_in=expires_in)
                except AlreadyAllocatedError:
                    continue
            if current.owner not in accepted:
                raise AlreadyAllocatedError(
                    f"{address} is held by {current.owner!r} in pod CIDR {self.pod_cidr} "
                    f"(it changed hands since this node last read it); not taking it over for {owner!r}"
                )
            updated = Allocation(address, owner, self.mem.expiry(expires_in))
            value = json.dumps(updated.to_json())
            revision = self.store.compare_and_swap(self._key(address), value, mod_revision=self._revs[address])
            if revision:
                self.mem.restore([updated])
                self._revs[address] = revision
                return updated
        raise IPAMError(f"{address} in pod CIDR {self.pod_cidr} kept changing while being claimed; try again")

    def get(self, ip: Address | str) -> Allocation | None:
        return self.mem.get(ip)

    def allocations(self) -> list[Allocation]:
        return self.mem.allocations()


_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def validate_node_name(name: object) -> str:
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        raise IPAMError(
            f"invalid node name {name!r}: use lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit (at most 253 characters)"
        )
    return name


@dataclass(frozen=True)
class NodeCIDR:
    node: str
    cidr: Network


class DurableClusterPool:
    """Node pod CIDRs from a `ClusterPool`, one kvstore key per node CIDR."""

    def __init__(self, store: KVStore, pool: ClusterPool):
        self.store = store
        self.pool = pool
        self._by_cidr: dict[Network, str] = {}
        #: Stored node CIDRs that no configured cluster CIDR contains (config changed).
        self.orphans: list[NodeCIDR] = []
        self.restore()

    def restore(self) -> None:
        """Re-read every node CIDR from the store before handing out new ones."""
        self._by_cidr.clear()
        self.orphans = []
        for entry in self.store.list_prefix(keys.NODE_CIDRS):
            data = _decode(entry)
            cidr = parse_cidr(data.get("cidr"), what=f"stored node CIDR ({entry.key})").network
            node = str(data.get("node"))
            try:
                self.pool.occupy(cidr)
            except NotInRangeError:
                self.orphans.append(NodeCIDR(node, cidr))
                continue
            self._by_cidr[cidr] = node

    def node_cidrs(self) -> list[NodeCIDR]:
        return sorted(
            (NodeCIDR(n, c) for c, n in self._by_cidr.items()), key=lambda nc: (nc.node, int(nc.cidr.network_address))
        )

    def cidrs_of(self, node: str) -> list[Network]:
        return [c for c, n in self._by_cidr.items() if n == node]

    def allocate(self, node: str) -> Network:
        """The node's pod CIDR: its existing one, else the next free one."""
        validate_node_name(node)
        existing = self.cidrs_of(node)
        if existing:
            return existing[0]
        refreshed = False
        while True:
            if self.pool.is_full():
                if refreshed:
                    raise self.pool.exhausted_error()
                self.restore()
                refreshed = True
                if self.cidrs_of(node):
                    return self.cidrs_of(node)[0]
                continue
            cidr = self.pool.allocate()
            key = keys.node_cidr(cidr)
            if self.store.create(key, json.dumps({"node": node, "cidr": str(cidr)})):
                self._by_cidr[cidr] = node
                return cidr
            entry = self.store.get(key)
            if entry is not None:
                self._by_cidr[cidr] = str(_decode(entry).get("node"))
            else:
                self.pool.release(cidr)

    def release_node(self, node: str) -> list[Network]:
        """Free every CIDR held by `node` (a deleted node); returns them."""
        released = []
        for cidr in self.cidrs_of(node):
            self.store.delete(keys.node_cidr(cidr))
            self.pool.release(cidr)
            del self._by_cidr[cidr]
            released.append(cidr)
        return released
