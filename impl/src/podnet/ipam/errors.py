"""IPAM errors: each names the object and the numbers a user needs to act."""

from __future__ import annotations

from podnet.errors import PodnetError, Reason


class IPAMError(PodnetError):
    """Base of every IPAM error."""

    reason = Reason.bad_request


class InvalidCIDRError(IPAMError, ValueError):
    """Text that is not a usable CIDR (or address) for what it was given as."""


class SubnetTooBigError(IPAMError, ValueError):
    """A cluster CIDR / mask size pair whose subnet bitmap would be unreasonable."""


class OverlappingCIDRsError(IPAMError, ValueError):
    """Two cluster CIDRs share addresses."""


class CIDRSetExhaustedError(IPAMError):
    """Every node-sized subnet of one cluster CIDR is in use."""

    reason = Reason.cluster_pool_exhausted


class ClusterPoolExhaustedError(IPAMError):
    """Every cluster CIDR is full: a node cannot get a pod CIDR."""

    reason = Reason.cluster_pool_exhausted


class PodCIDRExhaustedError(IPAMError):
    """Every pod IP of a node's pod CIDR is in use."""

    reason = Reason.pod_cidr_exhausted


class NotInRangeError(IPAMError, ValueError):
    """An address or CIDR outside the range it was asked of."""

    reason = Reason.not_in_range


class AlreadyAllocatedError(IPAMError):
    """A specific address was asked for but someone holds it."""

    reason = Reason.already_allocated


class ReservedAddressError(IPAMError, ValueError):
    """The node's router IP, or a pod CIDR's network or broadcast address, asked for as a pod's."""

    reason = Reason.reserved_address


class QuarantinedError(IPAMError):
    """A stored record that cannot be read holds this address (or CIDR); it is kept as it is."""

    reason = Reason.quarantined
