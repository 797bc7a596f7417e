"""After a restart, and periodically: make the kernel, the IPAM records and the endpoint records agree.

Never destroys what it cannot read: a quarantined endpoint record keeps its
veth and its IP, a quarantined allocation its IP (see podnet.kvstore.quarantine).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from podnet.agent.endpoints import EndpointStore, transition
from podnet.agent.ipam import ENDPOINT_OWNER
from podnet.api.models import EndpointState
from podnet.datapath.protocol import Datapath
from podnet.ipam import DurableNodeAllocator, IPAMError

log = logging.getLogger("podnet.agent")


@dataclass
class RestoreReport:
    endpoints: int = 0
    not_ready: list[str] = field(default_factory=list)
    leaked_veths_removed: list[str] = field(default_factory=list)
    leaked_ips_released: list[str] = field(default_factory=list)
    routes_restored: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # keys of stored records that cannot be read

    def summary(self) -> str:
        return (
            f"restored {self.endpoints} endpoint(s); {len(self.not_ready)} not ready; "
            f"removed {len(self.leaked_veths_removed)} leaked veth(s); released {len(self.leaked_ips_released)} leaked IP(s); "
            f"re-plumbed {len(self.routes_restored)} endpoint(s)"
            + (f"; {len(self.quarantined)} unreadable record(s) quarantined (see healthz)" if self.quarantined else "")
        )


def restore(datapath: Datapath, allocator: DurableNodeAllocator, endpoints: EndpointStore) -> RestoreReport:
    """Re-read endpoints and allocations; repair what can be, remove leaks."""
    report = RestoreReport()
    allocator.refresh()
    records = endpoints.load()
    report.endpoints = len(records)
    owned = endpoints.interface_names()
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
                try:
                    allocator.claim(ip, ENDPOINT_OWNER + endpoint.id)
                except IPAMError as err:  # e.g. its allocation record is quarantined: the IP stays reserved
                    log.warning("endpoint %s keeps %s without owning its allocation: %s", endpoint.id, ip, err)
    for ifname in datapath.host_veths():
        if ifname not in owned:
            datapath.delete_link(ifname)
            report.leaked_veths_removed.append(ifname)
    live = {ENDPOINT_OWNER + e.id for e in records} | {ENDPOINT_OWNER + i for i in endpoints.quarantined_ids()}
    for allocation in allocator.allocations():
        if allocation.owner.startswith(ENDPOINT_OWNER) and allocation.owner not in live:
            allocator.release(allocation.ip)
            report.leaked_ips_released.append(str(allocation.ip))
    report.quarantined = endpoints.quarantine.keys()
    return report


def remove_leaked_veths(datapath: Datapath, endpoints: EndpointStore) -> None:
    """Periodic: host veths no endpoint owns (unless deletions are still under way)."""
    owned = endpoints.interface_names()
    for ifname in datapath.host_veths():
        if ifname not in owned and datapath.pending_deletions() == 0:
            log.warning("removing leaked veth %s (no endpoint owns it)", ifname)
            datapath.delete_link(ifname)
