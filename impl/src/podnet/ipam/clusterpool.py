"""The cluster pool: ordered cluster CIDRs cut into node pod CIDRs.

A node gets its pod CIDR from the first cluster CIDR that is not full (the
source document's 10.20.30.40/24 then 50.60.70.80/24 at mask 26). Overlapping
cluster CIDRs are refused at construction; every cluster CIDR must be of one
IP family (run one pool per family).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from podnet.ipam.cidr import Network, ParsedCIDR, parse_cidr
from podnet.ipam.cidrset import CIDRSet
from podnet.ipam.errors import ClusterPoolExhaustedError, InvalidCIDRError, NotInRangeError, OverlappingCIDRsError


class ClusterPool:
    def __init__(self, cluster_cidrs: Sequence[str | ParsedCIDR], mask_size: int):
        if not cluster_cidrs:
            raise InvalidCIDRError("the cluster pool needs at least one cluster CIDR")
        if isinstance(mask_size, bool) or not isinstance(mask_size, int):
            raise InvalidCIDRError(f"invalid node mask size {mask_size!r}: expected an integer like 24")
        parsed = [c if isinstance(c, ParsedCIDR) else parse_cidr(c, what="cluster CIDR") for c in cluster_cidrs]
        families = {p.network.version for p in parsed}
        if len(families) > 1:
            raise InvalidCIDRError(
                "cluster CIDRs mix IPv4 and IPv6 (" + ", ".join(p.given for p in parsed) + "): use one pool per family"
            )
        for i, a in enumerate(parsed):
            for b in parsed[i + 1 :]:
                if a.network.overlaps(b.network):
                    masked = f" (as {a.network} and {b.network})" if a.masked or b.masked else ""
                    raise OverlappingCIDRsError(
                        f"cluster CIDRs {a.given} and {b.given} overlap{masked}; "
                        "each address may belong to one cluster CIDR only"
                    )
        self.parsed = parsed
        self.mask_size = mask_size
        self.sets = [CIDRSet(p.network, mask_size) for p in parsed]

    @property
    def notes(self) -> list[str]:
        """What parsing changed (host bits masked), for users to see."""
        return [p.note for p in self.parsed if p.note]

    @property
    def capacity(self) -> int:
        return sum(s.capacity for s in self.sets)

    @property
    def used(self) -> int:
        return sum(s.used for s in self.sets)

    def is_full(self) -> bool:
        return all(s.is_full() for s in self.sets)

    def describe(self) -> str:
        cidrs = ", ".join(str(s.cluster_cidr) for s in self.sets)
        return f"{cidrs} at /{self.mask_size}"

    def exhausted_error(self) -> ClusterPoolExhaustedError:
        return ClusterPoolExhaustedError(
            f"cluster pool exhausted: {self.used} of {self.capacity} node CIDRs in use ({self.describe()})"
        )

    def allocate(self) -> Network:
        for cidr_set in self.sets:
            if not cidr_set.is_full():
                return cidr_set.allocate()
        raise self.exhausted_error()

    def _set_for(self, cidr: Network) -> CIDRSet:
        for cidr_set in self.sets:
            if cidr.version == cidr_set.cluster_cidr.version and cidr.subnet_of(cidr_set.cluster_cidr):  # type: ignore[arg-type]
                return cidr_set
        raise NotInRangeError(f"{cidr} is not inside any cluster CIDR ({self.describe()})")

    def parent_of(self, cidr: Network) -> Network:
        """The cluster CIDR containing `cidr`."""
        return self._set_for(cidr).cluster_cidr

    def occupy(self, cidr: Network) -> None:
        self._set_for(cidr).occupy(cidr)

    def release(self, cidr: Network) -> None:
        self._set_for(cidr).release(cidr)

    def restore(self, cidrs: Iterable[Network]) -> None:
        for cidr in cidrs:
            self.occupy(cidr)

    def allocated(self) -> list[Network]:
        return [c for s in self.sets for c in s.allocated()]
