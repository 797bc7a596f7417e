"""The agent, independent of HTTP: a composition of the parts below, one per concern.

    agent/ipam.py              NodeIPAM: /v1/ipam on this node's pod CIDR
    agent/endpoint_manager.py  EndpointManager: create, relabel, delete endpoints
    agent/endpoints.py         EndpointStore: the endpoint records in the kvstore
    agent/identities.py        IdentityNames: identities named, held for this node's endpoints, collected
    agent/policy.py            PolicyEngine: rules -> datapath
    agent/bpfview.py           BpfViews: the BPF maps and monitor events, named
    agent/health.py            Health: healthz, node info, BGP status
    agent/networks.py          DockerNetworks: records for the docker plugin
    agent/restore.py           restore after a restart; leak collection
    agent/datapath.py          DatapathStatus: why the datapath failed or fell back

The HTTP server (agent/server.py) calls the methods of `Agent`, which hand
each call to its part; start-up, GC and shutdown are the only logic here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from podnet.agent.bpfview import BpfViews
from podnet.agent.config import AgentConfig
from podnet.agent.datapath import DatapathStatus, require_bpf
from podnet.agent.endpoint_manager import EndpointManager
from podnet.agent.endpoints import EndpointStore
from podnet.agent.health import Health
from podnet.agent.identities import IdentityNames
from podnet.agent.ipam import NodeIPAM
from podnet.agent.monitor import Monitor
from podnet.agent.networks import DockerNetworks
from podnet.agent.policy import PolicyEngine
from podnet.agent.restore import RestoreReport, remove_leaked_veths, restore
from podnet.agent.speaker import speaker_for
from podnet.agent.storesource import follow_store_source
from podnet.api.models import (
    BGPStatus,
    BpfMaps,
    DockerNetwork,
    Endpoint,
    EndpointChangeRequest,
    Healthz,
    Identity,
    IPAMRelease,
    IPAMResponse,
    IPAMState,
    NodeInfo,
    PodInterface,
    PolicyDeleted,
    PolicyState,
)
from podnet.datapath.errors import DatapathError
from podnet.datapath.protocol import BpfAccess, Datapath
from podnet.ipam import ClusterPool, DurableClusterPool, DurableNodeAllocator, parse_cidr
from podnet.ipam.allocator import Allocation
from podnet.ipam.cidr import Network
from podnet.kvstore import KVStore
from podnet.kvstore.quarantine import Quarantine
from podnet.policy.compile import CompiledPolicy
from podnet.policy.model import PolicyRule

if TYPE_CHECKING:
    from podnet.bgp.bird import BirdSpeaker

log = logging.getLogger("podnet.agent")


class Agent:
    def __init__(self, config: AgentConfig, store: KVStore, datapath: Datapath, speaker: BirdSpeaker | None = None):
        self.config = config
        self.store = store
        self.datapath = datapath
        self.status = DatapathStatus()
        # Stored records nothing can read: kept, listed in healthz, never acted on.
        self.quarantine = Quarantine()
        self.pool = ClusterPool(config.cluster_cidrs, config.mask_size)
        self.node_pool = DurableClusterPool(store, self.pool, quarantine=self.quarantine)
        pod_cidr: Network = (
            parse_cidr(config.pod_cidr, what="pod CIDR").network
            if config.pod_cidr
            else self.node_pool.allocate(config.node_name)
        )
        self.ipam = DurableNodeAllocator(store, pod_cidr, router_ip=config.router_ip, quarantine=self.quarantine)
        self.endpoints = EndpointStore(store, config.node_name, self.quarantine, self.ipam.mem.check_pod_ip)
        self.identities = IdentityNames(config, store, self.quarantine)
        host_ips = [self.router_ip, *([config.node_ip] if config.node_ip else [])]
        self.policy = PolicyEngine(store, datapath, self.status, self.endpoints, self.identities, host_ips)
        self.addresses = NodeIPAM(config, self.ipam)
        self.endpoint_manager = EndpointManager(
            config, datapath, self.ipam, self.endpoints, self.identities, self.policy
        )
        self.networks = DockerNetworks(store, config.node_name)
        self.bpf_views = BpfViews(datapath, self.status, self.endpoints, self.identities)
        bpf = datapath.bpf()
        self.monitor = Monitor(self.bpf_views.describe_event, bpf.set_trace if bpf is not None else None)
        self.last_restore = RestoreReport()
        # Given when podnet-agent started it early (announcing nothing until start()); else made here.
        self.speaker = speaker if speaker is not None else speaker_for(config, self.pod_cidr)
        self.health = Health(
            config, store, datapath, self.status, self.pool, self.ipam, self.endpoints, self.speaker, self.quarantine
        )
        # A node whose node IP is its own (announced over BGP): its store connections follow the routes' source.
        self.store_source = follow_store_source(store) if self.speaker and config.bgp_announce_node_ip else None

    @property
    def router_ip(self) -> str:
        return str(self.ipam.router_ip)

    @property
    def pod_cidr(self) -> str:
        return str(self.ipam.pod_cidr)

    @property
    def datapath_note(self) -> str | None:
        """Why the eBPF datapath is not in use, when it is not (set by whoever chose the datapath)."""
        return self.status.note

    @datapath_note.setter
    def datapath_note(self, note: str | None) -> None:
        self.status.note = note

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> RestoreReport:
        for note in self.pool.notes:
            log.warning("cluster pool: %s", note)
        try:
            self.datapath.ensure_host_device(self.router_ip, self.pod_cidr)
        except DatapathError as err:
            self.status.error = str(err)
            raise
        self.last_restore = self.restore()
        self.regenerate(full=True)
        bpf = self.datapath.bpf()
        if bpf is not None:
            bpf.start_events(self.monitor.publish)
        if self.speaker is not None:
            self.speaker.announce(self.pod_cidr)  # a speaker started early: bird reconfigured, sessions kept
            self.speaker.start()  # a no-op when it was
            if self.store_source is not None:
                self.store_source.start()
            peers = ", ".join(f"{address} (AS {asn})" for address, asn in self.config.bgp_peers())
            log.info("announcing %s to %s over BGP", self.pod_cidr, peers)
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
        report = restore(self.datapath, self.ipam, self.endpoints)
        self.identities.restore(self.endpoints)
        return report

    def gc(self) -> list[Allocation]:
        """Periodic: release expired allocations (IPs nobody claimed), remove leaked veths."""
        gone = self.ipam.expire()
        for allocation in gone:
            log.info("released expired IP %s (owner %s)", allocation.ip, allocation.owner)
        self.ipam.recheck_quarantined()
        for endpoint in self.endpoints.recheck():
            log.info("endpoint %s: its stored record reads well again", endpoint.id)
        remove_leaked_veths(self.datapath, self.endpoints)
        self.identities.gc(self.endpoints.list())
        self.regenerate(full=True)
        return gone

    def stop(self) -> None:
        """Withdraw the pod CIDR (stop the speaker); endpoints and state stay."""
        if self.store_source is not None:
            self.store_source.stop()
        if self.speaker is not None:
            self.speaker.stop()

    # -- the API, each call handed to its part -----------------------------------------
    def node_info(self) -> NodeInfo:
        return self.health.node_info()

    def healthz(self) -> Healthz:
        return self.health.healthz()

    def bgp_status(self) -> BGPStatus:
        return self.health.bgp_status()

    def ipam_allocate(
        self, owner: str, *, family: str = "ipv4", expiration: bool = False, pool: str | None = None
    ) -> IPAMResponse:
        return self.addresses.allocate(owner, family=family, expiration=expiration, pool=pool)

    def ipam_allocate_ip(self, ip: str, owner: str, *, expiration: bool = False) -> IPAMResponse:
        return self.addresses.allocate_ip(ip, owner, expiration=expiration)

    def ipam_release(self, ip: str) -> IPAMRelease:
        return self.addresses.release(ip)

    def ipam_state(self) -> IPAMState:
        return self.addresses.state()

    def endpoint_list(self) -> list[Endpoint]:
        return self.endpoint_manager.list()

    def endpoint_get(self, endpoint_id: str) -> Endpoint:
        return self.endpoint_manager.get(endpoint_id)

    def endpoint_interface(self, endpoint_id: str) -> PodInterface:
        return self.endpoint_manager.pod_interface(endpoint_id)

    def endpoint_create(self, endpoint_id: str, request: EndpointChangeRequest) -> Endpoint:
        return self.endpoint_manager.create(endpoint_id, request)

    def endpoint_patch(self, endpoint_id: str, request: EndpointChangeRequest) -> Endpoint:
        return self.endpoint_manager.patch(endpoint_id, request)

    def endpoint_delete(self, endpoint_id: str, *, release_ip: bool = False, wait: bool = True) -> Endpoint:
        return self.endpoint_manager.delete(endpoint_id, release_ip=release_ip, wait=wait)

    def wait_endpoints_deleted(self, endpoint_ids: list[str]) -> None:
        """Until these endpoints' veths, deleted with `wait=False`, are gone; any thread."""
        self.endpoint_manager.wait_deleted(endpoint_ids)

    def regenerate(self, *, full: bool = False) -> CompiledPolicy:
        return self.policy.regenerate(full=full)

    def policy_state(self) -> PolicyState:
        return self.policy.state()

    def policy_put(self, rules: list[PolicyRule]) -> PolicyState:
        return self.policy.put(rules)

    def policy_delete(self, name: str | None) -> PolicyDeleted:
        return self.policy.delete(name)

    def identity_list(self) -> list[Identity]:
        return self.identities.list()

    def require_bpf(self) -> BpfAccess:
        return require_bpf(self.datapath, self.status)

    def bpf_maps(self) -> BpfMaps:
        return self.bpf_views.maps()

    def network_put(self, network: DockerNetwork) -> DockerNetwork:
        return self.networks.put(network)

    def network_list(self) -> list[DockerNetwork]:
        return self.networks.list()

    def network_delete(self, network_id: str) -> None:
        self.networks.delete(network_id)
