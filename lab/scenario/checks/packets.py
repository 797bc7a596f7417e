"""`packets`: what a step's capture (`pcap`) saw, read with scapy: TCP SYN / SYN-ACK, HTTP
responses, ICMP echo / reply, UDP datagrams, or nothing from a CIDR; `absent: true` requires that none was seen."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, model_validator
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Packet

from lab.model.files import Strict
from lab.scenario.context import Context, StepFailed
from lab.scenario.kinds import CheckKind
from lab.scenario.pcap import read
from lab.scenario.results import CheckResult


class PacketMatch(Strict):
    src: str | None = Field(default=None, description="an address, or a CIDR the source is in")
    dst: str | None = Field(default=None, description="an address, or a CIDR the destination is in")
    sport: int | None = None
    dport: int | None = None


class HttpResponse(Strict):
    status: int = 200
    src: str | None = None


MATCHERS = ("tcp_syn", "tcp_synack", "http_response", "icmp_echo", "icmp_reply", "udp", "none_from")


class Packets(Strict):
    pcap: str
    tcp_syn: PacketMatch | None = None
    tcp_synack: PacketMatch | None = None
    http_response: HttpResponse | None = None
    icmp_echo: PacketMatch | None = None
    icmp_reply: PacketMatch | None = None
    udp: PacketMatch | None = Field(default=None, description="UDP datagrams (src, dst: addresses or CIDRs)")
    none_from: str | None = Field(default=None, description="no IPv4 packet with a source in this CIDR")
    min_count: int = Field(default=1, ge=1)
    absent: bool = Field(default=False, description="pass only if no such packet was captured")

    @model_validator(mode="after")
    def _one(self) -> Packets:
        given = [k for k in MATCHERS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(MATCHERS)} (got {given or 'none'})")
        if self.absent and self.none_from is not None:
            raise ValueError("none_from already means absent")
        return self


def _matches(pkt: Packet, match: PacketMatch) -> bool:
    ip = pkt[IP]
    if match.src and not _is(ip.src, match.src):
        return False
    if match.dst and not _is(ip.dst, match.dst):
        return False
    for layer in (TCP, UDP):
        if pkt.haslayer(layer):
            if match.sport and pkt[layer].sport != match.sport:
                return False
            if match.dport and pkt[layer].dport != match.dport:
                return False
    return True


def _is(address: str, want: str) -> bool:
    if "/" in want:
        return ipaddress.ip_address(address) in ipaddress.ip_network(want, strict=False)
    return address == want


def udps(packets: list[Packet], match: PacketMatch) -> list[Packet]:
    return [p for p in packets if p.haslayer(IP) and p.haslayer(UDP) and _matches(p, match)]


def tcp_syns(packets: list[Packet], match: PacketMatch) -> list[Packet]:
    return [
        p
        for p in packets
        if p.haslayer(IP) and p.haslayer(TCP) and (int(p[TCP].flags) & 0x12) == 0x02 and _matches(p, match)
    ]


def tcp_synacks(packets: list[Packet], match: PacketMatch) -> list[Packet]:
    return [
        p
        for p in packets
        if p.haslayer(IP) and p.haslayer(TCP) and (int(p[TCP].flags) & 0x12) == 0x12 and _matches(p, match)
    ]


def http_responses(packets: list[Packet], want: HttpResponse) -> list[Packet]:
    found = []
    for p in packets:
        if not (p.haslayer(IP) and p.haslayer(TCP)):
            continue
        payload = bytes(p[TCP].payload)
        if not payload.startswith(b"HTTP/1."):
            continue
        try:
            status = int(payload.split(b" ", 2)[1])
        except (IndexError, ValueError):
            continue
        if status == want.status and (want.src is None or p[IP].src == want.src):
            found.append(p)
    return found


def icmp_echoes(packets: list[Packet], match: PacketMatch, icmp_type: int = 8) -> list[Packet]:
    return [
        p for p in packets if p.haslayer(IP) and p.haslayer(ICMP) and p[ICMP].type == icmp_type and _matches(p, match)
    ]


def from_cidr(packets: list[Packet], cidr: str) -> list[Packet]:
    net = ipaddress.ip_network(cidr, strict=False)
    return [p for p in packets if p.haslayer(IP) and ipaddress.ip_address(p[IP].src) in net]


def summarize(packets: list[Packet], limit: int = 5) -> str:
    lines = [p.summary() for p in packets[:limit]]
    more = f" (+{len(packets) - limit} more)" if len(packets) > limit else ""
    return "; ".join(lines) + more if lines else "no packets"


def judge(check: Packets, path: Path) -> tuple[bool, str, str]:
    """(passed, expected, actual)."""
    packets = read(path)
    total = f"{len(packets)} packet(s) captured"
    if check.tcp_syn is not None:
        hits = tcp_syns(packets, check.tcp_syn)
        expected = f"TCP SYN {_describe(check.tcp_syn)}"
    elif check.tcp_synack is not None:
        hits = tcp_synacks(packets, check.tcp_synack)
        expected = f"TCP SYN-ACK {_describe(check.tcp_synack)}"
    elif check.http_response is not None:
        hits = http_responses(packets, check.http_response)
        src = f" from {check.http_response.src}" if check.http_response.src else ""
        expected = f"HTTP {check.http_response.status} response(s){src}"
    elif check.icmp_echo is not None:
        hits = icmp_echoes(packets, check.icmp_echo)
        expected = f"ICMP echo request(s) {_describe(check.icmp_echo)}"
    elif check.icmp_reply is not None:
        hits = icmp_echoes(packets, check.icmp_reply, icmp_type=0)
        expected = f"ICMP echo reply(ies) {_describe(check.icmp_reply)}"
    elif check.udp is not None:
        hits = udps(packets, check.udp)
        expected = f"UDP datagram(s) {_describe(check.udp)}"
    else:
        assert check.none_from is not None
        hits = from_cidr(packets, check.none_from)
        return not hits, f"no packet from {check.none_from}", f"{total}; from {check.none_from}: {summarize(hits)}"
    actual = f"{total}; matching: {len(hits)}: {summarize(hits)}"
    if check.absent:
        return not hits, f"no {expected}", actual
    return len(hits) >= check.min_count, f"≥{check.min_count} {expected}", actual


def _describe(match: PacketMatch) -> str:
    parts = []
    if match.src:
        parts.append(f"from {match.src}" + (f":{match.sport}" if match.sport else ""))
    if match.dst:
        parts.append(f"to {match.dst}" + (f":{match.dport}" if match.dport else ""))
    elif match.dport:
        parts.append(f"to port {match.dport}")
    return " ".join(parts) or "(any)"


def evaluate(ctx: Context, check: Packets) -> CheckResult:
    path = ctx.pcaps.get(check.pcap)
    if path is None:
        raise StepFailed(f"packets check names pcap {check.pcap!r}, but no step captured it")
    ok, expected, actual = judge(check, path)
    return CheckResult("packets", f"{check.pcap}: {expected}", ok, expected, actual, path.name)


KIND = CheckKind("packets", Packets, evaluate)
