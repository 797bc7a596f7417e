"""The agent's behaviour, independent of HTTP: IPAM, endpoints, restore, GC."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from podnet.agent.config import AgentConfig
from podnet.agent.endpoints import EndpointExistsError, EndpointNotFoundError, EndpointStore, transition
from podnet.api.models import (
    AddressPair,
    BGPPeer,
    BGPStatus,
    ComponentHealth,
    DockerNetwork,
    Endpoint,
    EndpointChangeRequest,
    EndpointCounters,
    EndpointNetworking,
    EndpointState,
    Healthz,
    HostAddressingFamily,
    IPAMAddressResponse,
    IPAMAllocation,
    IPAMRelease,
    IPAMResponse,
    IPAMState,
    NodeAddressing,
    NodeInfo,
)
from podnet.bgp.bird import BGPConfig, BGPError, BirdSpeaker
from podnet.datapath.errors import DatapathError
from podnet.datapath.names import host_ifname
from podnet.datapath.veth import EndpointLink, LinkCounters
from podnet.errors import PodnetError
from podnet.ipam import ClusterPool, DurableClusterPool, DurableNodeAllocator, IPAMError, parse_address, parse_cidr
from podnet.ipam.allocator import ROUTER_OWNER, Allocation
from podnet.ipam.cidr import Network
from podnet.kvstore import KVStore, KVStoreError

log = logging.getLogger("podnet.agent")

ENDPOINT_OWNER = "endpoint:"
RELEASED_OWNER = "released-endpoint:"


class Datapath(Protocol):
    """What the agent needs from the kernel (VethDatapath; faked in unit tests)."""

    def ensure_host_device(self, router_ip: str) -> int: ...
    def create_endpoint(
        self, endpoint_id: str, ip: str, router_ip: str, *, netns: str | None = None, ifname: str | None = None
    ) -> EndpointLink: ...
    def delete_endpoint(self, endpoint_id: str, ip: str | None) -> bool: ...
    def delete_endpoint_later(self, endpoint_id: str, ip: str | None) -> None: ...
    def counters(self, ifname: str) -> LinkCounters | None: ...
    def host_veths(self) -> list[str]: ...
    def has_route(self, ip: str, ifname: str) -> bool: ...
    def ensure_route(self, ip: str, ifname: str) -> None: ...
    def index_of(self, ifname: str) -> int | None: ...
    def delete_link(self, ifname: str) -> None: ...
    def pending_deletions(self) -> int: ...


class BadRequestError(PodnetError):
    pass


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
            f"re-added {len(self.routes_restored)} route(s)"
        )


class Agent:
    def __init__(self, config: AgentConfig, store: KVStore, datapath: Datapath):
        self.config = config
        self.store = store
        self.datapath = datapath
        self.started = time.time()
        self.pool = ClusterPool(config.cluster_cidrs, config.mask_size)
        self.node_pool = DurableClusterPool(store, self.pool)
        pod_cidr: Network = (
            parse_cidr(config.pod_cidr, what="pod CIDR").network
            if config.pod_cidr
            else self.node_pool.allocate(config.node_name)
        )
        self.ipam = DurableNodeAllocator(store, pod_cidr, router_ip=config.router_ip)
        self.endpoints = EndpointStore(store, config.node_name)
        self.datapath_error: str | None = None
        self.last_restore = RestoreReport()
        self.speaker: BirdSpeaker | None = None
        if config.bgp_peer and config.node_ip:
            bgp = BGPConfig(config.node_ip, config.bgp_asn, config.bgp_peer, config.bgp_peer_asn)
            self.speaker = BirdSpeaker(bgp, str(self.ipam.pod_cidr), Path(config.socket).parent / "bgp")

    @property
    def router_ip(self) -> str:
        return str(self.ipam.router_ip)

    @property
    def pod_cidr(self) -> str:
        return str(self.ipam.pod_cidr)

    # -- start-up ---------------------------------------------------------------
    def start(self) -> RestoreReport:
        for note in self.pool.notes:
            log.warning("cluster pool: %s", note)
        try:
            self.datapath.ensure_host_device(self.router_ip)
        except DatapathError as err:
            self.datapath_error = str(err)
            raise
        self.last_restore = self.restore()
        if self.speaker is not None:
            self.speaker.start()
            log.info(
                "announcing %s to %s (AS %d) over BGP", self.pod_cidr, self.config.bgp_peer, self.config.bgp_peer_asn
            )
        log.info(
            "node %s: pod CIDR %s, router IP %s; %s",
            self.config.node_name,
            self.pod_cidr,
            self.router_ip,
            self.last_restore.summary(),
        )
        return self.last_restore

    def restore(self) -> RestoreReport:
        """Re-read endpoints and allocations; repair what can be, remove leaks."""
        report = RestoreReport()
        self.ipam.refresh()
        endpoints = self.endpoints.load()
        report.endpoints = len(endpoints)
        owned = {e.networking.interface_name for e in endpoints}
        for endpoint in endpoints:
            ip = endpoint.networking.addressing[0].ipv4
            ifname = endpoint.networking.interface_name
            if self.datapath.index_of(ifname) is None:
                if endpoint.state != EndpointState.not_ready:
                    self.endpoints.save(transition(endpoint, EndpointState.not_ready, f"host veth {ifname} is gone"))
                report.not_ready.append(endpoint.id)
                continue
            if ip and not self.datapath.has_route(ip, ifname):
                self.datapath.ensure_route(ip, ifname)
                report.routes_restored.append(ip)
            if ip:
                held = self.ipam.get(ip)
                if held is None or held.owner != ENDPOINT_OWNER + endpoint.id:
                    self.ipam.claim(ip, ENDPOINT_OWNER + endpoint.id)
        for ifname in self.datapath.host_veths():
            if ifname not in owned:
                self.datapath.delete_link(ifname)
                report.leaked_veths_removed.append(ifname)
        live = {ENDPOINT_OWNER + e.id for e in endpoints}
        for allocation in self.ipam.allocations():
            if allocation.owner.startswith(ENDPOINT_OWNER) and allocation.owner not in live:
                self.ipam.release(allocation.ip)
                report.leaked_ips_released.append(str(allocation.ip))
        return report

    def gc(self) -> list[Allocation]:
        """Periodic: release expired allocations (IPs nobody claimed), remove leaked veths."""
        gone = self.ipam.expire()
        for allocation in gone:
            log.info("released expired IP %s (owner %s)", allocation.ip, allocation.owner)
        owned = {e.networking.interface_name for e in self.endpoints.list()}
        for ifname in self.datapath.host_veths():
            if ifname not in owned and self.datapath.pending_deletions() == 0:
                log.warning("removing leaked veth %s (no endpoint owns it)", ifname)
                self.datapath.delete_link(ifname)
        return gone

    # -- node & health ------------------------------------------------------------
    def node_info(self) -> NodeInfo:
        return NodeInfo(
            name=self.config.node_name,
            node_ip=self.config.node_ip,
            pod_cidrs=[self.pod_cidr],
            router_ip=self.router_ip,
            cluster_pool=self.pool.describe(),
        )

    def healthz(self) -> Healthz:
        try:
            revision = self.store.revision()
            store = ComponentHealth(state="ok", message=f"{self.store.url} at revision {revision}")
        except KVStoreError as err:
            store = ComponentHealth(state="failure", message=str(err))
        if self.datapath_error:
            datapath = ComponentHealth(state="failure", message=self.datapath_error)
        elif self.datapath.index_of("podnet_host") is None:
            datapath = ComponentHealth(state="failure", message="host device podnet_host is missing")
        else:
            datapath = ComponentHealth(state="ok", message=f"veth + routes; router IP {self.router_ip} on podnet_host")
        used, capacity = self.ipam.mem.used, self.ipam.mem.capacity
        ipam = ComponentHealth(
            state="ok" if used < capacity else "degraded",
            message=f"pod CIDR {self.pod_cidr}: {used}/{capacity} in use"
            + (" (exhausted)" if used >= capacity else ""),
        )
        bgp = None
        if self.speaker is not None:
            status = self.bgp_status()
            established = [p for p in status.peers if p.session == "Established"]
            bgp = ComponentHealth(
                state="ok" if established else "degraded",
                message=(
                    f"session to {self.config.bgp_peer} established, announcing {', '.join(status.routes)}"
                    if established
                    else status.message
                    or f"session to {self.config.bgp_peer}: " + ", ".join(p.session for p in status.peers)
                ),
            )
        worst = "ok"
        for component in (store, datapath, ipam, *([bgp] if bgp else [])):
            if component.state == "failure":
                worst = "failure"
            elif component.state == "degraded" and worst == "ok":
                worst = "degraded"
        return Healthz(
            state=worst,
            node=self.config.node_name,
            pod_cidr=self.pod_cidr,
            store=store,
            datapath=datapath,
            ipam=ipam,
            bgp=bgp,
            endpoints=len(self.endpoints.list()),
            uptime_s=round(time.time() - self.started, 3),
        )

    # -- IPAM ---------------------------------------------------------------------
    def _ipam_response(self, allocation: Allocation) -> IPAMResponse:
        return IPAMResponse(
            address=AddressPair(ipv4=str(allocation.ip)),
            host_addressing=NodeAddressing(
                ipv4=HostAddressingFamily(ip=self.router_ip, alloc_range=self.pod_cidr, enabled=True)
            ),
            ipv4=IPAMAddressResponse(
                ip=str(allocation.ip),
                gateway=self.router_ip,
                cidrs=[self.pod_cidr],
                owner=allocation.owner,
                expires_at=allocation.expires_at,
            ),
        )

    def _expiry(self, expiration: bool) -> float | None:
        return self.config.ip_expiration_s if expiration else None

    def ipam_allocate(
        self, owner: str, *, family: str = "ipv4", expiration: bool = False, pool: str | None = None
    ) -> IPAMResponse:
        if family != "ipv4":
            raise BadRequestError(f"unsupported address family {family!r}: this node allocates ipv4 only")
        if pool is None:
            allocation = self.ipam.allocate(owner, expires_in=self._expiry(expiration))
        else:
            subnet = parse_cidr(pool, what="pool").network
            allocation = self.ipam.allocate(owner, expires_in=self._expiry(expiration), within=subnet)
        return self._ipam_response(allocation)

    def ipam_allocate_ip(self, ip: str, owner: str, *, expiration: bool = False) -> IPAMResponse:
        allocation = self.ipam.allocate_ip(parse_address(ip), owner, expires_in=self._expiry(expiration))
        return self._ipam_response(allocation)

    def ipam_release(self, ip: str) -> IPAMRelease:
        address = parse_address(ip)
        if address == self.ipam.router_ip:
            return IPAMRelease(ip=str(address), released=False, owner=ROUTER_OWNER)
        held = self.ipam.get(address)
        if held is not None and held.owner.startswith(ENDPOINT_OWNER):
            endpoint_id = held.owner.removeprefix(ENDPOINT_OWNER)
            raise EndpointExistsError(f"{address} is in use by endpoint {endpoint_id}; delete the endpoint first")
        released = self.ipam.release(address)
        return IPAMRelease(ip=str(address), released=released is not None, owner=released.owner if released else None)

    def ipam_state(self) -> IPAMState:
        return IPAMState(
            pod_cidr=self.pod_cidr,
            router_ip=self.router_ip,
            capacity=self.ipam.mem.capacity,
            used=self.ipam.mem.used,
            allocations=[
                IPAMAllocation(ip=str(a.ip), owner=a.owner, expires_at=a.expires_at) for a in self.ipam.allocations()
            ],
        )

    # -- endpoints ------------------------------------------------------------------
    def stop(self) -> None:
        """Withdraw the pod CIDR (stop the speaker); endpoints and state stay."""
        if self.speaker is not None:
            self.speaker.stop()

    def bgp_status(self) -> BGPStatus:
        if self.speaker is None:
            return BGPStatus(enabled=False, message="BGP is off (start the agent with --node-ip and --bgp-peer)")
        try:
            peers = [BGPPeer(**p.__dict__) for p in self.speaker.peers()]
            routes = self.speaker.routes()
        except BGPError as err:
            return BGPStatus(enabled=True, local_asn=self.config.bgp_asn, node_ip=self.config.node_ip, message=str(err))
        return BGPStatus(
            enabled=True, local_asn=self.config.bgp_asn, node_ip=self.config.node_ip, peers=peers, routes=routes
        )

    def _with_counters(self, endpoint: Endpoint) -> Endpoint:
        counters = self.datapath.counters(endpoint.networking.interface_name)
        if counters is None:
            return endpoint
        return endpoint.model_copy(update={"counters": EndpointCounters(**counters.__dict__)})

    def endpoint_list(self) -> list[Endpoint]:
        return [self._with_counters(e) for e in self.endpoints.list()]

    def endpoint_get(self, endpoint_id: str) -> Endpoint:
        return self._with_counters(self.endpoints.get(endpoint_id))

    def endpoint_create(self, endpoint_id: str, request: EndpointChangeRequest) -> Endpoint:
        if self.endpoints.find(endpoint_id) is not None:
            raise EndpointExistsError(f"endpoint {endpoint_id} already exists")
        if request.addressing is None:
            raise BadRequestError("creating an endpoint needs addressing.ipv4 (allocate it with POST /v1/ipam first)")
        if request.netns and not request.interface_name:
            raise BadRequestError("netns given without interface-name: name the container-side interface (eth0)")
        ip = request.addressing.ipv4
        address = parse_address(ip)
        if address not in self.ipam.pod_cidr:
            raise IPAMError(f"{ip} is not in this node's pod CIDR {self.pod_cidr}")
        held = self.ipam.get(address)
        if held is not None and held.owner.startswith(ENDPOINT_OWNER):
            other = held.owner.removeprefix(ENDPOINT_OWNER)
            raise EndpointExistsError(f"{ip} is already used by endpoint {other}")
        previous = held
        link = self.datapath.create_endpoint(
            endpoint_id, ip, self.router_ip, netns=request.netns, ifname=request.interface_name
        )
        try:
            self.ipam.claim(address, ENDPOINT_OWNER + endpoint_id)
            now = time.time()
            labels = request.labels or []
            endpoint = Endpoint(
                id=endpoint_id,
                state=EndpointState.waiting_for_identity,
                container_id=request.container_id,
                container_name=request.container_name,
                docker_endpoint_id=request.docker_endpoint_id,
                docker_network_id=request.docker_network_id,
                pod_name=request.pod_name,
                sandbox_key=request.sandbox_key or request.netns,
                labels=labels,
                networking=EndpointNetworking(
                    addressing=[AddressPair(ipv4=ip)],
                    interface_name=link.host_ifname,
                    interface_index=link.host_ifindex,
                    host_mac=link.host_mac,
                    mac=link.peer_mac,
                    container_interface_name=link.peer_ifname,
                    router_ip=self.router_ip,
                ),
                created_at=now,
            )
            endpoint = transition(endpoint, EndpointState.waiting_for_identity, "endpoint created, datapath ready")
            if labels:
                endpoint = transition(endpoint, EndpointState.ready, f"labels {', '.join(labels)}")
            self.endpoints.save(endpoint)
        except BaseException:
            self.datapath.delete_endpoint(endpoint_id, ip)
            if previous is not None:
                self.ipam.claim(address, previous.owner, expires_in=self.config.endpoint_release_grace_s)
            else:
                self.ipam.release(address)
            raise
        log.info("endpoint %s created: %s on %s", endpoint_id, ip, link.host_ifname)
        return endpoint

    def endpoint_patch(self, endpoint_id: str, request: EndpointChangeRequest) -> Endpoint:
        endpoint = self.endpoints.get(endpoint_id)
        changes = request.model_dump(exclude_unset=True, exclude_none=True)
        for fixed in ("addressing", "netns", "interface_name"):
            if fixed in changes:
                raise BadRequestError(f"{fixed.replace('_', '-')} of an existing endpoint cannot change")
        updated = endpoint.model_copy(update=changes)
        if "labels" in changes and updated.state == EndpointState.waiting_for_identity:
            updated = transition(updated, EndpointState.ready, f"labels {', '.join(updated.labels) or '(none)'}")
        self.endpoints.save(updated)
        return self._with_counters(updated)

    def endpoint_delete(self, endpoint_id: str, *, release_ip: bool = False) -> Endpoint:
        endpoint = transition(self.endpoints.get(endpoint_id), EndpointState.disconnecting, "deleting")
        ip = endpoint.networking.addressing[0].ipv4
        self.endpoints.remove(endpoint_id)
        # The veth (and its route) go on the datapath's own time; the record is
        # already gone, so a crash now leaves a veth that leak collection removes.
        self.datapath.delete_endpoint_later(endpoint_id, ip)
        if ip:
            held = self.ipam.get(ip)
            if held is not None and held.owner == ENDPOINT_OWNER + endpoint_id:
                if release_ip:
                    self.ipam.release(ip)
                else:
                    # The runtime releases the IP next (docker: ReleaseAddress); if it
                    # never does, expiry gives it back.
                    self.ipam.claim(ip, RELEASED_OWNER + endpoint_id, expires_in=self.config.endpoint_release_grace_s)
        log.info("endpoint %s deleted (%s on %s)", endpoint_id, ip, host_ifname(endpoint_id))
        return endpoint

    # -- docker networks (recorded for the docker plugin, which keeps no state) -----
    def _network_key(self, network_id: str) -> str:
        return f"podnet/nodes/{self.config.node_name}/docker-networks/{network_id}"

    def network_put(self, network: DockerNetwork) -> DockerNetwork:
        self.store.put(self._network_key(network.id), network.model_dump_json(by_alias=True))
        return network

    def network_list(self) -> list[DockerNetwork]:
        prefix = self._network_key("")
        return [DockerNetwork.model_validate_json(e.value) for e in self.store.list_prefix(prefix)]

    def network_delete(self, network_id: str) -> None:
        if not self.store.delete(self._network_key(network_id)):
            raise EndpointNotFoundError(f"docker network {network_id} not found")
