from __future__ import annotations

import ipaddress

import pytest

from podnet.ipam import ClusterPool, ClusterPoolExhaustedError, InvalidCIDRError, NotInRangeError, OverlappingCIDRsError
from podnet.ipam.cidr import parse_cidr
from tests.seed import SEED_CLUSTER_CIDRS, SEED_NODE_CIDRS

SEED = SEED_CLUSTER_CIDRS


def test_seed_example_gives_exactly_eight_node_cidrs_in_order() -> None:
    pool = ClusterPool(SEED, 26)
    got = [str(pool.allocate()) for _ in range(8)]
    assert got == SEED_NODE_CIDRS
    with pytest.raises(ClusterPoolExhaustedError) as err:
        pool.allocate()
    assert str(err.value) == ("cluster pool exhausted: 8 of 8 node CIDRs in use (10.20.30.0/24, 50.60.70.0/24 at /26)")


def test_releasing_node2s_cidr_gives_it_to_the_next_node() -> None:
    pool = ClusterPool(SEED, 26)
    cidrs = [pool.allocate() for _ in range(8)]
    pool.release(cidrs[1])
    assert pool.allocate() == ipaddress.ip_network("10.20.30.64/26")


def test_host_bits_are_masked_and_reported() -> None:
    pool = ClusterPool(SEED, 26)
    assert [str(s.cluster_cidr) for s in pool.sets] == ["10.20.30.0/24", "50.60.70.0/24"]
    assert pool.notes == [
        "10.20.30.40/24 has host bits set; using its network 10.20.30.0/24",
        "50.60.70.80/24 has host bits set; using its network 50.60.70.0/24",
    ]
    assert ClusterPool(["10.0.0.0/16"], 24).notes == []


def test_overlap_is_refused_naming_both() -> None:
    with pytest.raises(OverlappingCIDRsError, match=r"cluster CIDRs 10.0.0.0/16 and 10.0.3.0/24 overlap;"):
        ClusterPool(["10.0.0.0/16", "172.16.0.0/16", "10.0.3.0/24"], 24)
    # masking can create an overlap: say so
    with pytest.raises(
        OverlappingCIDRsError, match=r"10.0.0.5/24 and 10.0.0.0/25 overlap \(as 10.0.0.0/24 and 10.0.0.0/25\)"
    ):
        ClusterPool(["10.0.0.5/24", "10.0.0.0/25"], 26)


@pytest.mark.parametrize(
    ("cidrs", "mask", "message"),
    [
        ([], 24, "needs at least one cluster CIDR"),
        (["10.0.0.0"], 24, "missing prefix length"),
        (["10.0.0.0/33"], 24, "invalid cluster CIDR '10.0.0.0/33'"),
        (["banana/8"], 24, "invalid cluster CIDR 'banana/8'"),
        (["10.0.0.0/8", "fd00::/48"], 24, "mix IPv4 and IPv6"),
        (["10.0.0.0/8"], "24", "invalid node mask size '24'"),
    ],
)
def test_bad_config_is_a_clear_error(cidrs: list[str], mask: int, message: str) -> None:
    with pytest.raises(InvalidCIDRError, match=message):
        ClusterPool(cidrs, mask)


def test_restore_then_allocate_skips_restored() -> None:
    pool = ClusterPool(SEED, 26)
    pool.restore([ipaddress.ip_network("10.20.30.0/26"), ipaddress.ip_network("10.20.30.128/26")])
    assert str(pool.allocate()) == "10.20.30.64/26"
    assert str(pool.allocate()) == "10.20.30.192/26"
    assert str(pool.allocate()) == "50.60.70.0/26"


def test_release_outside_every_cluster_cidr() -> None:
    pool = ClusterPool(SEED, 26)
    with pytest.raises(NotInRangeError, match=r"192.168.0.0/26 is not inside any cluster CIDR"):
        pool.release(ipaddress.ip_network("192.168.0.0/26"))


def test_parse_cidr_keeps_what_was_given() -> None:
    parsed = parse_cidr(" 10.20.30.40/24 ")
    assert (str(parsed.network), parsed.given, parsed.masked) == ("10.20.30.0/24", "10.20.30.40/24", True)
    with pytest.raises(InvalidCIDRError, match="expected a string"):
        parse_cidr(None)
