"""A set of equal-sized subnets of one CIDR (Kubernetes `cidr_set.go` semantics).

The cluster CIDR is cut into ``2**(mask - prefix)`` subnets of size /mask, one
byte each in a map (0 free, 1 used). `allocate` scans from a rotating next
candidate, so a just-released subnet is not the first one handed out again;
`occupy` marks existing allocations (restore) and `release` frees them; both
are idempotent and accept CIDRs larger or smaller than one subnet, affecting
every subnet they overlap.
"""

from __future__ import annotations

from podnet.ipam.cidr import Network
from podnet.ipam.errors import CIDRSetExhaustedError, NotInRangeError, SubnetTooBigError

#: Like Kubernetes: at most 2**16 subnets per set.
MAX_SUBNET_BITS = 16


class CIDRSet:
    def __init__(self, cluster_cidr: Network, mask_size: int):
        prefix = cluster_cidr.prefixlen
        max_len = cluster_cidr.max_prefixlen
        if not prefix <= mask_size <= max_len:
            raise SubnetTooBigError(
                f"node mask size /{mask_size} does not fit cluster CIDR {cluster_cidr}: "
                f"it must be between /{prefix} and /{max_len}"
            )
        bits = mask_size - prefix
        if bits > MAX_SUBNET_BITS:
            raise SubnetTooBigError(
                f"cluster CIDR {cluster_cidr} at mask size /{mask_size} has 2^{bits} node subnets; "
                f"at most 2^{MAX_SUBNET_BITS} are supported (use a mask size of at most /{prefix + MAX_SUBNET_BITS} "
                f"or split the cluster CIDR)"
            )
        self.cluster_cidr = cluster_cidr
        self.mask_size = mask_size
        self.capacity = 1 << bits
        self._shift = max_len - mask_size
        self._base = int(cluster_cidr.network_address)
        self._used_map = bytearray(self.capacity)
        self._used = 0
        self._next = 0

    # -- index <-> subnet -------------------------------------------------
    def subnet(self, index: int) -> Network:
        address = self._base + (index << self._shift)
        net_type = type(self.cluster_cidr)
        return net_type((address, self.mask_size))

    def _index_range(self, cidr: Network) -> range:
        """The subnet indices `cidr` overlaps; NotInRangeError if outside."""
        if cidr.version != self.cluster_cidr.version or not (
            cidr.subnet_of(self.cluster_cidr)  # type: ignore[arg-type]
        ):
            raise NotInRangeError(f"{cidr} is not inside cluster CIDR {self.cluster_cidr}")
        first = (int(cidr.network_address) - self._base) >> self._shift
        if cidr.prefixlen >= self.mask_size:
            return range(first, first + 1)
        return range(first, first + (1 << (self.mask_size - cidr.prefixlen)))

    # -- operations -------------------------------------------------------
    @property
    def used(self) -> int:
        return self._used

    def is_full(self) -> bool:
        return self._used == self.capacity

    def allocate(self) -> Network:
        if self.is_full():
            raise CIDRSetExhaustedError(
                f"cluster CIDR {self.cluster_cidr} is exhausted: "
                f"{self._used} of {self.capacity} /{self.mask_size} subnets in use"
            )
        found = self._used_map.find(0, self._next)
        if found < 0:
            found = self._used_map.find(0, 0, self._next)
        self._used_map[found] = 1
        self._used += 1
        self._next = (found + 1) % self.capacity
        return self.subnet(found)

    def occupy(self, cidr: Network) -> None:
        for index in self._index_range(cidr):
            if not self._used_map[index]:
                self._used_map[index] = 1
                self._used += 1

    def release(self, cidr: Network) -> None:
        for index in self._index_range(cidr):
            if self._used_map[index]:
                self._used_map[index] = 0
                self._used -= 1

    def is_allocated(self, cidr: Network) -> bool:
        return all(self._used_map[i] for i in self._index_range(cidr))

    def allocated(self) -> list[Network]:
        return [self.subnet(i) for i, used in enumerate(self._used_map) if used]
