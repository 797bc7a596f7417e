"""Request and response bodies of the agent API (Cilium-shaped, JSON).

Field names on the wire are Cilium's (`host-addressing`, `alloc-range`,
`interface-name`, …); Python code uses the snake_case attribute names.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from podnet.errors import Reason, describe_reasons


def _alias(name: str) -> str:
    return name.replace("_", "-")


class Model(BaseModel):
    # defer_build: a model's validator is built when it is first used, not at import (the agent's
    # start would build all of them, ~0.15 s, for the few a start needs).
    model_config = ConfigDict(alias_generator=_alias, populate_by_name=True, extra="forbid", defer_build=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Record(Model):
    """A body the agent also keeps in the store: fields it does not know (a newer
    version wrote them) are kept as they are, never a reason to refuse the record."""

    model_config = ConfigDict(alias_generator=_alias, populate_by_name=True, extra="allow", defer_build=True)


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None


IPv4 = Annotated[str, AfterValidator(_ipv4)]

_ENDPOINT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def validate_endpoint_id(value: str) -> str:
    if not _ENDPOINT_ID.fullmatch(value):
        raise ValueError(
            f"invalid endpoint id {value!r}: 1-128 characters of letters, digits, '_', '.', ':' and '-', "
            "starting with a letter or digit"
        )
    return value


def _label(value: str) -> str:
    if not value or len(value) > 253 or any(c.isspace() for c in value):
        raise ValueError(f"invalid label {value!r}: expected key=value (or key) without spaces")
    return value


Label = Annotated[str, AfterValidator(_label)]


class Error(Model):
    code: int = Field(description="the HTTP status")
    message: str = Field(description="what failed and what to do, for a person")
    reason: Reason = Field(
        description="why, for a program (switch on this, never on the message): " + describe_reasons()
    )


# -- IPAM --------------------------------------------------------------------


class AddressPair(Record):
    ipv4: str | None = None


class HostAddressingFamily(Model):
    ip: str = Field(description="the node's router IP")
    alloc_range: str = Field(description="the node's pod CIDR")
    enabled: bool = True


class NodeAddressing(Model):
    ipv4: HostAddressingFamily | None = None


class IPAMAddressResponse(Model):
    ip: str
    gateway: str
    cidrs: list[str]
    owner: str | None = None
    expires_at: float | None = None


class IPAMResponse(Model):
    address: AddressPair
    host_addressing: NodeAddressing
    ipv4: IPAMAddressResponse | None = None


class IPAMAllocation(Model):
    ip: str
    owner: str
    expires_at: float | None = None


class IPAMState(Model):
    pod_cidr: str
    router_ip: str
    capacity: int
    used: int
    allocations: list[IPAMAllocation]


class IPAMRelease(Model):
    ip: str
    released: bool
    owner: str | None = None


# -- endpoints -----------------------------------------------------------------


class EndpointState(StrEnum):
    waiting_for_identity = "waiting-for-identity"
    ready = "ready"
    not_ready = "not-ready"
    disconnecting = "disconnecting"


class EndpointAddressing(Model):
    ipv4: IPv4


class EndpointChangeRequest(Model):
    """PUT /v1/endpoint/{id} (create) and PATCH (update)."""

    addressing: EndpointAddressing | None = None
    container_id: str | None = Field(default=None, max_length=256)
    container_name: str | None = Field(default=None, max_length=256)
    docker_endpoint_id: str | None = Field(default=None, max_length=128)
    docker_network_id: str | None = Field(default=None, max_length=128)
    pod_name: str | None = Field(default=None, max_length=512)
    netns: str | None = Field(
        default=None,
        max_length=4096,
        description="create the container side inside this network namespace (path); "
        "without it the container side waits in the node namespace for the runtime to move it",
    )
    interface_name: str | None = Field(default=None, max_length=15, description="container-side name with netns")
    sandbox_key: str | None = Field(default=None, max_length=4096)
    labels: list[Label] | None = None


class EndpointNetworking(Record):
    addressing: list[AddressPair]
    interface_name: str
    interface_index: int
    host_mac: str
    mac: str
    container_interface_name: str
    router_ip: str


class EndpointCounters(Record):
    """Host-side veth counters: rx is what the container sent, tx what it received."""

    rx_packets: int
    rx_bytes: int
    tx_packets: int
    tx_bytes: int
    rx_dropped: int
    tx_dropped: int


class EndpointLogEntry(Record):
    timestamp: float
    state: EndpointState
    message: str


class Endpoint(Record):
    id: str
    state: EndpointState
    container_id: str | None = None
    container_name: str | None = None
    docker_endpoint_id: str | None = None
    docker_network_id: str | None = None
    pod_name: str | None = None
    sandbox_key: str | None = None
    labels: list[str] = Field(default_factory=list)
    identity: int | None = None
    networking: EndpointNetworking
    counters: EndpointCounters | None = None
    created_at: float
    log: list[EndpointLogEntry] = Field(default_factory=list)


class PodInterface(Model):
    """The pod's side of a CNI endpoint, read from the pod's network namespace now (CNI CHECK compares it)."""

    netns: str
    name: str
    present: bool
    mac: str | None = None
    addresses: list[str] = Field(default_factory=list)
    routes: list[str] = Field(default_factory=list)  # through it, as `ip route` says them: "0.0.0.0/0 via 10.0.0.1"


# -- node, health, config ----------------------------------------------------------


class BGPPeer(Model):
    name: str
    peer_ip: str
    peer_asn: int
    state: str
    session: str
    since: str
    routes_exported: int


class BGPStatus(Model):
    enabled: bool
    local_asn: int | None = None
    node_ip: str | None = None
    peers: list[BGPPeer] = Field(default_factory=list)
    routes: list[str] = Field(default_factory=list)
    message: str = ""


class NodeInfo(Model):
    name: str
    node_ip: str | None = None
    pod_cidrs: list[str]
    router_ip: str
    cluster_pool: str


class ComponentHealth(Model):
    state: str = Field(description="ok, degraded or failure")
    message: str
    reason: Reason | None = Field(default=None, description="why it is not ok, when it is not (see Error.reason)")


class QuarantinedRecord(Model):
    key: str = Field(description="the store key, left as it is")
    reason: str = Field(description="why it cannot be read")


class Healthz(Model):
    state: str
    node: str
    pod_cidr: str | None
    store: ComponentHealth
    datapath: ComponentHealth
    ipam: ComponentHealth
    bgp: ComponentHealth | None = None
    endpoints: int
    uptime_s: float
    quarantined: list[QuarantinedRecord] = Field(
        default_factory=list,
        description="stored records this agent cannot read: kept as they are and never acted on (their IPs, "
        "CIDRs and veths stay taken); repair or delete each key",
    )


class AgentConfigView(Model):
    node_name: str
    socket: str
    store: str
    cluster_cidrs: list[str]
    mask_size: int
    pod_cidr: str
    router_ip: str
    mtu: int
    datapath: str
    ip_expiration_s: float
    notes: list[str]


class DockerNetwork(Model):
    """A docker network backed by podnet (recorded by the docker plugin)."""

    id: str = Field(max_length=128)
    pool: str
    gateway: str
    options: dict[str, Any] = Field(default_factory=dict)


# -- CNI ----------------------------------------------------------------------------


class CNICall(Model):
    """One CNI invocation as the podnet-cni binary received it: its CNI_* environment and stdin."""

    env: dict[str, str] = Field(description="CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH")
    stdin: str = Field(max_length=1 << 20, description="the network configuration, as the runtime wrote it")

    @field_validator("env")
    @classmethod
    def _cni_only(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(k for k in value if not k.startswith("CNI_"))
        if unknown:
            raise ValueError(f"only CNI_* variables are forwarded, not {', '.join(unknown)}")
        return value


# -- policy, identities, BPF maps, monitor ---------------------------------------------


class PolicyState(Model):
    """The cluster's policy rules, and whether this node's datapath enforces them."""

    revision: int
    rules: list[dict[str, Any]] = Field(description="Cilium-like rules (see podnet.policy.model.PolicyRule)")
    enforced: bool
    message: str = ""


class PolicyDeleted(Model):
    deleted: list[str]
    revision: int


class Identity(Model):
    id: int
    labels: list[str]
    reserved: bool = False


class BpfEndpointEntry(Model):
    ip: str
    ifindex: int
    interface_name: str | None = None
    endpoint_id: str | None = None
    identity: int
    mac: str
    node_mac: str
    policy_enforced: bool


class BpfPolicyEntry(Model):
    src_identity: int
    src_labels: list[str]
    dst_identity: int
    dst_labels: list[str]
    protocol: str
    port: int
    packets: int
    bytes: int


class BpfCounters(Model):
    ifindex: int
    interface_name: str | None = None
    endpoint_id: str | None = None
    from_container_packets: int
    from_container_bytes: int
    to_container_packets: int
    to_container_bytes: int
    drops: dict[str, int] = Field(default_factory=dict)


class BpfMaps(Model):
    datapath: str
    pin_dir: str | None = None
    endpoints: list[BpfEndpointEntry] = Field(default_factory=list)
    policy: list[BpfPolicyEntry] = Field(default_factory=list)
    counters: list[BpfCounters] = Field(default_factory=list)
    ipcache: dict[str, int] = Field(default_factory=dict)


class MonitorEvent(Model):
    timestamp_ns: int
    type: str = Field(description="drop or trace")
    reason: str = ""
    direction: str
    endpoint_id: str | None = None
    endpoint_name: str | None = None
    ifindex: int
    src_identity: int
    src_labels: list[str] = Field(default_factory=list)
    dst_identity: int
    dst_labels: list[str] = Field(default_factory=list)
    protocol: str
    saddr: str
    sport: int
    daddr: str
    dport: int
    length: int
