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
import errno
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from podnet import timing
from podnet.datapath import firewall, rtnl, sysctl
from podnet.datapath.errors import DatapathError, InterfaceExistsError
from podnet.datapath.names import host_ifname, mac_for, temp_ifname
from podnet.datapath.netns import open_netns
from podnet.datapath.protocol import BpfAccess, EndpointLink, LinkCounters, PodLink
from podnet.datapath.reaper import Reaper
from podnet.datapath.rtnl import Request, Rtnl, RtnlError

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
            with contextlib.suppress(OSError, DatapathError):
                undo()


def _err(step: str, err: BaseException) -> DatapathError:
    detail = f"{err.step}: {err.strerror}" if isinstance(err, RtnlError) else str(err)
    return DatapathError(f"{step}: {detail}")


# The link group of veths on their way out (`delete_endpoints`): nothing else on a node uses it.
REAP_GROUP = 0x706E6764  # "pngd"


class VethDatapath:
    """The plain-route datapath of one node (the current network namespace)."""

    def __init__(self, *, mtu: int = 1500):
        self.mtu = mtu
        self.rtnl = Rtnl()  # one socket, reused; batched requests (podnet.datapath.rtnl)
        self._reaper: Reaper | None = None

    def close(self) -> None:
        if self._reaper is not None:
            self._reaper.close()
        self.rtnl.close()

    def delete_endpoint_later(self, endpoint_id: str, ip: str | None) -> None:
        """Delete an endpoint's veth and route in the background (see `Reaper`)."""
        if self._reaper is None:
            mtu = self.mtu
            self._reaper = Reaper(lambda: VethDatapath(mtu=mtu))
        self._reaper.submit(endpoint_id, ip)

    def pending_deletions(self) -> int:
        return 0 if self._reaper is None else self._reaper.pending

    def wait_deleted(self, endpoint_id: str, timeout_s: float = 5.0) -> bool:
        """Until the endpoint's veth, handed to `delete_endpoint_later`, is gone (True), or the timeout."""
        return True if self._reaper is None else self._reaper.wait(endpoint_id, timeout_s)

    # -- lookups ------------------------------------------------------------
    def index_of(self, ifname: str) -> int | None:
        # A targeted RTM_GETLINK: link_lookup() would dump every link on the node.
        return self.rtnl.link_index(ifname)

    def pod_interface(self, netns: str, ifname: str) -> PodLink | None:
        from podnet.datapath import podview  # CHECK only: keeps pyroute2 off the agent's start

        return podview.pod_interface(netns, ifname)

    def host_veths(self) -> list[str]:
        return sorted(
            link.name for link in self.rtnl.links() if link.name.startswith("lxc") and link.kind in (None, "veth")
        )

    def counters(self, ifname: str) -> LinkCounters | None:
        link = self.rtnl.link(ifname)
        if link is None:
            return None
        stats = (*link.stats, *(0,) * 8)  # rx/tx packets, rx/tx bytes, rx/tx errors, rx/tx dropped
        return LinkCounters(
            rx_packets=stats[0],
            rx_bytes=stats[2],
            tx_packets=stats[1],
            tx_bytes=stats[3],
            rx_dropped=stats[6],
            tx_dropped=stats[7],
        )

    def has_route(self, ip: str, ifname: str) -> bool:
        """A /32 route to `ip` through `ifname` in the main table (the route the kernel matches)."""
        index = self.index_of(ifname)
        if index is None:
            return False
        found = self.rtnl.route_matching(ip)
        return found is not None and (found.dst, found.dst_len, found.table, found.oif) == (ip, 32, 254, index)

    def restore_endpoint(self, ip: str, ifname: str, mac: str, host_mac: str) -> bool:
        """Re-plumb an endpoint whose veth exists (agent restart); True if anything was missing."""
        index = self.index_of(ifname)
        if index is None:
            raise DatapathError(f"cannot restore {ip}: {ifname} does not exist")
        # Left over from the eBPF datapath: its programs go with the qdisc.
        self.rtnl.run([rtnl.del_clsact(index, ifname)])
        if self.has_route(ip, ifname):
            return False
        self._route_to(ip, index)
        return True

    def _route_to(self, ip: str, index: int) -> None:
        self.rtnl.run([self._route_request(ip, index)])

    @staticmethod
    def _route_request(ip: str, index: int) -> Request:
        return rtnl.route(ip, 32, oif=index, scope=RT_SCOPE_LINK, proto=RTPROT_PODNET, replace=True)

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
                self.rtnl.run([rtnl.new_veth(HOST_DEVICE, None, HOST_DEVICE_PEER, None, self.mtu)])
                index = self.index_of(HOST_DEVICE)
                assert index is not None
            peer = self.index_of(HOST_DEVICE_PEER)
            up = [rtnl.set_link(index, HOST_DEVICE, flags=rtnl.IFF_UP, change=rtnl.IFF_UP, mtu=self.mtu)]
            if peer is not None:
                up.append(rtnl.set_link(peer, HOST_DEVICE_PEER, flags=rtnl.IFF_UP, change=rtnl.IFF_UP, mtu=self.mtu))
            self.rtnl.run(up)
            have = set(self.rtnl.addresses(index))
            changes = [rtnl.del_address(index, HOST_DEVICE, stale) for stale in sorted(have - {router_ip})]
            if router_ip not in have:
                changes.append(rtnl.add_address(index, HOST_DEVICE, router_ip))
            self.rtnl.run(changes)
        except OSError as err:
            raise _err(f"setting up host device {HOST_DEVICE} with router IP {router_ip}", err) from err
        sysctl.write("net/ipv4/ip_forward", 1)
        sysctl.write("net/ipv4/conf/all/rp_filter", 0)
        firewall.ensure()
        self._setup_host_device(index)
        return index

    def _setup_host_device(self, index: int) -> None:
        """Undo what the eBPF datapath did to podnet_host: pod CIDR route, NOARP, program."""
        try:
            ours = [
                rtnl.del_route(r.dst, r.dst_len, index)
                for r in self.rtnl.routes()
                if r.oif == index and r.table == 254 and r.proto == RTPROT_PODNET
            ]
            self.rtnl.run(
                [
                    *ours,
                    rtnl.set_link(index, HOST_DEVICE, flags=0, change=IFF_NOARP),
                    rtnl.del_clsact(index, HOST_DEVICE),
                ]
            )
        except OSError as err:
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
        timing.mark("netns: open")
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
            # Alone in its batch: whatever follows names the new device by its index.
            create = rtnl.new_veth(host, host_mac, peer, peer_mac, self.mtu, peer_netns_fd=netns_fd)
            try:
                replies = self.rtnl.run([create])
            except RtnlError as err:
                if err.code == errno.EEXIST:  # the host side or the peer's name
                    if self.index_of(host) is not None:
                        raise InterfaceExistsError(
                            f"host veth {host} for endpoint {endpoint_id} already exists"
                        ) from err
                    where = f"in {netns}" if netns else "on the node"
                    raise InterfaceExistsError(f"interface {peer} already exists {where}") from err
                where = f" in {netns}" if netns else ""
                raise DatapathError(f"creating veth {host} <-> {peer}{where}: {err.strerror}") from err
            link = rtnl.echoed_link(replies[0])  # kernels before 6.3 do not echo: look it up
            index = link.index if link else self.index_of(host)
            assert index is not None
            undo.add("delete veth", lambda: self.rtnl.run([rtnl.del_link_index(index, host)]))
            timing.mark("veth: create")
            # Answer ARP for the router IP (and anything on-link) at once: the device's IPv4
            # settings, its ARP proxy delay and the endpoint's plumbing in one batch.
            setup = [
                rtnl.set_ipv4_conf(index, host, rp_filter=0, forwarding=1, proxy_arp=1),
                rtnl.set_proxy_delay(index, host, 0),
            ]
            undo.add("unplumb", lambda: self._unplumb(ip, index))
            try:
                self.rtnl.run([*setup, *self._plumb(ip, index, host, host_mac, peer_mac)])
            except RtnlError as err:
                raise DatapathError(f"setting up {host} for {ip}: {err.step}: {err.strerror}") from err
            timing.mark("veth: set up and plumbed")
            if netns and netns_fd is not None:
                assert ifname is not None
                self._configure_peer(netns, netns_fd, ifname, link.peer_index if link else None, ip, router_ip)
                timing.mark("peer: configure")
            undo.commit()
        return EndpointLink(host, index, host_mac, peer, peer_mac, moved=bool(netns))

    def _plumb(self, ip: str, index: int, host: str, host_mac: str, peer_mac: str) -> list[Request]:
        """How traffic for the endpoint's IP reaches its veth (here, a /32 route): the requests for
        the batch that sets the device up, after any work of its own."""
        return [self._route_request(ip, index)]

    def _unplumb(self, ip: str, index: int) -> None:
        self._del_route(ip, index)

    def _configure_peer(
        self, netns: str, netns_fd: int, ifname: str, peer_index: int | None, ip: str, router_ip: str
    ) -> None:
        """The peer and loopback up, the /32, the connected route to the router IP and the default
        route, in one batch on a socket of the pod's namespace (in that order: a route needs its
        device up)."""
        try:
            with Rtnl.in_netns(netns_fd) as ns:
                index = peer_index if peer_index is not None else ns.link_index(ifname)
                if index is None:
                    raise DatapathError(f"{ifname} is not in {netns}")
                ns.run(
                    [
                        rtnl.set_link(index, ifname, flags=rtnl.IFF_UP, change=rtnl.IFF_UP),
                        rtnl.set_up("lo"),
                        rtnl.add_address(index, ifname, ip),
                        rtnl.route(router_ip, 32, oif=index, scope=RT_SCOPE_LINK),
                        rtnl.route("0.0.0.0", 0, oif=index, gateway=router_ip, what="adding the default route"),
                    ]
                )
        except OSError as err:
            raise _err(
                f"configuring {ifname} with {ip}/32 and a default route via {router_ip} in {netns}", err
            ) from err

    def _del_route(self, ip: str, index: int | None = None) -> None:
        self.rtnl.run([rtnl.del_route(ip, 32, index)])  # already gone (ESRCH, ENODEV) is fine

    def delete_endpoints(self, endpoints: list[tuple[str, str | None]]) -> None:
        """Remove several endpoints' veths (both sides) and routes, the veths in one kernel batch:
        each is put in REAP_GROUP, then the group is deleted, so 100 DELs at once wait for one RCU
        grace period, not 100 in turn (the reaper's way; `delete_endpoint` deletes one)."""
        doomed = []
        for endpoint_id, ip in endpoints:
            host = host_ifname(endpoint_id)
            try:
                index = self.index_of(host)
                if ip is not None and index is not None:
                    self._unplumb(ip, index)
                for name, found in ((host, index), (temp_ifname(endpoint_id), self.index_of(temp_ifname(endpoint_id)))):
                    if found is not None:
                        doomed.append(rtnl.set_group(found, name, REAP_GROUP))
            except OSError as err:
                raise _err(f"deleting endpoint {endpoint_id} ({host})", err) from err
        if doomed:
            try:
                self.rtnl.run([*doomed, rtnl.del_group(REAP_GROUP)])
            except OSError as err:
                raise _err(f"deleting {len(doomed)} endpoint veth(s)", err) from err

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
                self.rtnl.run([rtnl.del_link_index(index, host)])
            temp = self.index_of(temp_ifname(endpoint_id))
            if temp is not None:  # the runtime never took it
                self.rtnl.run([rtnl.del_link_index(temp, temp_ifname(endpoint_id))])
                existed = True
        except OSError as err:
            raise _err(f"deleting endpoint {endpoint_id} ({host})", err) from err
        return existed

    def apply_policy(
        self,
        endpoints: dict[str, tuple[int, bool]],
        entries: Iterable[tuple[int, int, int, int]] | None,
        ipcache: dict[str, int] | None,
    ) -> None:
        """Policy needs the eBPF datapath; with plain routes there is nothing to write."""

    def delete_link(self, ifname: str) -> None:
        self.rtnl.run([rtnl.del_link(ifname)])  # none there is fine
