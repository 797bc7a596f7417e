"""IPAM state kept in the kvstore, safe with several processes at once.

One key per allocation, written with an atomic create: whoever creates the key
holds the address, so two processes (or two nodes sharing etcd) can never hand
out the same one. Each process keeps an in-memory map to pick candidates fast;
a lost race just teaches it that the candidate is taken. A process killed at
any point leaves each key either fully written or absent.

Layout (see podnet.kvstore.keys):
    podnet/ipam/pods/<pod-cidr>/<ip>     {"ip", "owner", "expires_at"}
    (node CIDRs: podnet.ipam.nodecidrs)

Unknown fields are ignored. A record that cannot be read is quarantined (see
podnet.kvstore.quarantine): left as it is, and its IP stays taken (owner
`quarantined`), so it is never handed out again, never expires and is never
a leak.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from podnet.ipam.allocator import QUARANTINED_OWNER, ROUTER_OWNER, Allocation, Clock, NodeAllocator, validate_owner
from podnet.ipam.cidr import Address, Network, parse_address
from podnet.ipam.errors import (
    AlreadyAllocatedError,
    IPAMError,
    NotInRangeError,
    PodCIDRExhaustedError,
    QuarantinedError,
    ReservedAddressError,
)
from podnet.kvstore import Delete, Entry, KVStore, KVStoreError, Operation, Put, Unchanged, keys
from podnet.kvstore.quarantine import Quarantine, UnreadableRecordError, json_object

_RETRIES = 5  # conditional writes lost in a row before giving up (each one means another writer progressed)


class DurableNodeAllocator:
    """A `NodeAllocator` whose every change is a kvstore transaction."""

    def __init__(
        self,
        store: KVStore,
        pod_cidr: Network | str,
        *,
        router_ip: Address | str | None = None,
        clock: Clock = time.time,
        quarantine: Quarantine | None = None,
    ):
        self.store = store
        self._clock = clock
        self.mem = NodeAllocator(pod_cidr, router_ip=router_ip, clock=clock)
        self.prefix = keys.pod_ips(self.mem.pod_cidr)
        self.quarantine = quarantine if quarantine is not None else Quarantine()
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
        """The router IP's record: written if absent; one giving it to anyone else is quarantined
        (the router keeps it: the node's own address is never a pod's)."""
        router = self.mem.get(self.mem.router_ip)
        assert router is not None
        key = self._key(router.ip)
        if self.store.create(key, json.dumps(router.to_json())):
            return
        entry = self.store.get(key)
        if entry is not None:
            self._read(entry)

    def _allocation(self, entry: Entry) -> Allocation:
        """The allocation a record holds, or `UnreadableRecordError` saying why it cannot be used."""
        data = json_object(entry)
        named = keys.last_component(entry.key)
        try:
            allocation = Allocation.from_json(data)
        except KeyError as err:
            raise UnreadableRecordError(f"it has no {err.args[0]!r}") from None
        except (TypeError, ValueError) as err:
            raise UnreadableRecordError(f"a field has a wrong value ({err})") from None
        if str(allocation.ip) != named:
            raise UnreadableRecordError(f"it holds {allocation.ip} under the key of {named}")
        if not isinstance(data.get("owner"), str) or not allocation.owner.strip():
            raise UnreadableRecordError(f"its owner {data.get('owner')!r} is not a name")
        if allocation.ip == self.mem.router_ip and allocation.owner != ROUTER_OWNER:
            raise UnreadableRecordError(
                f"it gives the node's router IP {allocation.ip} to {allocation.owner!r}; the router keeps it"
            )
        try:
            self.mem.get(allocation.ip)
        except NotInRangeError as err:
            raise UnreadableRecordError(str(err)) from None
        return allocation

    def _read(self, entry: Entry) -> Allocation | None:
        """Load one record into memory; an unreadable one is quarantined and its IP reserved.

        Returns what memory now holds for the key's IP (None: nothing usable)."""
        try:
            allocation = self._allocation(entry)
        except UnreadableRecordError as err:
            self.quarantine.add(entry.key, str(err))
            try:
                ip = parse_address(keys.last_component(entry.key))
                if ip == self.mem.router_ip:
                    return self.mem.get(ip)
                allocation = Allocation(ip, QUARANTINED_OWNER)
                self.mem.restore([allocation])
            except (ValueError, IPAMError):
                return None  # the key names no usable IP of this pod CIDR: nothing to reserve
            self._revs[ip] = entry.mod_revision
            return allocation
        self.quarantine.discard(entry.key)
        self.mem.restore([allocation])
        self._revs[allocation.ip] = entry.mod_revision
        return allocation

    def refresh(self) -> None:
        """Re-read every allocation of this pod CIDR from the store."""
        entries = self.store.list_prefix(self.prefix)
        found: dict[str, str] = {}
        held: set[Address] = set()
        for entry in entries:
            allocation = self._read(entry)
            if entry.key in self.quarantine:
                found[entry.key] = self.quarantine.reason(entry.key) or ""
            if allocation is not None:
                held.add(allocation.ip)
        for record in self.mem.allocations():
            if record.ip not in held:
                self.mem.forget(record.ip)
                self._revs.pop(record.ip, None)
        self.quarantine.reset(self.prefix, found)

    def _learn(self, ip: Address) -> Allocation | None:
        """Sync one address from the store into memory."""
        entry = self.store.get(self._key(ip))
        if entry is None:
            self.quarantine.discard(self._key(ip))
            self.mem.forget(ip)
            self._revs.pop(ip, None)
            return None
        return self._read(entry)

    def recheck_quarantined(self) -> None:
        """Re-read quarantined records: a deleted one frees its IP, a repaired one is loaded."""
        for key in self.quarantine.keys(self.prefix):
            try:
                ip = parse_address(keys.last_component(key))
                self.mem.get(ip)
            except (ValueError, IPAMError):
                if self.store.get(key) is None:
                    self.quarantine.discard(key)
                continue
            self._learn(ip)

    def refuse_reserved(self, address: Address) -> None:
        """The router IP, and IPs of quarantined records, are never taken over or released."""
        if address == self.mem.router_ip:
            raise ReservedAddressError(
                f"{address} is the node's router IP in pod CIDR {self.pod_cidr}: it is never a pod's"
            )
        held = self.mem.get(address)
        if held is not None and held.owner == QUARANTINED_OWNER:
            key = self._key(address)
            raise QuarantinedError(
                f"{address} is held by stored record {key}, quarantined ({self.quarantine.reason(key)}); "
                "repair or delete that record first"
            )

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

    def release(self, ip: Address | str, *, also: Sequence[Operation] = ()) -> Allocation | None:
        """Free `ip`: the allocation this allocator last saw there (what `get` showed).

        Deletes only at the revision it read (compare-and-delete). When another
        writer changed the record in between, it is read again: still the same
        owner (a new expiry), it retries; another owner now, it is left alone.
        `also`: writes that go into the same store transaction (deleting the
        endpoint's record), made only if the IP is released.
        Returns what was released, or None.
        """
        address = parse_address(ip) if isinstance(ip, str) else ip
        if address == self.mem.router_ip:
            self.mem.release(address)  # the router IP's error
        self.refuse_reserved(address)  # a quarantined record's IP stays reserved
        seen = self.mem.get(address)  # validates the range; the owner the caller saw
        for _ in range(_RETRIES):
            current = self._learn(address)
            if current is None:
                return None
            if current.owner == QUARANTINED_OWNER:
                self.refuse_reserved(address)
            if seen is None:
                seen = current  # the caller saw nothing: the holder as first read
            if current.owner != seen.owner:
                return None
            if self._delete(address, self._revs[address], also):
                return current
        raise IPAMError(f"{address} in pod CIDR {self.pod_cidr} kept changing while being released; try again")

    def _delete(self, address: Address, mod_revision: int, also: Sequence[Operation]) -> bool:
        key = self._key(address)
        if also:
            done = self.store.commit([Unchanged(key, mod_revision)], [Delete(key), *also]) > 0
        else:
            done = self.store.delete(key, mod_revision=mod_revision)
        if done:
            self.mem.release(address)
            self._revs.pop(address, None)
        return done

    def confirm(self, ip: Address | str) -> Allocation:
        """Keep an expiring allocation for good."""
        address = parse_address(ip) if isinstance(ip, str) else ip
        current = self._learn(address)
        if current is None:
            raise IPAMError(f"{address} is not allocated in pod CIDR {self.pod_cidr}; nothing to confirm")
        if current.expires_at is None:
            return current
        return self.claim(address, current.owner)

    def claim(
        self, ip: Address | str, owner: str, *, expires_in: float | None = None, also: Sequence[Operation] = ()
    ) -> Allocation:
        """Make `owner` the holder of `ip` (allocating it if free), with a new expiry.

        How an endpoint takes over the IP its runtime asked for (an expiring
        allocation becomes permanent), and how a deleted endpoint hands it back
        to expiry until the runtime releases it. `also`: writes that go into the
        same store transaction (the endpoint's record), all or nothing with the claim.

        Takes over only what the caller saw (`get`): the holder read from the
        store must be `owner` itself or the owner this allocator last saw there,
        and the swap happens only at the revision read (compare-and-swap); when
        another writer changed the record in between, it is read again and
        checked again. A holder the caller never saw is an
        `AlreadyAllocatedError` naming it (and `get` now shows it). The first
        try swaps at the revision this allocator last saw, without reading the
        record first: it holds only if nobody wrote the record since.
        """
        address = parse_address(ip) if isinstance(ip, str) else ip
        validate_owner(owner)
        self.refuse_reserved(address)  # never the router IP, never a quarantined record's
        seen = self.mem.get(address)
        accepted = {owner} if seen is None else {owner, seen.owner}
        if seen is not None and address in self._revs:
            swapped = self._swap(address, owner, expires_in, self._revs[address], also)
            if swapped is not None:
                return swapped
        for _ in range(_RETRIES):
            current = self._learn(address)
            if current is not None and current.owner == QUARANTINED_OWNER:
                self.refuse_reserved(address)
            if current is None:
                if not also:
                    try:
                        return self.allocate_ip(address, owner, expires_in=expires_in)
                    except AlreadyAllocatedError:
                        continue
                created = self._swap(address, owner, expires_in, 0, also)
                if created is not None:
                    return created
                continue
            if current.owner not in accepted:
                raise AlreadyAllocatedError(
                    f"{address} is held by {current.owner!r} in pod CIDR {self.pod_cidr} "
                    f"(it changed hands since this node last read it); not taking it over for {owner!r}"
                )
            swapped = self._swap(address, owner, expires_in, self._revs[address], also)
            if swapped is not None:
                return swapped
        raise IPAMError(f"{address} in pod CIDR {self.pod_cidr} kept changing while being claimed; try again")

    def _swap(
        self, address: Address, owner: str, expires_in: float | None, mod_revision: int, also: Sequence[Operation]
    ) -> Allocation | None:
        """Write `owner`'s record of `address` (and `also`) if the record is still at `mod_revision`
        (0: absent); None when it is not."""
        updated = Allocation(address, owner, self.mem.expiry(expires_in))
        key, value = self._key(address), json.dumps(updated.to_json())
        if also:
            revision = self.store.commit([Unchanged(key, mod_revision)], [Put(key, value), *also])
        else:
            revision = self.store.compare_and_swap(key, value, mod_revision=mod_revision)
        if not revision:
            return None
        self.mem.restore([updated])
        self._revs[address] = revision
        return updated

    def get(self, ip: Address | str) -> Allocation | None:
        return self.mem.get(ip)

    def allocations(self) -> list[Allocation]:
        return self.mem.allocations()
