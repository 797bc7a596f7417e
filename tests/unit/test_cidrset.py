from __future__ import annotations

import ipaddress

import pytest

from podnet.ipam import CIDRSet, CIDRSetExhaustedError, NotInRangeError, SubnetTooBigError

net = ipaddress.ip_network


def test_allocates_in_order_then_exhausts_with_named_error() -> None:
    s = CIDRSet(net("10.20.30.0/24"), 26)
    assert [str(s.allocate()) for _ in range(4)] == [
        "10.20.30.0/26",
        "10.20.30.64/26",
        "10.20.30.128/26",
        "10.20.30.192/26",
    ]
    assert s.is_full()
    with pytest.raises(CIDRSetExhaustedError, match=r"10.20.30.0/24 is exhausted: 4 of 4 /26 subnets in use"):
        s.allocate()


def test_next_candidate_rotates_past_a_released_subnet() -> None:
    s = CIDRSet(net("10.0.0.0/16"), 24)
    first, second = s.allocate(), s.allocate()
    s.release(first)
    assert s.allocate() == net("10.0.2.0/24")  # not the just-released 10.0.0.0/24
    assert second == net("10.0.1.0/24")


def test_wraps_around_to_reuse_released_subnets() -> None:
    s = CIDRSet(net("10.0.0.0/30"), 31)
    a, b = s.allocate(), s.allocate()
    s.release(a)
    assert s.allocate() == a
    s.release(b)
    assert s.allocate() == b


def test_occupy_and_release_are_idempotent() -> None:
    s = CIDRSet(net("10.0.0.0/24"), 26)
    s.occupy(net("10.0.0.64/26"))
    s.occupy(net("10.0.0.64/26"))
    assert s.used == 1
    s.release(net("10.0.0.64/26"))
    s.release(net("10.0.0.64/26"))
    assert s.used == 0


def test_occupy_larger_and_smaller_cidrs() -> None:
    s = CIDRSet(net("10.0.0.0/24"), 26)
    s.occupy(net("10.0.0.0/25"))  # two subnets
    assert s.used == 2
    s.occupy(net("10.0.0.130/32"))  # inside the third
    assert s.used == 3
    assert s.allocated() == [net("10.0.0.0/26"), net("10.0.0.64/26"), net("10.0.0.128/26")]
    assert s.allocate() == net("10.0.0.192/26")


def test_occupy_outside_is_an_error() -> None:
    s = CIDRSet(net("10.0.0.0/24"), 26)
    with pytest.raises(NotInRangeError, match=r"10.0.1.0/26 is not inside cluster CIDR 10.0.0.0/24"):
        s.occupy(net("10.0.1.0/26"))
    with pytest.raises(NotInRangeError):
        s.occupy(net("fd00::/64"))


def test_ipv6() -> None:
    s = CIDRSet(net("fd00:10::/48"), 64)
    assert s.capacity == 65536
    assert str(s.allocate()) == "fd00:10::/64"
    assert str(s.allocate()) == "fd00:10:0:1::/64"


@pytest.mark.parametrize(
    ("cidr", "mask", "message"),
    [
        ("10.0.0.0/8", 30, r"has 2\^22 node subnets; at most 2\^16 are supported \(use a mask size of at most /24"),
        ("fd00::/32", 64, r"has 2\^32 node subnets"),
        ("10.0.0.0/16", 8, r"node mask size /8 does not fit cluster CIDR 10.0.0.0/16"),
        ("10.0.0.0/16", 33, r"must be between /16 and /32"),
    ],
)
def test_unreasonable_masks_are_refused(cidr: str, mask: int, message: str) -> None:
    with pytest.raises(SubnetTooBigError, match=message):
        CIDRSet(net(cidr), mask)


def test_full_slash8_at_slash24() -> None:
    s = CIDRSet(net("10.0.0.0/8"), 24)
    subnets = [s.allocate() for _ in range(65536)]
    assert s.is_full() and len(set(subnets)) == 65536
    assert subnets[-1] == net("10.255.255.0/24")
