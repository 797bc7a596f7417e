"""Cluster-pool IPAM: CIDR sets, the cluster pool, node pod-IP allocation.

- `CIDRSet`: one cluster CIDR cut into /mask node subnets (k8s cidr_set.go).
- `ClusterPool`: ordered cluster CIDRs, first non-full wins (the operator).
- `NodeAllocator`: pod IPs in one node's pod CIDR (the agent).
- `DurableNodeAllocator` / `DurableClusterPool`: the same, kept in the kvstore.
"""

from podnet.ipam.allocator import Allocation, NodeAllocator, pod_ip_capacity
from podnet.ipam.cidr import ParsedCIDR, parse_address, parse_cidr
from podnet.ipam.cidrset import CIDRSet
from podnet.ipam.clusterpool import ClusterPool
from podnet.ipam.durable import DurableNodeAllocator
from podnet.ipam.errors import (
    AlreadyAllocatedError,
    CIDRSetExhaustedError,
    ClusterPoolExhaustedError,
    InvalidCIDRError,
    IPAMError,
    NotInRangeError,
    OverlappingCIDRsError,
    PodCIDRExhaustedError,
    SubnetTooBigError,
)
from podnet.ipam.nodecidrs import DurableClusterPool

__all__ = [
    "Allocation",
    "AlreadyAllocatedError",
    "CIDRSet",
    "CIDRSetExhaustedError",
    "ClusterPool",
    "ClusterPoolExhaustedError",
    "DurableClusterPool",
    "DurableNodeAllocator",
    "IPAMError",
    "InvalidCIDRError",
    "NodeAllocator",
    "NotInRangeError",
    "OverlappingCIDRsError",
    "ParsedCIDR",
    "PodCIDRExhaustedError",
    "SubnetTooBigError",
    "parse_address",
    "parse_cidr",
    "pod_ip_capacity",
]
