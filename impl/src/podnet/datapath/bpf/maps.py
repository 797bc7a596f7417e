"""podnet's BPF maps from Python: typed keys and values (mirroring podnet.h), and map access.

Only the codecs here know the byte layout; they are pure, so the unit tests
check them without a kernel.
"""

from __future__ import annotations

import ctypes
import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from podnet.datapath.bpf import libbpf

EP_F_POLICY_INGRESS = 1 << 0
POLICY_ALLOW = 1
CONFIG_TRACE = 1 << 0

DROP_REASONS = {0: "none", 1: "policy denied", 2: "invalid source", 3: "malformed packet"}
EVENT_TYPES = {1: "drop", 2: "trace"}
DIRECTIONS = {1: "from-container", 2: "to-container"}
PROTOCOLS = {0: "any", 1: "ICMP", 6: "TCP", 17: "UDP"}


def ip_key(ip: str) -> bytes:
    return ipaddress.IPv4Address(ip).packed


def ip_of(key: bytes) -> str:
    return str(ipaddress.IPv4Address(key))


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True)
class EndpointInfo:
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<II6s6sI")
    ifindex: int
    identity: int
    mac: str
    node_mac: str
    flags: int = 0

    @property
    def policy_enforced(self) -> bool:
        return bool(self.flags & EP_F_POLICY_INGRESS)

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.ifindex, self.identity, mac_bytes(self.mac), mac_bytes(self.node_mac), self.flags)

    @classmethod
    def unpack(cls, raw: bytes) -> EndpointInfo:
        ifindex, identity, mac, node_mac, flags = cls.FORMAT.unpack(raw)
        return cls(ifindex, identity, mac_str(mac), mac_str(node_mac), flags)


@dataclass(frozen=True, order=True)
class PolicyKey:
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<IIHBx")
    src_identity: int
    dst_identity: int
    proto: int = 0
    dport: int = 0

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.src_identity, self.dst_identity, self.dport, self.proto)

    @classmethod
    def unpack(cls, raw: bytes) -> PolicyKey:
        src, dst, dport, proto = cls.FORMAT.unpack(raw)
        return cls(src, dst, proto, dport)


@dataclass(frozen=True)
class PolicyValue:
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<QQII")
    action: int = POLICY_ALLOW
    packets: int = 0
    nbytes: int = 0

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.packets, self.nbytes, self.action, 0)

    @classmethod
    def unpack(cls, raw: bytes) -> PolicyValue:
        packets, nbytes, action, _ = cls.FORMAT.unpack(raw)
        return cls(action, packets, nbytes)


@dataclass(frozen=True)
class EndpointCounters:
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<4Q4Q")
    from_packets: int = 0
    from_bytes: int = 0
    to_packets: int = 0
    to_bytes: int = 0
    drops: dict[str, int] = field(default_factory=dict)

    @classmethod
    def unpack(cls, raw: bytes) -> EndpointCounters:
        values = cls.FORMAT.unpack(raw)
        drops = {DROP_REASONS[i]: n for i, n in enumerate(values[4:]) if i and n}
        return cls(values[0], values[1], values[2], values[3], drops)

    @classmethod
    def sum(cls, per_cpu: list[EndpointCounters]) -> EndpointCounters:
        drops: dict[str, int] = {}
        for c in per_cpu:
            for reason, n in c.drops.items():
                drops[reason] = drops.get(reason, 0) + n
        return cls(
            sum(c.from_packets for c in per_cpu),
            sum(c.from_bytes for c in per_cpu),
            sum(c.to_packets for c in per_cpu),
            sum(c.to_bytes for c in per_cpu),
            drops,
        )


@dataclass(frozen=True)
class Event:
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<QBBBBIII4s4sHHI")
    timestamp_ns: int
    type: str
    reason: str
    direction: str
    proto: int
    ifindex: int
    src_identity: int
    dst_identity: int
    saddr: str
    daddr: str
    sport: int
    dport: int
    length: int

    @classmethod
    def unpack(cls, raw: bytes) -> Event:
        ts, etype, reason, direction, proto, ifindex, src, dst, saddr, daddr, sport, dport, length = cls.FORMAT.unpack(
            raw[: cls.FORMAT.size]
        )
        return cls(
            ts,
            EVENT_TYPES.get(etype, str(etype)),
            DROP_REASONS.get(reason, f"reason {reason}") if etype == 1 else "",
            DIRECTIONS.get(direction, str(direction)),
            proto,
            ifindex,
            src,
            dst,
            ip_of(saddr),
            ip_of(daddr),
            sport,
            dport,
            length,
        )


class BpfMap:
    """One map of a loaded object, by its fd (the object owns it): raw bytes in and out (percpu maps give one value per CPU)."""

    def __init__(self, name: str, fd: int, key_size: int, value_size: int, *, per_cpu: bool = False):
        self.name = name
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size
        self.per_cpu = per_cpu
        self._cpus = libbpf.num_possible_cpus() if per_cpu else 1
        self._stride = (value_size + 7) // 8 * 8 if per_cpu else value_size

    def _key(self, key: bytes) -> ctypes.Array[ctypes.c_char]:
        if len(key) != self.key_size:
            raise ValueError(f"{self.name}: key is {len(key)} bytes, the map's are {self.key_size}")
        return ctypes.create_string_buffer(key, self.key_size)

    def update(self, key: bytes, value: bytes, flags: int = libbpf.BPF_ANY) -> None:
        if len(value) != self.value_size or self.per_cpu:
            raise ValueError(f"{self.name}: value is {len(value)} bytes, the map's are {self.value_size}")
        buf = ctypes.create_string_buffer(value, self.value_size)
        libbpf.check(libbpf.lib().bpf_map_update_elem(self.fd, self._key(key), buf, flags), f"updating {self.name}")

    def lookup(self, key: bytes) -> bytes | None:
        return self._lookup(self._key(key))

    def lookup_per_cpu(self, key: bytes) -> list[bytes] | None:
        raw = self._lookup(self._key(key))
        if raw is None:
            return None
        return [raw[i * self._stride : i * self._stride + self.value_size] for i in range(self._cpus)]

    def _lookup(self, key: ctypes.Array[ctypes.c_char]) -> bytes | None:
        buf = ctypes.create_string_buffer(self._stride * self._cpus)
        rc = libbpf.lib().bpf_map_lookup_elem(self.fd, key, buf)
        if rc == -2:  # ENOENT
            return None
        libbpf.check(rc, f"reading {self.name}")
        return buf.raw if self.per_cpu else buf.raw[: self.value_size]

    def delete(self, key: bytes) -> bool:
        rc = libbpf.lib().bpf_map_delete_elem(self.fd, self._key(key))
        if rc == -2:
            return False
        libbpf.check(rc, f"deleting from {self.name}")
        return True

    def keys(self) -> Iterator[bytes]:
        current: ctypes.Array[ctypes.c_char] | None = None
        nxt = ctypes.create_string_buffer(self.key_size)
        while True:
            rc = libbpf.lib().bpf_map_get_next_key(self.fd, current, nxt)
            if rc == -2:
                return
            libbpf.check(rc, f"iterating {self.name}")
            yield nxt.raw
            current = ctypes.create_string_buffer(nxt.raw, self.key_size)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in list(self.keys()):
            value = self.lookup(key)
            if value is not None:  # deleted meanwhile
                yield key, value
