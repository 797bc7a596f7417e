"""The node's view of itself: `GET /v1/healthz`, `/v1/node` and `/v1/bgp`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from podnet.agent.config import AgentConfig
from podnet.agent.datapath import DatapathStatus
from podnet.agent.endpoints import EndpointStore
from podnet.api.models import BGPPeer, BGPStatus, ComponentHealth, Healthz, NodeInfo, QuarantinedRecord
from podnet.datapath.protocol import Datapath
from podnet.errors import Reason
from podnet.ipam import ClusterPool, DurableNodeAllocator
from podnet.kvstore import KVStore, KVStoreError
from podnet.kvstore.quarantine import Quarantine

if TYPE_CHECKING:
    from podnet.bgp.bird import BirdSpeaker


class Health:
    def __init__(
        self,
        config: AgentConfig,
        store: KVStore,
        datapath: Datapath,
        status: DatapathStatus,
        pool: ClusterPool,
        allocator: DurableNodeAllocator,
        endpoints: EndpointStore,
        speaker: BirdSpeaker | None,
        quarantine: Quarantine,
    ):
        self.config = config
        self.store = store
        self.datapath = datapath
        self.status = status
        self.pool = pool
        self.allocator = allocator
        self.endpoints = endpoints
        self.speaker = speaker
        self.quarantine = quarantine
        self.started = time.time()

    @property
    def pod_cidr(self) -> str:
        return str(self.allocator.pod_cidr)

    @property
    def router_ip(self) -> str:
        return str(self.allocator.router_ip)

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
            store = ComponentHealth(state="failure", message=str(err), reason=err.reason)
        if self.status.error:
            datapath = ComponentHealth(state="failure", message=self.status.error, reason=Reason.datapath_failed)
        elif self.datapath.index_of("podnet_host") is None:
            datapath = ComponentHealth(
                state="failure", message="host device podnet_host is missing", reason=Reason.datapath_failed
            )
        else:
            datapath = ComponentHealth(
                state="degraded" if self.status.note else "ok",
                message=f"{self.datapath.describe()}; router IP {self.router_ip} on podnet_host{self.status.suffix()}",
            )
        used, capacity = self.allocator.mem.used, self.allocator.mem.capacity
        ipam = ComponentHealth(
            state="ok" if used < capacity else "degraded",
            message=f"pod CIDR {self.pod_cidr}: {used}/{capacity} in use"
            + (" (exhausted)" if used >= capacity else ""),
            reason=Reason.pod_cidr_exhausted if used >= capacity else None,
        )
        bgp = None
        if self.speaker is not None:
            status = self.bgp_status()
            established = [p for p in status.peers if p.session == "Established"]
            peers = [address for address, _ in self.config.bgp_peers()]
            everyone = bool(status.peers) and len(established) == len(status.peers)
            if len(peers) == 1:
                message = (
                    f"session to {peers[0]} established, announcing {', '.join(status.routes)}"
                    if established
                    else status.message or f"session to {peers[0]}: " + ", ".join(p.session for p in status.peers)
                )
            else:  # several peers (a dual-homed node): ok only while every session is up
                sessions = ", ".join(f"{p.peer_ip} {p.session}" for p in status.peers)
                message = status.message or (
                    f"sessions: {sessions}; announcing {', '.join(status.routes) or 'nothing'}"
                    if established
                    else f"sessions: {sessions}"
                )
            note = self.speaker.note()  # e.g. the speaker was killed and started again
            bgp = ComponentHealth(
                state="ok" if everyone else "degraded", message=f"{message} ({note})" if note else message
            )
        quarantined = [QuarantinedRecord(key=r.key, reason=r.reason) for r in self.quarantine.records()]
        worst = "degraded" if quarantined else "ok"
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
            quarantined=quarantined,
        )

    def bgp_status(self) -> BGPStatus:
        if self.speaker is None:
            return BGPStatus(enabled=False, message="BGP is off (start the agent with --node-ip and --bgp-peer)")
        from podnet.bgp.bird import BGPError  # imported by the agent with its speaker

        try:
            peers = [BGPPeer(**p.__dict__) for p in self.speaker.peers()]
            routes = self.speaker.routes()
        except BGPError as err:
            return BGPStatus(enabled=True, local_asn=self.config.bgp_asn, node_ip=self.config.node_ip, message=str(err))
        return BGPStatus(
            enabled=True,
            local_asn=self.config.bgp_asn,
            node_ip=self.config.node_ip,
            peers=peers,
            routes=routes,
            message=self.speaker.note(),
        )


def health_while_busy(node: str, last: Healthz | None, store: ComponentHealth, waiting: str) -> Healthz:
    """Health without the agent's worker (it is stuck, `waiting` says on what): the store as probed
    beside it, the rest as last seen."""
    unknown = ComponentHealth(state="degraded", message=f"not known: {waiting}")
    return Healthz(
        state="failure" if store.state == "failure" else "degraded",
        node=node,
        pod_cidr=last.pod_cidr if last else None,
        store=store,
        datapath=last.datapath if last else unknown,
        ipam=last.ipam if last else unknown,
        bgp=last.bgp if last else None,
        endpoints=last.endpoints if last else 0,
        uptime_s=last.uptime_s if last else 0.0,
    )
