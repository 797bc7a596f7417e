"""A fake kernel for unit tests: the Datapath protocol over plain dicts."""

from __future__ import annotations

from collections.abc import Iterable

from podnet.datapath.errors import DatapathError, InterfaceExistsError
from podnet.datapath.names import host_ifname, mac_for, temp_ifname
from podnet.datapath.protocol import BpfAccess, EndpointLink, LinkCounters, PodLink


class FakeDatapath:
    def __init__(self) -> None:
        self.links: dict[str, int] = {}
        self.waited: list[str] = []  # endpoints whose deletion a caller waited for
        self.routes: dict[str, str] = {}
        self.router_ip: str | None = None
        self.fail_next: str | None = None
        self._next_index = 10
        self.policy_endpoints: dict[str, tuple[int, bool]] = {}
        self.policy_entries: set[tuple[int, int, int, int]] = set()
        self.ipcache: dict[str, int] = {}
        self.pods: dict[tuple[str, str], PodLink] = {}  # (netns, ifname) -> the pod side, as CNI made it
        self._pod_of: dict[str, tuple[str, str]] = {}  # endpoint id -> its (netns, ifname)

    def _add(self, name: str) -> int:
        self._next_index += 1
        self.links[name] = self._next_index
        return self._next_index

    mode = "routes"

    def describe(self) -> str:
        return "fake datapath"

    def bpf(self) -> BpfAccess | None:
        return None  # like the routes datapath: no maps

    def ensure_host_device(self, router_ip: str, pod_cidr: str) -> int:
        self.router_ip = router_ip
        return self.links.get("podnet_host") or self._add("podnet_host")

    def create_endpoint(
        self, endpoint_id: str, ip: str, router_ip: str, *, netns: str | None = None, ifname: str | None = None
    ) -> EndpointLink:
        if self.fail_next:
            message, self.fail_next = self.fail_next, None
            raise DatapathError(message)
        host = host_ifname(endpoint_id)
        if host in self.links:
            raise InterfaceExistsError(f"host veth {host} for endpoint {endpoint_id} already exists")
        index = self._add(host)
        peer = ifname if netns else temp_ifname(endpoint_id)
        assert peer is not None
        if not netns:
            self._add(peer)
        else:
            mac = mac_for(endpoint_id, "container")
            routes = (("0.0.0.0/0", router_ip), (f"{router_ip}/32", ""))
            self.pods[(netns, peer)] = PodLink(mac, (f"{ip}/32",), routes)
            self._pod_of[endpoint_id] = (netns, peer)
        self.routes[ip] = host
        return EndpointLink(
            host, index, mac_for(endpoint_id, "host"), peer, mac_for(endpoint_id, "container"), bool(netns)
        )

    def delete_endpoint(self, endpoint_id: str, ip: str | None) -> bool:
        existed = self.links.pop(host_ifname(endpoint_id), None) is not None
        self.links.pop(temp_ifname(endpoint_id), None)
        self.pods.pop(self._pod_of.pop(endpoint_id, ("", "")), None)
        if ip:
            self.routes.pop(ip, None)
        return existed

    def delete_endpoint_later(self, endpoint_id: str, ip: str | None) -> None:
        self.delete_endpoint(endpoint_id, ip)

    def pending_deletions(self) -> int:
        return 0

    def wait_deleted(self, endpoint_id: str, timeout_s: float = 5.0) -> bool:
        self.waited.append(endpoint_id)
        return True

    def counters(self, ifname: str) -> LinkCounters | None:
        return LinkCounters(0, 0, 0, 0, 0, 0) if ifname in self.links else None

    def host_veths(self) -> list[str]:
        return sorted(n for n in self.links if n.startswith("lxc"))

    def restore_endpoint(self, ip: str, ifname: str, mac: str, host_mac: str) -> bool:
        if ifname not in self.links:
            raise DatapathError(f"cannot restore {ip}: {ifname} does not exist")
        if self.routes.get(ip) == ifname:
            return False
        self.routes[ip] = ifname
        return True

    def apply_policy(
        self,
        endpoints: dict[str, tuple[int, bool]],
        entries: Iterable[tuple[int, int, int, int]] | None,
        ipcache: dict[str, int] | None,
    ) -> None:
        self.policy_endpoints.update(endpoints)  # like the maps: only the endpoints named change
        if entries is not None:
            self.policy_entries = set(entries)
        if ipcache is not None:
            self.ipcache = dict(ipcache)

    def index_of(self, ifname: str) -> int | None:
        return self.links.get(ifname)

    def pod_interface(self, netns: str, ifname: str) -> PodLink | None:
        return self.pods.get((netns, ifname))

    def delete_link(self, ifname: str) -> None:
        self.links.pop(ifname, None)
