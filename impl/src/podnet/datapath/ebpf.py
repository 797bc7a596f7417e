"""The eBPF datapath: veth endpoints whose traffic is steered by tc programs, not per-pod routes.

What differs from the plain-route datapath (`VethDatapath`):
- each endpoint's host veth runs `from_container` (tc ingress) and
  `to_container` (tc egress), and the endpoint is an entry of the endpoints
  map (pod IP -> ifindex, MACs, identity, policy flag) instead of a /32 route;
- the node routes its whole pod CIDR to `podnet_host` (NOARP), whose egress
  program `from_host` hands each packet to its endpoint's veth;
- same-node pod-to-pod traffic never enters the node's stack
  (bpf_redirect_peer), so the node's FORWARD chain does not see it;
- identities and the compiled policy live in maps the programs consult.

Maps are pinned under the node's pin directory, so an agent restart re-uses
them and re-attaches the freshly loaded programs atomically.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from podnet import timing
from podnet.datapath import rtnl
from podnet.datapath.bpf import object_file, tc
from podnet.datapath.bpf.events import EventReader, EventSink
from podnet.datapath.bpf.loader import BpfObject
from podnet.datapath.bpf.maps import (
    CONFIG_TRACE,
    EP_F_POLICY_INGRESS,
    EndpointCounters,
    EndpointInfo,
    PolicyKey,
    PolicyValue,
    ip_key,
    ip_of,
)
from podnet.datapath.errors import DatapathError
from podnet.datapath.names import host_ifname
from podnet.datapath.protocol import LinkCounters
from podnet.datapath.rtnl import Request
from podnet.datapath.veth import (
    HOST_DEVICE,
    IFF_NOARP,
    RT_SCOPE_LINK,
    RTPROT_PODNET,
    VethDatapath,
    _err,
)
from podnet.identity import IDENTITY_INIT

log = logging.getLogger("podnet.datapath.bpf")


class BpfDatapath(VethDatapath):
    mode = "bpf"

    def __init__(
        self,
        *,
        pin_dir: Path,
        mtu: int = 1500,
        obj: Path | None = None,
        loaded: BpfObject | None = None,
        map_sizes: Mapping[str, int] | None = None,
    ):
        """`loaded`: the object, already loaded and pinned in `pin_dir` (the agent loads it early);
        `map_sizes`: max entries per map when this loads it."""
        super().__init__(mtu=mtu)
        self.pod_cidr: ipaddress.IPv4Network | None = None
        self.pin_dir = pin_dir
        try:
            self.obj = loaded or BpfObject(obj or object_file(), pin_dir, map_sizes)
        except BaseException:
            super().close()
            raise
        try:
            self.endpoints_map = self.obj.map("pn_endpoints")
            self.policy_map = self.obj.map("pn_policy")
            self.ipcache_map = self.obj.map("pn_ipcache")
            self.counters_map = self.obj.map("pn_counters")
            self.config_map = self.obj.map("pn_config")
        except BaseException:
            self.obj.close()
            super().close()
            raise
        self._events: EventReader | None = None

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        self.obj.close()
        super().close()

    def describe(self) -> str:
        routed = (
            f"{self.pod_cidr} routed to {HOST_DEVICE}" if self.pod_cidr else f"the pod CIDR routed to {HOST_DEVICE}"
        )
        return (
            f"eBPF: tc programs on every endpoint, same-node delivery by bpf_redirect_peer, "
            f"{routed}; maps pinned in {self.pin_dir}"
        )

    def bpf(self) -> BpfDatapath:
        return self

    def _prog(self, name: str) -> int:
        return self.obj.program_fd(name)

    # -- node -------------------------------------------------------------------
    def ensure_host_device(self, router_ip: str, pod_cidr: str) -> int:
        self.pod_cidr = ipaddress.IPv4Network(pod_cidr)
        return super().ensure_host_device(router_ip, pod_cidr)

    def _setup_host_device(self, index: int) -> None:
        assert self.pod_cidr is not None
        try:
            self.rtnl.run(
                [
                    rtnl.set_link(index, HOST_DEVICE, flags=IFF_NOARP, change=IFF_NOARP),
                    rtnl.route(
                        str(self.pod_cidr.network_address),
                        self.pod_cidr.prefixlen,
                        oif=index,
                        scope=RT_SCOPE_LINK,
                        proto=RTPROT_PODNET,
                        replace=True,
                        what=f"routing {self.pod_cidr} to {HOST_DEVICE}",
                    ),
                ]
            )
        except OSError as err:
            raise _err(f"routing {self.pod_cidr} to {HOST_DEVICE}", err) from err
        self._attach(index, "egress", "from_host", HOST_DEVICE)

    def _attach(self, index: int, direction: str, program: str, ifname: str) -> None:
        try:
            tc.attach(index, direction, self._prog(program))
        except OSError as err:
            raise DatapathError(f"attaching {program} to tc {direction} of {ifname}: {err.strerror}") from err

    # -- endpoints ----------------------------------------------------------------
    def _plumb(self, ip: str, index: int, host: str, host_mac: str, peer_mac: str) -> list[Request]:
        """The endpoints map entry now; the clsact qdisc and both programs in the batch that sets the
        device up (same handle and priority as `tc.attach`: `tc.attached` and `tc.detach` find them)."""
        try:
            self.endpoints_map.update(ip_key(ip), EndpointInfo(index, IDENTITY_INIT, peer_mac, host_mac).pack())
        except OSError as err:
            raise DatapathError(f"adding {ip} to the endpoints map: {err.strerror}") from err
        timing.mark("plumb: map")
        return self._programs(index, host)

    def _programs(self, index: int, host: str) -> list[Request]:
        """clsact (if not there yet) and both programs, each created or replaced in place."""
        return [
            rtnl.add_clsact(index, host),
            rtnl.add_bpf_filter(
                index,
                host,
                "ingress",
                self._prog("from_container"),
                "from_container",
                handle=tc.HANDLE,
                priority=tc.PRIORITY,
            ),
            rtnl.add_bpf_filter(
                index,
                host,
                "egress",
                self._prog("to_container"),
                "to_container",
                handle=tc.HANDLE,
                priority=tc.PRIORITY,
            ),
        ]

    def _unplumb(self, ip: str, index: int) -> None:
        current = self.endpoints_map.lookup(ip_key(ip))
        # The IP may already belong to a newer endpoint: only remove our own entry.
        if current is not None and EndpointInfo.unpack(current).ifindex == index:
            self.endpoints_map.delete(ip_key(ip))
        self.counters_map.delete(index.to_bytes(4, "little"))

    def delete_endpoint_later(self, endpoint_id: str, ip: str | None) -> None:
        index = self.index_of(host_ifname(endpoint_id))
        if ip is not None and index is not None:
            self._unplumb(ip, index)
        super().delete_endpoint_later(endpoint_id, ip)

    def restore_endpoint(self, ip: str, ifname: str, mac: str, host_mac: str) -> bool:
        index = self.index_of(ifname)
        if index is None:
            raise DatapathError(f"cannot restore {ip}: {ifname} does not exist")
        repaired = False
        if self.has_route(ip, ifname):  # left by the routes datapath
            self._del_route(ip, index)
            repaired = True
        raw = self.endpoints_map.lookup(ip_key(ip))
        old = EndpointInfo.unpack(raw) if raw else None
        want = EndpointInfo(index, old.identity if old else IDENTITY_INIT, mac, host_mac, old.flags if old else 0)
        if old != want:
            self.endpoints_map.update(ip_key(ip), want.pack())
            repaired = True
        # Always: this agent loaded new program instances; replacing is atomic.
        try:
            self.rtnl.run(self._programs(index, ifname))
        except OSError as err:
            raise _err(f"attaching the programs to {ifname}", err) from err
        return repaired

    def counters(self, ifname: str) -> LinkCounters | None:
        """What the programs counted (IPv4): same-node traffic bypasses the veth's tx counters."""
        index = self.index_of(ifname)
        if index is None:
            return None
        per_cpu = self.counters_map.lookup_per_cpu(index.to_bytes(4, "little"))
        c = EndpointCounters.sum([EndpointCounters.unpack(v) for v in per_cpu]) if per_cpu else EndpointCounters()
        return LinkCounters(
            rx_packets=c.from_packets,
            rx_bytes=c.from_bytes,
            tx_packets=c.to_packets,
            tx_bytes=c.to_bytes,
            rx_dropped=0,
            tx_dropped=sum(c.drops.values()),
        )

    # -- identities and policy ----------------------------------------------------------
    def apply_policy(
        self,
        endpoints: dict[str, tuple[int, bool]],
        entries: Iterable[tuple[int, int, int, int]] | None,
        ipcache: dict[str, int] | None,
    ) -> None:
        """Make the maps say exactly this: local endpoints' (identity, policy enforced),
        allow entries (src identity, dst identity, protocol, port), remote IPs' identities.
        Only differences are written, so the hit counters of unchanged entries survive.
        `entries` or `ipcache` None: that map stays as it is (reading it whole costs a syscall
        per entry: not on every endpoint's creation)."""
        try:
            for ip, (identity, enforced) in endpoints.items():
                raw = self.endpoints_map.lookup(ip_key(ip))
                if raw is None:
                    continue
                info = EndpointInfo.unpack(raw)
                flags = (info.flags | EP_F_POLICY_INGRESS) if enforced else (info.flags & ~EP_F_POLICY_INGRESS)
                if (info.identity, info.flags) != (identity, flags):
                    self.endpoints_map.update(
                        ip_key(ip), EndpointInfo(info.ifindex, identity, info.mac, info.node_mac, flags).pack()
                    )
            if entries is not None:
                want = {PolicyKey(src, dst, proto, port).pack() for src, dst, proto, port in entries}
                have = set(self.policy_map.keys())
                for key in have - want:
                    self.policy_map.delete(key)
                for key in want - have:
                    self.policy_map.update(key, PolicyValue().pack())
            if ipcache is None:
                return
            want_cache = {ip_key(ip): identity.to_bytes(4, "little") for ip, identity in ipcache.items()}
            for key, value in self.ipcache_map.items():
                if want_cache.get(key) != value:
                    self.ipcache_map.delete(key)
            for key, value in want_cache.items():
                if self.ipcache_map.lookup(key) != value:
                    self.ipcache_map.update(key, value)
        except OSError as err:
            raise DatapathError(f"writing the policy maps: {err.strerror}") from err

    # -- observability ------------------------------------------------------------------------
    def endpoint_entries(self) -> list[tuple[str, EndpointInfo]]:
        return sorted(
            ((ip_of(k), EndpointInfo.unpack(v)) for k, v in self.endpoints_map.items()),
            key=lambda e: ipaddress.IPv4Address(e[0]),
        )

    def policy_entries(self) -> list[tuple[PolicyKey, PolicyValue]]:
        return sorted((PolicyKey.unpack(k), PolicyValue.unpack(v)) for k, v in self.policy_map.items())

    def ipcache_entries(self) -> dict[str, int]:
        return {ip_of(k): int.from_bytes(v, "little") for k, v in self.ipcache_map.items()}

    def counter_entries(self) -> dict[int, EndpointCounters]:
        found: dict[int, EndpointCounters] = {}
        for key in list(self.counters_map.keys()):
            per_cpu = self.counters_map.lookup_per_cpu(key)
            if per_cpu is not None:
                found[int.from_bytes(key, "little")] = EndpointCounters.sum(
                    [EndpointCounters.unpack(v) for v in per_cpu]
                )
        return found

    def set_trace(self, on: bool) -> None:
        self.config_map.update(b"\0\0\0\0", (CONFIG_TRACE if on else 0).to_bytes(4, "little"))

    def start_events(self, sink: EventSink) -> None:
        """Read drop/trace events on a thread of their own; `sink` gets each one."""
        if self._events is None:
            self._events = EventReader(self.obj.map("pn_events").fd, sink)
