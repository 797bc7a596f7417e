"""rtnetlink for the endpoint hot path: a raw socket, messages packed with `struct`, sent in batches.

Why not pyroute2 here (it stays for the node's set-up, restore and listings):
one endpoint is a dozen kernel operations, and pyroute2 0.9 runs every call
through its own asyncio loop (~0.3 ms of Python each) and needs a new IPRoute
(a socket, a loop, a thread) for the pod's namespace. Here one `sendmsg`
carries several requests, the kernel answers each with an ack (or an error)
in order, and a socket opened in a pod's namespace is a plain socket.

Only the messages the agent needs are built: veth pairs (the peer in another
namespace), link flags, MTU and IPv4 device settings, neighbour-table
parameters, addresses, routes, the clsact qdisc and bpf filters; lookups of a
link (index, kind, MAC, counters), of a node's addresses, of the route a
destination matches; deletes. The agent imports no pyroute2 (~190 ms of its
start and ~10 MB); the lab and tests still use it.

A batch is processed message after message even when one fails, so a batch
only ever holds requests that depend on nothing before them but what
already exists (a device created by an earlier, separate call).

This module is over ~400 lines: it is one wire format, the socket and a
builder or parser per kind of message, which read best side by side.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from podnet.datapath import nssocket

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_ECHO = 0x1, 0x4, 0x8
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_DUMP = 0x300
NLA_F_NESTED = 0x8000

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWQDISC, RTM_DELQDISC = 36, 37
RTM_F_FIB_MATCH = 0x2000
RTA_TABLE = 15
IFLA_STATS64 = 23
RTM_NEWTFILTER = 44
RTM_SETNEIGHTBL = 67

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK = 1, 3, 4, 5
IFLA_LINKINFO, IFLA_AF_SPEC, IFLA_NET_NS_FD = 18, 26, 28
IFLA_GROUP = 27
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_INET_CONF = 1
IPV4_DEVCONF = {"forwarding": 1, "proxy_arp": 3, "rp_filter": 8}
IFF_UP = 0x1

IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC = 1, 4, 5, 7
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTPROT_BOOT, RTPROT_STATIC = 3, 4

NDTA_NAME, NDTA_PARMS = 1, 6
NDTPA_IFINDEX, NDTPA_PROXY_DELAY = 1, 13

TCA_KIND, TCA_OPTIONS = 1, 2
TCA_BPF_FD, TCA_BPF_NAME, TCA_BPF_FLAGS = 6, 7, 8
TCA_BPF_FLAG_ACT_DIRECT = 1
TC_H_CLSACT = 0xFFFFFFF1
TC_H_INGRESS_PARENT, TC_H_EGRESS_PARENT = 0xFFFFFFF2, 0xFFFFFFF3
ETH_P_ALL = 0x0003

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_TCMSG = struct.Struct("=BxxxiIII")
_NDTMSG = struct.Struct("=Bxxx")
_seq = itertools.count(1)


class RtnlError(OSError):
    """The kernel refused one request; `step` says which."""

    def __init__(self, code: int, step: str):
        super().__init__(code, os.strerror(code))
        self.step = step

    @property
    def code(self) -> int:
        return self.errno or 0


def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def nest(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def string(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def mac(value: str) -> bytes:
    return bytes.fromhex(value.replace(":", ""))


def ipv4(value: str) -> bytes:
    return socket.inet_aton(value)


def parse_attrs(data: bytes | memoryview, offset: int = 0) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & ~NLA_F_NESTED] = bytes(data[offset + 4 : offset + length])
        offset += (length + 3) & ~3
    return found


@dataclass(frozen=True)
class Request:
    """One message of a batch: what it does (for errors), its type, flags and body."""

    step: str
    kind: int
    flags: int
    body: bytes
    tolerate: tuple[int, ...] = ()  # errnos that count as done (EEXIST for "already there")


@dataclass(frozen=True)
class Link:
    index: int
    peer_index: int | None  # IFLA_LINK: a veth's peer, in the peer's namespace


@dataclass(frozen=True)
class LinkInfo:
    index: int
    name: str
    kind: str | None  # IFLA_INFO_KIND ("veth"), None when the kernel gives none
    mac: str | None
    stats: tuple[int, ...]  # rtnl_link_stats64: rx/tx packets, rx/tx bytes, rx/tx errors, rx/tx dropped, …

    @classmethod
    def parse(cls, message: bytes) -> LinkInfo:
        index = _IFINFO.unpack_from(message)[2]
        attrs = parse_attrs(message, _IFINFO.size)
        kind = parse_attrs(attrs[IFLA_LINKINFO]).get(IFLA_INFO_KIND) if IFLA_LINKINFO in attrs else None
        raw_mac = attrs.get(IFLA_ADDRESS)
        stats = attrs.get(IFLA_STATS64, b"")
        return cls(
            index=int(index),
            name=attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace"),
            kind=kind.rstrip(b"\0").decode() if kind else None,
            mac=":".join(f"{b:02x}" for b in raw_mac) if raw_mac else None,
            stats=struct.unpack_from(f"={len(stats) // 8}Q", stats) if stats else (),
        )


@dataclass(frozen=True)
class RouteInfo:
    dst: str
    dst_len: int
    table: int
    proto: int
    oif: int | None

    @classmethod
    def parse(cls, message: bytes) -> RouteInfo:
        _family, dst_len, _src, _tos, table, proto, _scope, _type, _flags = _RTMSG.unpack_from(message)
        attrs = parse_attrs(message, _RTMSG.size)
        dst = socket.inet_ntoa(attrs[RTA_DST]) if RTA_DST in attrs else "0.0.0.0"
        if RTA_TABLE in attrs:
            table = struct.unpack("=I", attrs[RTA_TABLE])[0]
        oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else None
        return cls(dst, dst_len, table, proto, oif)


def _messages(received: bytes) -> Iterator[tuple[int, int, memoryview]]:
    """(type, sequence number, payload) of each netlink message in one datagram."""
    data = memoryview(received)
    offset = 0
    while offset + _HDR.size <= len(data):
        length, kind, _flags, seq, _pid = _HDR.unpack_from(data, offset)
        if length < _HDR.size:
            return
        yield kind, seq, data[offset + _HDR.size : offset + length]
        offset += (length + 3) & ~3


class Rtnl:
    """One rtnetlink socket (of the namespace it was opened in); thread-safe, one batch at a time."""

    def __init__(self, sock: socket.socket | None = None):
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self._lock = threading.Lock()

    @classmethod
    def in_netns(cls, netns_fd: int) -> Rtnl:
        """A socket of the network namespace `netns_fd` (opened there by a thread that enters it:
        setns(2) moves only the calling thread, and a socket stays in the namespace it was made in;
        see podnet.datapath.nssocket)."""
        return cls(
            nssocket.OPENER.open(netns_fd, socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        )

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def run(self, requests: Iterable[Request]) -> list[list[bytes]]:
        """Send every request in one sendmsg; wait for each one's ack. Raises `RtnlError` for the
        first refused request (after reading every answer). Returns, per request, the messages
        the kernel sent back for it before its ack (echoes)."""
        batch = list(requests)
        if not batch:
            return []
        with self._lock:
            seqs: dict[int, int] = {}
            buf = bytearray()
            for i, req in enumerate(batch):
                seq = next(_seq) & 0xFFFFFFFF
                seqs[seq] = i
                buf += _HDR.pack(_HDR.size + len(req.body), req.kind, req.flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0)
                buf += req.body
            self.sock.send(buf)
            replies: list[list[bytes]] = [[] for _ in batch]
            errors: list[int] = [0] * len(batch)
            pending = set(seqs)
            while pending:
                for kind, seq, payload in _messages(self.sock.recv(1 << 16)):
                    which = seqs.get(seq)
                    if which is None:
                        continue
                    if kind == NLMSG_ERROR:
                        errors[which] = -struct.unpack_from("=i", payload)[0]
                        pending.discard(seq)
                    else:
                        replies[which].append(bytes(payload))
        for req, code in zip(batch, errors, strict=True):
            if code and code not in req.tolerate:
                raise RtnlError(code, req.step)
        return replies

    def dump(self, step: str, kind: int, body: bytes) -> list[bytes]:
        """Every message of a dump request (until NLMSG_DONE)."""
        with self._lock:
            seq = next(_seq) & 0xFFFFFFFF
            self.sock.send(_HDR.pack(_HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
            found: list[bytes] = []
            while True:
                for mtype, mseq, payload in _messages(self.sock.recv(1 << 20)):
                    if mseq != seq:
                        continue
                    if mtype == NLMSG_DONE:
                        return found
                    if mtype == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", payload)
                        if code:
                            raise RtnlError(-code, step)
                    else:
                        found.append(bytes(payload))

    # -- lookups -----------------------------------------------------------------------
    def link(self, ifname: str) -> LinkInfo | None:
        """`ifname`'s index, kind, MAC and counters, or None (one targeted RTM_GETLINK, no dump)."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + string(IFLA_IFNAME, ifname)
        try:
            replies = self.run([Request(f"looking up {ifname}", RTM_GETLINK, 0, body)])
        except RtnlError as err:
            if err.code == errno.ENODEV:
                return None
            raise
        for message in replies[0]:
            return LinkInfo.parse(message)
        return None

    def link_index(self, ifname: str) -> int | None:
        found = self.link(ifname)
        return None if found is None else found.index

    def links(self) -> list[LinkInfo]:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        return [LinkInfo.parse(m) for m in self.dump("listing links", RTM_GETLINK, body)]

    def addresses(self, index: int) -> list[str]:
        """The IPv4 addresses of the link `index`."""
        found = []
        for message in self.dump("listing addresses", RTM_GETADDR, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)):
            if _IFADDR.unpack_from(message)[4] == index:
                attrs = parse_attrs(message, _IFADDR.size)
                if IFA_ADDRESS in attrs:
                    found.append(socket.inet_ntoa(attrs[IFA_ADDRESS]))
        return found

    def routes(self) -> list[RouteInfo]:
        """Every IPv4 route of every table."""
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        return [RouteInfo.parse(m) for m in self.dump("listing routes", RTM_GETROUTE, body)]

    def route_matching(self, ip: str) -> RouteInfo | None:
        """The route the kernel would use for `ip` (`ip route get fibmatch`), or None."""
        body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, RTM_F_FIB_MATCH) + attr(RTA_DST, ipv4(ip))
        try:
            replies = self.run([Request(f"looking up the route to {ip}", RTM_GETROUTE, 0, body)])
        except RtnlError as err:
            if err.code in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ESRCH):
                return None
            raise
        for message in replies[0]:
            return RouteInfo.parse(message)
        return None

    def source_for(self, ip: str) -> str | None:
        """The source address the kernel would give a new connection to `ip` (`ip route get`), or
        None (no route, or a route that names none)."""
        body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, 0) + attr(RTA_DST, ipv4(ip))
        try:
            replies = self.run([Request(f"looking up the source address towards {ip}", RTM_GETROUTE, 0, body)])
        except RtnlError as err:
            if err.code in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ESRCH):
                return None
            raise
        for message in replies[0]:
            found = parse_attrs(message, _RTMSG.size).get(RTA_PREFSRC)
            return socket.inet_ntoa(found) if found else None
        return None


# -- requests ----------------------------------------------------------------------------
def new_veth(
    name: str,
    name_mac: str | None,
    peer: str,
    peer_mac: str | None,
    mtu: int,
    *,
    peer_netns_fd: int | None = None,
) -> Request:
    """Create the veth pair `name` (up) <-> `peer` (down); the kernel echoes the new link (its
    index, and the peer's as IFLA_LINK). The peer cannot be created up: the kernel opens it before
    the pair is joined and refuses (ENOTCONN, seen on 6.18), so its own namespace's batch sets it up."""
    peer_attrs = (
        string(IFLA_IFNAME, peer) + (attr(IFLA_ADDRESS, mac(peer_mac)) if peer_mac else b"") + u32(IFLA_MTU, mtu)
    )
    if peer_netns_fd is not None:
        peer_attrs += u32(IFLA_NET_NS_FD, peer_netns_fd)
    peer_info = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + peer_attrs
    body = (
        _IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP)
        + string(IFLA_IFNAME, name)
        + (attr(IFLA_ADDRESS, mac(name_mac)) if name_mac else b"")
        + u32(IFLA_MTU, mtu)
        + nest(IFLA_LINKINFO, string(IFLA_INFO_KIND, "veth"), nest(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_info)))
    )
    return Request(f"creating veth {name} <-> {peer}", RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO, body)


def echoed_link(replies: list[bytes]) -> Link | None:
    for message in replies:
        index = _IFINFO.unpack_from(message)[2]
        attrs = parse_attrs(message, _IFINFO.size)
        peer: int | None = struct.unpack("=I", attrs[IFLA_LINK])[0] if IFLA_LINK in attrs else None
        return Link(int(index), peer)
    return None


def set_up(ifname: str) -> Request:
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + string(IFLA_IFNAME, ifname)
    return Request(f"setting {ifname} up", RTM_SETLINK, 0, body)


def set_link(index: int, ifname: str, *, flags: int, change: int, mtu: int | None = None) -> Request:
    """Link flags (`flags` for the bits in `change`, e.g. IFF_UP) and the MTU."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change) + (u32(IFLA_MTU, mtu) if mtu else b"")
    return Request(f"setting {ifname}'s flags and MTU", RTM_SETLINK, 0, body)


def del_address(index: int, ifname: str, ip: str, prefixlen: int = 32) -> Request:
    body = (
        _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index) + attr(IFA_LOCAL, ipv4(ip)) + attr(IFA_ADDRESS, ipv4(ip))
    )
    return Request(f"removing {ip}/{prefixlen} from {ifname}", RTM_DELADDR, 0, body, tolerate=(errno.EADDRNOTAVAIL,))


def del_clsact(index: int, ifname: str) -> Request:
    """Remove the clsact qdisc (and every tc program on it); none there is fine."""
    body = _TCMSG.pack(socket.AF_UNSPEC, index, 0xFFFF0000, TC_H_CLSACT, 0) + string(TCA_KIND, "clsact")
    return Request(
        f"removing the clsact qdisc of {ifname}", RTM_DELQDISC, 0, body, tolerate=(errno.ENOENT, errno.EINVAL)
    )


def set_ipv4_conf(index: int, ifname: str, **values: int) -> Request:
    """net.ipv4.conf.<ifname>.<key> = value (forwarding, proxy_arp, rp_filter) in one request."""
    conf = b"".join(u32(IPV4_DEVCONF[key], value) for key, value in values.items())
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) + nest(
        IFLA_AF_SPEC, nest(socket.AF_INET, nest(IFLA_INET_CONF, conf))
    )
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    return Request(f"setting {shown} on {ifname}", RTM_SETLINK, 0, body)


def set_proxy_delay(index: int, ifname: str, msecs: int) -> Request:
    """net.ipv4.neigh.<ifname>.proxy_delay (in the ARP table's per-device parameters)."""
    parms = nest(NDTA_PARMS, u32(NDTPA_IFINDEX, index), attr(NDTPA_PROXY_DELAY, struct.pack("=Q", msecs)))
    body = _NDTMSG.pack(socket.AF_INET) + string(NDTA_NAME, "arp_cache") + parms
    return Request(f"setting the ARP proxy_delay of {ifname}", RTM_SETNEIGHTBL, 0, body)


def add_address(index: int, ifname: str, ip: str, prefixlen: int = 32) -> Request:
    body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index) + attr(IFA_LOCAL, ipv4(ip))
    body += attr(IFA_ADDRESS, ipv4(ip))
    return Request(f"adding {ip}/{prefixlen} to {ifname}", RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)


def route(
    dst: str,
    dst_len: int,
    *,
    oif: int,
    gateway: str | None = None,
    scope: int = RT_SCOPE_UNIVERSE,
    proto: int = RTPROT_STATIC,  # what pyroute2 (and so earlier podnet) made
    replace: bool = False,
    what: str = "",
) -> Request:
    body = _RTMSG.pack(socket.AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, proto, scope, RTN_UNICAST, 0)
    if dst_len:
        body += attr(RTA_DST, ipv4(dst))
    if gateway:
        body += attr(RTA_GATEWAY, ipv4(gateway))
    body += u32(RTA_OIF, oif)
    flags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
    return Request(what or f"adding the route to {dst}/{dst_len}", RTM_NEWROUTE, flags, body)


def add_clsact(index: int, ifname: str) -> Request:
    body = _TCMSG.pack(socket.AF_UNSPEC, index, 0xFFFF0000, TC_H_CLSACT, 0) + string(TCA_KIND, "clsact")
    return Request(
        f"creating the clsact qdisc on {ifname}",
        RTM_NEWQDISC,
        NLM_F_CREATE | NLM_F_EXCL,
        body,
        tolerate=(errno.EEXIST,),
    )


def add_bpf_filter(
    index: int, ifname: str, direction: str, prog_fd: int, name: str, *, handle: int = 1, priority: int = 1
) -> Request:
    """A direct-action bpf filter on the clsact hook, as libbpf's bpf_tc_attach makes it (same
    handle, priority and protocol, so that it finds, replaces and detaches it)."""
    parent = TC_H_INGRESS_PARENT if direction == "ingress" else TC_H_EGRESS_PARENT
    info = (priority << 16) | socket.htons(ETH_P_ALL)
    options = nest(
        TCA_OPTIONS,
        u32(TCA_BPF_FD, prog_fd),
        string(TCA_BPF_NAME, name),
        u32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT),
    )
    body = _TCMSG.pack(socket.AF_UNSPEC, index, handle, parent, info) + string(TCA_KIND, "bpf") + options
    return Request(
        f"attaching {name} to tc {direction} of {ifname}", RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_REPLACE, body
    )


def del_link(ifname: str) -> Request:
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + string(IFLA_IFNAME, ifname)
    return Request(f"deleting {ifname}", RTM_DELLINK, 0, body, tolerate=(errno.ENODEV,))


def set_group(index: int, ifname: str, group: int) -> Request:
    """The link's group (a number links can be deleted by, all at once: `del_group`)."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) + u32(IFLA_GROUP, group)
    return Request(f"putting {ifname} in link group {group:#x}", RTM_SETLINK, 0, body, tolerate=(errno.ENODEV,))


def del_group(group: int) -> Request:
    """Every link of the socket's namespace in `group`, deleted in one go: the kernel unregisters them
    together, so they share one RCU grace period instead of waiting one each (`ip link del group N`)."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + u32(IFLA_GROUP, group)
    return Request(f"deleting link group {group:#x}", RTM_DELLINK, 0, body, tolerate=(errno.ENODEV,))


def del_link_index(index: int, ifname: str) -> Request:
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    return Request(f"deleting {ifname}", RTM_DELLINK, 0, body, tolerate=(errno.ENODEV,))


def del_route(dst: str, dst_len: int, oif: int | None = None) -> Request:
    body = _RTMSG.pack(socket.AF_INET, dst_len, 0, 0, RT_TABLE_MAIN, 0, 0, 0, 0) + (
        attr(RTA_DST, ipv4(dst)) if dst_len else b""
    )
    if oif is not None:
        body += u32(RTA_OIF, oif)
    return Request(
        f"deleting the route to {dst}/{dst_len}", RTM_DELROUTE, 0, body, tolerate=(errno.ESRCH, errno.ENODEV)
    )
