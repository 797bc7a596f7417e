"""The byte layout of podnet's BPF map keys, values and events (podnet.h), without a kernel."""

from __future__ import annotations

import struct

from podnet.datapath.bpf.maps import (
    EP_F_POLICY_INGRESS,
    EndpointCounters,
    EndpointInfo,
    Event,
    PolicyKey,
    PolicyValue,
    ip_key,
    ip_of,
)


def test_endpoint_info_is_the_c_struct() -> None:
    info = EndpointInfo(7, 256, "0a:00:00:00:00:01", "0e:00:00:00:00:02", EP_F_POLICY_INGRESS)
    raw = info.pack()
    # struct endpoint_info { u32 ifindex; u32 identity; u8 mac[6]; u8 node_mac[6]; u32 flags; }: 24 bytes
    assert len(raw) == 24
    assert raw == (
        (7).to_bytes(4, "little")
        + (256).to_bytes(4, "little")
        + bytes.fromhex("0a0000000001")
        + bytes.fromhex("0e0000000002")
        + (1).to_bytes(4, "little")
    )
    assert EndpointInfo.unpack(raw) == info and info.policy_enforced


def test_policy_key_puts_port_before_protocol_like_the_c_struct() -> None:
    raw = PolicyKey(src_identity=257, dst_identity=256, proto=6, dport=80).pack()
    assert raw == struct.pack("<IIHBB", 257, 256, 80, 6, 0) and len(raw) == 12
    assert PolicyKey.unpack(raw) == PolicyKey(257, 256, 6, 80)


def test_policy_value_round_trips_hits() -> None:
    raw = struct.pack("<QQII", 3, 180, 1, 0)
    assert PolicyValue.unpack(raw) == PolicyValue(action=1, packets=3, nbytes=180)
    assert PolicyValue().pack() == struct.pack("<QQII", 0, 0, 1, 0)


def test_ip_keys_are_network_order() -> None:
    assert ip_key("10.57.0.3") == bytes([10, 57, 0, 3])
    assert ip_of(bytes([10, 57, 0, 3])) == "10.57.0.3"


def test_per_cpu_counters_sum_and_name_their_drop_reasons() -> None:
    cpu0 = EndpointCounters.unpack(struct.pack("<8Q", 1, 100, 2, 200, 0, 4, 0, 0))
    cpu1 = EndpointCounters.unpack(struct.pack("<8Q", 3, 300, 0, 0, 0, 1, 2, 0))
    total = EndpointCounters.sum([cpu0, cpu1])
    assert (total.from_packets, total.from_bytes, total.to_packets, total.to_bytes) == (4, 400, 2, 200)
    assert total.drops == {"policy denied": 5, "invalid source": 2}


def test_event_decodes_a_policy_drop() -> None:
    raw = struct.pack(
        "<QBBBBIII4s4sHHI",
        123,
        1,  # drop
        1,  # policy denied
        2,  # to-container
        6,
        9,
        258,
        256,
        bytes([10, 57, 0, 5]),
        bytes([10, 57, 0, 3]),
        40000,
        80,
        74,
    )
    assert len(raw) == 40
    event = Event.unpack(raw)
    assert (event.type, event.reason, event.direction) == ("drop", "policy denied", "to-container")
    assert (event.saddr, event.sport, event.daddr, event.dport) == ("10.57.0.5", 40000, "10.57.0.3", 80)
    assert (event.src_identity, event.dst_identity, event.proto, event.length) == (258, 256, 6, 74)
