"""The packet evaluators against pcaps crafted with scapy."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from lab.scenario.checks.packets import Packets as PacketsCheck
from lab.scenario.checks.packets import judge as evaluate

APP1, APP2 = "10.20.30.2", "10.20.30.3"


def pcap(tmp_path: Path, *packets: object) -> Path:
    path = tmp_path / "c.pcap"
    wrpcap(str(path), list(packets))
    return path


def conversation() -> list[object]:
    syn = Ether() / IP(src=APP2, dst=APP1) / TCP(sport=40000, dport=80, flags="S")
    synack = Ether() / IP(src=APP1, dst=APP2) / TCP(sport=80, dport=40000, flags="SA")
    response = (
        Ether()
        / IP(src=APP1, dst=APP2)
        / TCP(sport=80, dport=40000, flags="PA")
        / Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    )
    return [syn, synack, response]


def check(**spec: object) -> PacketsCheck:
    return PacketsCheck.model_validate({"pcap": "c", **spec})


def test_syn_and_http_response_found(tmp_path: Path) -> None:
    path = pcap(tmp_path, *conversation())
    ok, expected, actual = evaluate(check(tcp_syn={"src": APP2, "dst": APP1, "dport": 80}), path)
    assert ok and expected == f"≥1 TCP SYN from {APP2} to {APP1}:80" and "matching: 1" in actual
    assert evaluate(check(http_response={"status": 200, "src": APP1}), path)[0]


def test_syn_ack_is_not_a_syn_and_wrong_port_fails(tmp_path: Path) -> None:
    path = pcap(tmp_path, *conversation()[1:])
    assert not evaluate(check(tcp_syn={"dst": APP1, "dport": 80}), path)[0]
    path = pcap(tmp_path, *conversation())
    ok, _, actual = evaluate(check(tcp_syn={"dst": APP1, "dport": 8080}), path)
    assert not ok and "matching: 0" in actual


def test_http_status_must_match(tmp_path: Path) -> None:
    assert not evaluate(check(http_response={"status": 404}), pcap(tmp_path, *conversation()))[0]


def test_none_from_cidr(tmp_path: Path) -> None:
    clean = pcap(tmp_path, Ether() / IP(src="192.168.50.2", dst="192.168.50.1") / ICMP())
    assert evaluate(check(none_from="10.20.30.0/26"), clean)[0]
    leaked = pcap(tmp_path, *conversation())
    ok, expected, actual = evaluate(check(none_from="10.20.30.0/26"), leaked)
    assert not ok and expected == "no packet from 10.20.30.0/26" and APP1 in actual


def test_icmp_and_min_count_and_empty_capture(tmp_path: Path) -> None:
    echo = Ether() / IP(src=APP2, dst=APP1) / ICMP(type=8)
    path = pcap(tmp_path, echo, echo)
    assert evaluate(check(icmp_echo={"dst": APP1}, min_count=2), path)[0]
    assert not evaluate(check(icmp_echo={"dst": APP1}, min_count=3), path)[0]
    empty = tmp_path / "empty.pcap"
    ok, _, actual = evaluate(check(tcp_syn={}), empty)
    assert not ok and "0 packet(s) captured" in actual
