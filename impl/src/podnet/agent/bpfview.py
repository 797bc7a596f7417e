"""The BPF datapath seen through the agent's eyes: maps with endpoints and labels named (`GET /v1/bpf`),
and raw drop/trace events described for `GET /v1/monitor`."""

from __future__ import annotations

from podnet.agent.datapath import DatapathStatus, require_bpf
from podnet.agent.endpoints import EndpointStore
from podnet.agent.identities import IdentityNames
from podnet.api.models import BpfCounters, BpfEndpointEntry, BpfMaps, BpfPolicyEntry, MonitorEvent
from podnet.datapath.bpf.maps import PROTOCOLS, Event
from podnet.datapath.bpf.maps import EndpointCounters as BpfEndpointCounters
from podnet.datapath.protocol import Datapath


class BpfViews:
    def __init__(self, datapath: Datapath, status: DatapathStatus, endpoints: EndpointStore, names: IdentityNames):
        self.datapath = datapath
        self.status = status
        self.endpoints = endpoints
        self.names = names

    def maps(self) -> BpfMaps:
        bpf = require_bpf(self.datapath, self.status)
        by_index = self.endpoints.by_interface_index
        self.names.refresh()
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
                src_labels=self.names.of(key.src_identity) if key.src_identity else ["(any)"],
                dst_identity=key.dst_identity,
                dst_labels=self.names.of(key.dst_identity),
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

    def describe_event(self, event: Event) -> MonitorEvent:
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
            src_labels=self.names.of(event.src_identity),
            dst_identity=event.dst_identity,
            dst_labels=self.names.of(event.dst_identity),
            protocol=PROTOCOLS.get(event.proto, str(event.proto)),
            saddr=event.saddr,
            sport=event.sport,
            daddr=event.daddr,
            dport=event.dport,
            length=event.length,
        )
