"""After a restart, and periodically: make the kernel, the IPAM records and the endpoint records agree."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from podnet.agent.endpoints import EndpointStore, transition
from podnet.agent.ipam import ENDPOINT_OWNER
from podnet.api.models import EndpointState
from podnet.datapath.protocol import Datapath
from podnet.ipam import DurableNodeAllocator

log = logging.getLogger("podnet.agent")


@dataclass
class RestoreReport:
    endpoints: int = 0
    not_ready: list[str] = field(default_factory=list)
    leaked_veths_removed: list[str] = field(default_factory=list)
    leaked_ips_released: list[str] = field(default_factory=list)
    routes_restored: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"restored {self.endpoints} endpoint(s); {len(self.not_ready)} not ready; "
            f"removed {len(self.leaked_veths_removed)} leaked veth(s); released {len(self.leaked_ips_released)} leaked IP(s); "
            f"re-plumbed {len(self.routes_restored)} endpoint(s)"
        )


def restore(datapath: Datapath, allocator: DurableNodeAllocator, endpoints: EndpointStore) -> RestoreReport:
    """Re-read endpoints and allocations; repair what can be, remove leaks."""
    report = RestoreReport()
    allocator.refresh()
    records = endpoints.load()
    report.endpoints = len(records)
    owned = {e.networking.interface_name for e in records}
    for endpoint in records:
        ip = endpoint.networking.addressing[0].ipv4
        ifname = endpoint.networking.interface_name
        if datapath.index_of(ifname) is None:
            if endpoint.state != EndpointState.not_ready:
                endpoints.save(transition(endpoint, EndpointState.not_ready, f"host veth {ifname} is gone"))
            report.not_ready.append(endpoint.id)
            continue
        networking = endpoint.networking
        if ip and datapath.restore_endpoint(ip, ifname, networking.mac, networking.host_mac):
            report.routes_restored.append(ip)
        if ip:
            held = allocator.get(ip)
            if held is None or held.owner != ENDPOINT_OWNER + endpoint.id:
                allocator.claim(ip, ENDPOINT_OWNER + endpoint.id)
    for ifname in datapath.host_veths():
        if ifname not in owned:
            datapath.delete_link(ifname)
            report.leaked_veths_removed.append(ifname)
    live = {ENDPOINT_OWNER + e.id for e in records}
    for allocation in allocator.allocations():
        if allocation.owner.startswith(ENDPOINT_OWNER) and allocation.owner not in live:
            allocator.release(allocation.ip)
            report.leaked_ips_released.append(str(allocation.ip))
    return report


def remove_leaked_veths(datapath: Datapath, endpoints: EndpointStore) -> None:
    """Periodic: host veths no endpoint owns (unless deletions are still under way)."""
    owned = {e.networking.interface_name for e in endpoints.list()}
    for ifname in datapath.host_veths():
        if ifname not in owned and datapath.pending_deletions() == 0:
            log.warning("removing leaked veth %s (no endpoint owns it)", ifname)
            datapath.delete_link(ifname)
