"""Endpoints as veth pairs, and the node's host device, with pyroute2.

An endpoint is a veth pair: the host side `lxc<hash>` stays in the node's
network namespace with a /32 route to the pod IP; the other side either waits
in the node namespace under a temporary name for the runtime to move it
(dockerd does that after Join), or is created directly in the pod's namespace
and configured there (the CNI path). The router IP lives on the host device
`podnet_host` (a veth pair: this kernel has no `dummy` module); containers
reach it as a connected /32 and use it as their default gateway, and the node
answers their ARP for it on every `lxc` device (a local address, weak host
model; proxy ARP is on with no delay for any other on-link address).

Every multi-step operation undoes what it did when a later step fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from podnet.datapath import firewall, podview, sysctl
from podnet.datapath.errors import DatapathError, InterfaceExistsError
from podnet.datapath.names import host_ifname, mac_for, temp_ifname
from podnet.datapath.netns import open_netns, run_in_netns
from podnet.datapath.protocol import BpfAccess, EndpointLink, LinkCounters, PodLink

log = logging.getLogger("podnet.datapath")

HOST_DEVICE = "podnet_host"
HOST_DEVICE_PEER = "podnet_net"
RT_SCOPE_LINK = 253
RTPROT_PODNET = 200  # our routes are recognisable in `ip route` as "proto 200"
IFF_NOARP = 0x80


class Rollback:
    """Undo steps in reverse order unless `commit` is called."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], Any]]] = []

    def add(self, what: str, undo: Callable[[], Any]) -> None:
        self._steps.append((what, undo))

    def commit(self) -> None:
        self._steps.clear()

    def __enter__(self) -> Rollback:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            return
        for _what, undo in reversed(self._steps):
            # Best effort: the original error is the one to report.
            with contextlib.suppress(NetlinkError, OSError, DatapathError):
                undo()


def _err(step: str, err: BaseException) -> DatapathError:
    detail = err.args[1] if isinstance(err, NetlinkError) and len(err.args) > 1 else str(err)
    return DatapathError(f"{step}: {detail}")


class VethDatapath:
    """The plain-route datapath of one node (the current network namespace)."""

    def __init__(self, *, mtu: int = 1500):
        self.mtu = mtu
        self.ipr = IPRoute()
        self._reaper: Reaper | None = None

    def close(self) -> None:
        if self._reaper is not None:
            self._reaper.close()
        self.ipr.close()

    def delete_endpoint_later(self, endpoint_id: str, ip: str | None) -> None:
        """Delete an endpoint's veth and route in the background (see `Reaper`)."""
        if self._reaper is None:
            self._reaper = Reaper(self.mtu)
        self._reaper.submit(endpoint_id, ip)

    def pending_deletions(self) -> int:
        return 0 if self._reaper is None else self._reaper.pending

    # -- lookups ------------------------------------------------------------
    def index_of(self, ifname: str) -> int | None:
        # A targeted RTM_GETLINK: link_lookup() would dump every link on the node.
        try:
            reply = self.ipr.link("get", ifname=ifname)
        except NetlinkError as err:
            if err.code == 19:  # ENODEV
                return None
            raise
        return int(reply[0]["index"])

    def pod_interface(self, netns: str, ifname: str) -> PodLink | None:
        return podview.pod_interface(netns, ifname)

    def _mac_of(self, index: int) -> str:
        return str(self.ipr.get_links(index)[0].get("address"))

    def host_veths(self) -> list[str]:
        return sorted(
            name
            for link in self.ipr.get_links()
            if (name := str(link.get("ifname"))).startswith("lxc") and link.get("kind", None) in (None, "veth")
        )

    def counters(self, ifname: str) -> LinkCounters | None:
        index = self.index_of(ifname)
        if index is None:
            return None
        stats = self.ipr.get_links(index)[0].get("stats64") or {}
        return LinkCounters(
            rx_packets=int(stats.get("rx_packets", 0)),
            rx_bytes=int(stats.get("rx_bytes", 0)),
            tx_packets=int(stats.get("tx_packets", 0)),
            tx_bytes=int(stats.get("tx_bytes", 0)),
            rx_dropped=int(stats.get("rx_dropped", 0)),
            tx_dropped=int(stats.get("tx_dropped", 0)),
        )

    def has_route(self, ip: str, ifname: str) -> bool:
        index = self.index_of(ifname)
        if index is None:
            return False
        routes = self.ipr.get_routes(family=2, dst=ip, dst_len=32, table=254)
        return any(r.get("oif") == index for r in routes)

    def restore_endpoint(self, ip: str, ifname: str, mac: str, host_mac: str) -> bool:
        """Re-plumb an endpoint whose veth exists (agent restart); True if anything was missing."""
        index = self.index_of(ifname)
        if index is None:
            raise DatapathError(f"cannot restore {ip}: {ifname} does not exist")
        # Left over from the eBPF datapath: its programs go with the qdisc.
        with contextlib.suppress(NetlinkError):
            self.ipr.tc("del", "clsact", index)
        if self.has_route(ip, ifname):
            return False
        self._route_to(ip, index)
        return True

    def _route_to(self, ip: str, index: int) -> None:
        self.ipr.route("replace", dst=ip, dst_len=32, oif=index, scope=RT_SCOPE_LINK, proto=RTPROT_PODNET, table=254)

    # -- node setup -----------------------------------------------------------
    mode = "routes"

    def describe(self) -> str:
        return "veth + per-pod /32 routes"

    def bpf(self) -> BpfAccess | None:
        return None  # routes only: no maps

    def ensure_host_device(self, router_ip: str, pod_cidr: str) -> int:
        """podnet_host carries the router IP; idempotent. Returns its ifindex."""
        index = self.index_of(HOST_DEVICE)
        try:
            if index is None:
                self.ipr.link("add", ifname=HOST_DEVICE, kind="veth", peer={"ifname": HOST_DEVICE_PEER})
                index = self.index_of(HOST_DEVICE)
                assert index is not None
            peer = self.index_of(HOST_DEVICE_PEER)
            self.ipr.link("set", index=index, state="up", mtu=self.mtu)
            if peer is not None:
                self.ipr.link("set", index=peer, state="up", mtu=self.mtu)
            have = {a.get("IFA_ADDRESS") for a in self.ipr.get_addr(index=index, family=2)}
            for stale in have - {router_ip}:
                self.ipr.addr("del", index=index, address=stale, prefixlen=32)
            if router_ip not in have:
                self.ipr.addr("add", index=index, address=router_ip, prefixlen=32)
        except NetlinkError as err:
            raise _err(f"setting up host device {HOST_DEVICE} with router IP {router_ip}", err) from err
        sysctl.write("net/ipv4/ip_forward", 1)
        sysctl.write("net/ipv4/conf/all/rp_filter", 0)
        firewall.ensure()
        self._setup_host_device(index)
        return index

    def _setup_host_device(self, index: int) -> None:
        """Undo what the eBPF datapath did to podnet_host: pod CIDR route, NOARP, program."""
        try:
            for route in self.ipr.get_routes(family=2, oif=index, table=254):
                if route.get("proto") == RTPROT_PODNET:
                    self.ipr.route("del", dst=route.get("RTA_DST"), dst_len=route["dst_len"], oif=index, table=254)
            self.ipr.link("set", index=index, flags=0, change=IFF_NOARP)
            with contextlib.suppress(NetlinkError):
                self.ipr.tc("del", "clsact", index)
        except NetlinkError as err:
            raise _err(f"resetting {HOST_DEVICE} for the routes datapath", err) from err

    # -- endpoints --------------------------------------------------------------
    def create_endpoint(
        self,
        endpoint_id: str,
        ip: str,
        router_ip: str,
        *,
        netns: str | None = None,
        ifname: str | None = None,
    ) -> EndpointLink:
        """Create an endpoint's veth pair and routes; all or nothing.

        With `netns`, the peer is made and configured in that network namespace,
        through one descriptor of it (`open_netns` checked it is a pod's)."""
        netns_fd = open_netns(netns) if netns else None
        try:
            return self._create_endpoint(endpoint_id, ip, router_ip, netns, netns_fd, ifname)
        finally:
            if netns_fd is not None:
                os.close(netns_fd)

    def _create_endpoint(
        self, endpoint_id: str, ip: str, router_ip: str, netns: str | None, netns_fd: int | None, ifname: str | None
    ) -> EndpointLink:
        host = host_ifname(endpoint_id)
        peer = ifname if netns else temp_ifname(endpoint_id)
        assert peer is not None
        host_mac, peer_mac = mac_for(endpoint_id, "host"), mac_for(endpoint_id, "container")
        with Rollback() as undo:
            peer_spec: dict[str, Any] = {"ifname": peer, "address": peer_mac, "mtu": self.mtu}
            if netns_fd is not None:
                peer_spec["net_ns_fd"] = netns_fd
            try:
                self.ipr.link(
                    "add", ifname=host, kind="veth", address=host_mac, mtu=self.mtu, state="up", peer=peer_spec
                )
            except (NetlinkError, OSError) as err:
                if isinstance(err, NetlinkError) and err.code == 17:  # EEXIST: the host side or the peer's name
                    if self.index_of(host) is not None:
                        raise InterfaceExistsError(
                            f"host veth {host} for endpoint {endpoint_id} already exists"
                        ) from err
                    where = f"in {netns}" if netns else "on the node"
                    raise InterfaceExistsError(f"interface {peer} already exists {where}") from err
                where = f" in {netns}" if netns else ""
                raise _err(f"creating veth {host} <-> {peer}{where}", err) from err
            index = self.index_of(host)
            assert index is not None
            undo.add("delete veth", lambda: self.ipr.link("del", index=index))
            # Answer ARP for the router IP (and anything on-link) at once.
            sysctl.set_interface(host, rp_filter=0, forwarding=1, proxy_arp=1)
            sysctl.write(f"net/ipv4/neigh/{host}/proxy_delay", 0)
            self._plumb(ip, index, host, host_mac, peer_mac)
            undo.add("unplumb", lambda: self._unplumb(ip, index))
            if netns and netns_fd is not None:
                assert ifname is not None
                self._configure_peer(netns, netns_fd, ifname, ip, router_ip)
            undo.commit()
        return EndpointLink(host, index, host_mac, peer, peer_mac, moved=bool(netns))

    def _plumb(self, ip: str, index: int, host: str, host_mac: str, peer_mac: str) -> None:
        """How traffic for the endpoint's IP reaches its veth: here, a /32 route."""
        try:
            self._route_to(ip, index)
        except NetlinkError as err:
            raise _err(f"routing {ip}/32 to {host}", err) from err

    def _unplumb(self, ip: str, index: int) -> None:
        self._del_route(ip, index)

    def _configure_peer(self, netns: str, netns_fd: int, ifname: str, ip: str, router_ip: str) -> None:
        def configure(ns: IPRoute) -> None:
            lo = ns.link_lookup(ifname="lo")
            if lo:
                ns.link("set", index=lo[0], state="up")
            index = ns.link_lookup(ifname=ifname)[0]
            ns.addr("add", index=index, address=ip, prefixlen=32)
            ns.link("set", index=index, state="up")
            ns.route("add", dst=router_ip, dst_len=32, oif=index, scope=RT_SCOPE_LINK)
            ns.route("add", dst="0.0.0.0", dst_len=0, gateway=router_ip, oif=index)

        try:
            run_in_netns(netns_fd, configure)
        except (NetlinkError, OSError, IndexError) as err:
            raise _err(
                f"configuring {ifname} with {ip}/32 and a default route via {router_ip} in {netns}", err
            ) from err

    def _del_route(self, ip: str, index: int | None = None) -> None:
        spec: dict[str, Any] = {"dst": ip, "dst_len": 32, "table": 254}
        if index is not None:
            spec["oif"] = index
        try:
            self.ipr.route("del", **spec)
        except NetlinkError as err:
            if err.code not in (3, 19):  # ESRCH, ENODEV: already gone
                raise

    def delete_endpoint(self, endpoint_id: str, ip: str | None) -> bool:
        """Remove an endpoint's veth (both sides) and route; True if anything existed.

        Synchronous; the agent normally hands this to a `Reaper`."""
        host = host_ifname(endpoint_id)
        index = self.index_of(host)
        existed = index is not None
        try:
            if ip is not None and index is not None:
                self._unplumb(ip, index)
            if index is not None:
                self.ipr.link("del", index=index)
            temp = self.index_of(temp_ifname(endpoint_id))
            if temp is not None:  # the runtime never took it
                self.ipr.link("del", index=temp)
                existed = True
        except NetlinkError as err:
            raise _err(f"deleting endpoint {endpoint_id} ({host})", err) from err
        return existed

    def apply_policy(
        self,
        endpoints: dict[str, tuple[int, bool]],
        entries: Iterable[tuple[int, int, int, int]],
        ipcache: dict[str, int] | None,
    ) -> None:
        """Policy needs the eBPF datapath; with plain routes there is nothing to write."""

    def delete_link(self, ifname: str) -> None:
        index = self.index_of(ifname)
        if index is not None:
            self.ipr.link("del", index=index)


class Reaper:
    """Deletes endpoint veths on its own thread and netlink socket.

    Deleting a veth waits for an RCU grace period (~18 ms here): the runtime
    need not wait for it. The endpoint's /32 route is removed with the veth,
    and only for that veth's ifindex, so a new endpoint reusing the IP meanwhile
    keeps its route. A veth the reaper fails to delete is found by the agent's
    leaked-veth collection.
    """

    def __init__(self, mtu: int = 1500):
        self._queue: queue.SimpleQueue[tuple[str, str | None] | None] = queue.SimpleQueue()
        self._mtu = mtu
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="veth-reaper", daemon=True)
        self._thread.start()

    def submit(self, endpoint_id: str, ip: str | None) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._queue.put((endpoint_id, ip))

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        return self._idle.wait(timeout_s)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def _run(self) -> None:
        datapath = VethDatapath(mtu=self._mtu)
        try:
            while (item := self._queue.get()) is not None:
                endpoint_id, ip = item
                try:
                    datapath.delete_endpoint(endpoint_id, ip)
                except DatapathError as err:
                    log.warning("deleting the veth of endpoint %s: %s", endpoint_id, err)
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()
        finally:
            datapath.close()
