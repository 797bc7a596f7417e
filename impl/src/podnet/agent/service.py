"""The agent's behaviour, independent of HTTP: IPAM, endpoints, restore, GC."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from podnet.agent.config import AgentConfig
from podnet.agent.endpoints import EndpointExistsError, EndpointNotFoundError, EndpointStore, transition
from podnet.agent.monitor import Monitor
from podnet.api.models import (
    AddressPair,
    BGPPeer,
    BGPStatus,
    BpfCounters,
    BpfEndpointEntry,
    BpfMaps,
    BpfPolicyEntry,
    ComponentHealth,
    DockerNetwork,
    Endpoint,
    EndpointChangeRequest,
    EndpointCounters,
    EndpointNetworking,
    EndpointState,
    Healthz,
    HostAddressingFamily,
    Identity,
    IPAMAddressResponse,
    IPAMAllocation,
    IPAMRelease,
    IPAMResponse,
    IPAMState,
    MonitorEvent,
    NodeAddressing,
    NodeInfo,
    PolicyDeleted,
    PolicyState,
)
from podnet.bgp.bird import BGPConfig, BGPError, BirdSpeaker
from podnet.datapath.bpf.maps import PROTOCOLS, Event
from podnet.datapath.bpf.maps import EndpointCounters as BpfEndpointCounters
from podnet.datapath.ebpf import BpfDatapath
from podnet.datapath.errors import DatapathError
from podnet.datapath.names import host_ifname
from podnet.datapath.veth import EndpointLink, LinkCounters
from podnet.errors import PodnetError
from podnet.identity import IDENTITY_HOST, IDENTITY_INIT, RESERVED_IDENTITIES, IdentityAllocator, security_labels
from podnet.ipam import ClusterPool, DurableClusterPool, DurableNodeAllocator, IPAMError, parse_address, parse_cidr
from podnet.ipam.allocator import ROUTER_OWNER, Allocation
from podnet.ipam.cidr import Network
from podnet.kvstore import KVStore, KVStoreError
from podnet.policy.compile import CompiledPolicy, compile_policy
from podnet.policy.model import PolicyRule
from podnet.policy.repository import PolicyRepository

log = logging.getLogger("podnet.agent")

ENDPOINT_OWNER = "endpoint:"
RELEASED_OWNER = "released-endpoint:"


class Datapath(Protocol):
    """What the agent needs from the kernel (VethDatapath; faked in unit tests)."""

    mode: str  # "bpf" or "routes"

    def describe(self) -> str: ...
    def ensure_host_device(self, router_ip: str, pod_cidr: str) -> int: ...
    def create_endpoint(
        self, endpoint_id: str, ip: str, router_ip: str, *, netns: str | None = None, ifname: str | None = None
    ) -> EndpointLink: ...
    def delete_endpoint(self, endpoint_id: str, ip: str | None) -> bool: ...
    def delete_endpoint_later(self, endpoint_id: str, ip: str | None) -> None: ...
    def counters(self, ifname: str) -> LinkCounters | None: ...
    def host_veths(self) -> list[str]: ...
    def restore_endpoint(self, ip: str, ifname: str, mac: str, host_mac: str) -> bool: ...
    def apply_policy(
        self,
        endpoints: dict[str, tuple[int, bool]],
        entries: Iterable[tuple[int, int, int, int]],
        ipcache: dict[str, int] | None,
    ) -> None: ...
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
            f"re-plumbed {len(self.routes_restored)} endpoint(s)"
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
        self.datapath_note: str | None = None  # why the eBPF datapath is not in use, when it is not
        self.identities = IdentityAllocator(store)
        self.policies = PolicyRepository(store)
        self.identity_labels: dict[int, list[str]] = dict(RESERVED_IDENTITIES)
        self.policy = CompiledPolicy()
        self._compiled_for: set[int] | None = None  # destinations the policy was compiled for; None: no rules
        bpf = self.bpf
        self.monitor = Monitor(self._describe_event, bpf.set_trace if bpf is not None else None)
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
            self.datapath.ensure_host_device(self.router_ip, self.pod_cidr)
        except DatapathError as err:
            self.datapath_error = str(err)
            raise
        self.last_restore = self.restore()
        self.regenerate(full=True)
        if self.bpf is not None:
            self.bpf.start_events(self.monitor.publish)
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
            networking = endpoint.networking
            if ip and self.datapath.restore_endpoint(ip, ifname, networking.mac, networking.host_mac):
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
        self.regenerate(full=True)
        return gone

    # -- identities and policy ---------------------------------------------------------
    @property
    def bpf(self) -> BpfDatapath | None:
        return self.datapath if isinstance(self.datapath, BpfDatapath) else None

    def require_bpf(self) -> BpfDatapath:
        if self.bpf is None:
            raise BadRequestError(
                f"this node runs the {self.datapath.mode} datapath, which has no BPF maps"
                + (f" ({self.datapath_note})" if self.datapath_note else "")
            )
        return self.bpf

    def _labels(self, identity: int) -> list[str]:
        return self.identity_labels.get(identity, [])

    def bpf_maps(self) -> BpfMaps:
        bpf = self.require_bpf()
        by_index = self.endpoints.by_interface_index
        self._refresh_identities()
        endpoints = []
        for ip, info in bpf.endpoint_entries():
            owner = by_index(info.ifindex)
            endpoints.append(
                BpfEndpointEntry(
                    ip=ip,
                    ifindex=info.ifindex,
                    interface_name=owner.networking.interface_name if owner else None,
                    endpoint_id=owner.id if owner else None,
                    identity=info.identity,
                    mac=info.mac,
                    node_mac=info.node_mac,
                    policy_enforced=info.policy_enforced,
                )
            )
        policy = [
            BpfPolicyEntry(
                src_identity=key.src_identity,
                src_labels=self._labels(key.src_identity) if key.src_identity else ["(any)"],
                dst_identity=key.dst_identity,
                dst_labels=self._labels(key.dst_identity),
                protocol=PROTOCOLS.get(key.proto, str(key.proto)),
                port=key.dport,
                packets=value.packets,
                bytes=value.nbytes,
            )
            for key, value in bpf.policy_entries()
        ]
        counted = bpf.counter_entries()
        for entry in endpoints:  # an endpoint that has not seen a packet yet has no entry
            counted.setdefault(entry.ifindex, BpfEndpointCounters())
        counters = []
        for ifindex, c in sorted(counted.items()):
            owner = by_index(ifindex)
            counters.append(
                BpfCounters(
                    ifindex=ifindex,
                    interface_name=owner.networking.interface_name if owner else None,
                    endpoint_id=owner.id if owner else None,
                    from_container_packets=c.from_packets,
                    from_container_bytes=c.from_bytes,
                    to_container_packets=c.to_packets,
                    to_container_bytes=c.to_bytes,
                    drops=c.drops,
                )
            )
        return BpfMaps(
            datapath="bpf",
            pin_dir=str(bpf.pin_dir),
            endpoints=endpoints,
            policy=policy,
            counters=counters,
            ipcache=bpf.ipcache_entries(),
        )

    def _describe_event(self, event: Event) -> MonitorEvent:
        owner = self.endpoints.by_interface_index(event.ifindex)
        return MonitorEvent(
            timestamp_ns=event.timestamp_ns,
            type=event.type,
            reason=event.reason,
            direction=event.direction,
            endpoint_id=owner.id if owner else None,
            endpoint_name=(owner.container_name or owner.pod_name) if owner else None,
            ifindex=event.ifindex,
            src_identity=event.src_identity,
            src_labels=self._labels(event.src_identity),
            dst_identity=event.dst_identity,
            dst_labels=self._labels(event.dst_identity),
            protocol=PROTOCOLS.get(event.proto, str(event.proto)),
            saddr=event.saddr,
            sport=event.sport,
            daddr=event.daddr,
            dport=event.dport,
            length=event.length,
        )

    def policy_state(self, message: str = "") -> PolicyState:
        enforced = self.datapath.mode == "bpf"
        if not enforced and not message:
            message = "not enforced on this node: the routes datapath has no policy" + (
                f" ({self.datapath_note})" if self.datapath_note else ""
            )
        rules = [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in self.policies.list()]
        return PolicyState(revision=self.store.revision(), rules=rules, enforced=enforced, message=message)

    def policy_put(self, rules: list[PolicyRule]) -> PolicyState:
        names = [r.name for r in rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise BadRequestError(f"policy rule names must be unique; repeated: {', '.join(duplicates)}")
        self.policies.put(rules)
        compiled = self.regenerate()
        selected = sorted(
            e.id for e in self.endpoints.list() if e.identity is not None and e.identity in compiled.enforced
        )
        return self.policy_state(
            f"imported {len(rules)} rule(s); {len(selected)} endpoint(s) of this node under policy"
            + (f": {', '.join(selected)}" if selected else "")
        )

    def policy_delete(self, name: str | None) -> PolicyDeleted:
        names = [name] if name is not None else [r.name for r in self.policies.list()]
        deleted = [n for n in names if self.policies.delete(n)]
        if name is not None and not deleted:
            raise EndpointNotFoundError(f"policy rule {name} not found")
        self.regenerate()
        return PolicyDeleted(deleted=deleted, revision=self.store.revision())

    def identity_list(self) -> list[Identity]:
        self._refresh_identities()
        return [
            Identity(id=n, labels=labels, reserved=n in RESERVED_IDENTITIES)
            for n, labels in sorted(self.identity_labels.items())
        ]

    def _identity_of(self, labels: list[str]) -> int:
        return self.identities.identity_for(labels)

    def _refresh_identities(self) -> dict[int, list[str]]:
        """Every allocated identity (from the store); also kept, with the reserved ones, to name them."""
        known = self.identities.all()
        self.identity_labels = {**RESERVED_IDENTITIES, **known}
        return known

    def regenerate(self, *, full: bool = False) -> CompiledPolicy:
        """Recompile policy for this node's endpoints and write it to the datapath.

        Runs after every endpoint or policy change, and periodically (gc, `full`:
        with the IP cache) to pick up identities, endpoints and rules other
        nodes added."""
        known = self._refresh_identities()
        local = self.endpoints.list()
        local_ids = {e.identity for e in local if e.identity is not None}
        rules = self.policies.list()
        compiled = compile_policy(rules, known, local_ids)
        states = {
            ip: (e.identity or IDENTITY_INIT, (e.identity or 0) in compiled.enforced)
            for e in local
            if (ip := e.networking.addressing[0].ipv4)
        }
        self.datapath.apply_policy(states, compiled.entries, self._ipcache(local) if full else None)
        self.policy = compiled
        self._compiled_for = local_ids if rules else None
        return compiled

    def _regenerate_for(self, endpoint: Endpoint) -> None:
        """After one endpoint was added or relabelled. Recompiling reads every rule and
        identity from the store; that is only needed when rules exist and this
        identity was not among the compiled destinations. Otherwise the
        endpoint's own map entry is all that changes."""
        identity = endpoint.identity or IDENTITY_INIT
        if self._compiled_for is not None and identity not in self._compiled_for:
            self.regenerate()
            return
        ip = endpoint.networking.addressing[0].ipv4
        if ip:
            self.datapath.apply_policy({ip: (identity, identity in self.policy.enforced)}, self.policy.entries, None)

    def _ipcache(self, local: list[Endpoint]) -> dict[str, int]:
        """IP -> identity for what is not a local endpoint: this node's own addresses, other nodes' pods."""
        cache = {self.router_ip: IDENTITY_HOST}
        if self.config.node_ip:
            cache[self.config.node_ip] = IDENTITY_HOST
        mine = {e.id for e in local}
        for entry in self.store.list_prefix("podnet/nodes/"):
            if "/endpoints/" not in entry.key or entry.key.startswith(self.endpoints.prefix):
                continue
            try:
                endpoint = Endpoint.model_validate_json(entry.value)
            except ValueError:
                continue
            ip = endpoint.networking.addressing[0].ipv4
            if ip and endpoint.identity is not None and endpoint.id not in mine:
                cache[ip] = endpoint.identity
        return cache

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
            note = f" ({self.datapath_note})" if self.datapath_note else ""
            datapath = ComponentHealth(
                state="degraded" if self.datapath_note else "ok",
                message=f"{self.datapath.describe()}; router IP {self.router_ip} on podnet_host{note}",
            )
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
            identity = self._identity_of(labels) if labels else None
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
                identity=identity,
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
                endpoint = transition(endpoint, EndpointState.ready, f"identity {identity}: {', '.join(labels)}")
            self.endpoints.save(endpoint)
            self._regenerate_for(endpoint)
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
        if "labels" in changes:
            changes["identity"] = self._identity_of(changes["labels"])
        updated = endpoint.model_copy(update=changes)
        if "labels" in changes and (
            updated.state == EndpointState.waiting_for_identity or updated.identity != endpoint.identity
        ):
            shown = ", ".join(security_labels(updated.labels)) or "(no labels)"
            updated = transition(updated, EndpointState.ready, f"identity {updated.identity}: {shown}")
        self.endpoints.save(updated)
        if updated.identity != endpoint.identity:
            self._regenerate_for(updated)
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
