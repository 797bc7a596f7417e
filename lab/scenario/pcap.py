"""Reading a step's captures: the packets (for checks) and a flow table (for the report)."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP
from scapy.packet import Packet
from scapy.utils import rdpcap

from lab.scenario.results import Flow

MAX_FLOWS = 20


def read(path: Path) -> list[Packet]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    return list(rdpcap(str(path)))


def _key(p: Packet) -> tuple[str, str, str]:
    """(proto, one end, the other end), the same both ways."""
    if p.haslayer(ARP):
        low, high = sorted((str(p[ARP].psrc), str(p[ARP].pdst)))
        return ("ARP", low, high)
    ip = p[IP]
    if p.haslayer(TCP) or p.haslayer(UDP):
        layer = p[TCP] if p.haslayer(TCP) else p[UDP]
        a, b = f"{ip.src}:{layer.sport}", f"{ip.dst}:{layer.dport}"
        proto = "TCP" if p.haslayer(TCP) else "UDP"
    else:
        a, b = str(ip.src), str(ip.dst)
        proto = "ICMP" if p.haslayer(ICMP) else f"IP/{ip.proto}"
    return (proto, a, b) if a <= b else (proto, b, a)


def _notes(p: Packet) -> list[str]:
    if p.haslayer(TCP):
        flags = int(p[TCP].flags)
        notes = []
        if flags & 0x12 == 0x02:
            notes.append("SYN")
        elif flags & 0x12 == 0x12:
            notes.append("SYN-ACK")
        if flags & 0x04:
            notes.append("RST")
        payload = bytes(p[TCP].payload)
        if payload.startswith(b"HTTP/1."):
            notes.append("HTTP " + payload.split(b" ", 2)[1].decode(errors="replace"))
        elif payload[:4] in (b"GET ", b"POST", b"PUT ", b"HEAD"):
            notes.append(payload.split(b" ", 1)[0].decode(errors="replace"))
        return notes
    if p.haslayer(ICMP):
        return {8: ["echo request"], 0: ["echo reply"]}.get(int(p[ICMP].type), [f"type {p[ICMP].type}"])
    return []


def flows(path: Path) -> list[Flow]:
    """The capture's flows, first seen first (at most MAX_FLOWS; the rest summed in a last row)."""
    table: dict[tuple[str, str, str], Flow] = {}
    for p in read(path):
        if not (p.haslayer(IP) or p.haslayer(ARP)):
            continue
        key = _key(p)
        if key not in table:
            src, dst = (str(p[ARP].psrc), str(p[ARP].pdst)) if p.haslayer(ARP) else (key[1], key[2])
            if p.haslayer(IP):
                layer = p[TCP] if p.haslayer(TCP) else p[UDP] if p.haslayer(UDP) else None
                src = f"{p[IP].src}:{layer.sport}" if layer is not None else str(p[IP].src)
                dst = f"{p[IP].dst}:{layer.dport}" if layer is not None else str(p[IP].dst)
            table[key] = Flow(key[0], src, dst, 0, 0)
        flow = table[key]
        flow.packets += 1
        flow.bytes += len(p)
        for note in _notes(p):
            if note not in flow.note.split(", "):
                flow.note = f"{flow.note}, {note}" if flow.note else note
    rows = list(table.values())
    if len(rows) > MAX_FLOWS:
        rest = rows[MAX_FLOWS - 1 :]
        rows = [
            *rows[: MAX_FLOWS - 1],
            Flow("…", f"{len(rest)} more flows", "", sum(f.packets for f in rest), sum(f.bytes for f in rest)),
        ]
    return rows
