"""What the agent needs from the kernel: the `Datapath` protocol and its optional BPF capability.

Two implementations: `VethDatapath` (veth pairs and /32 routes) and
`BpfDatapath` (tc programs and maps); unit tests fake it (tests/fakes.py).
Only a datapath with BPF maps returns a `BpfAccess` from `bpf()`: the agent
reads maps, counters and events through it, never by checking the class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from podnet.datapath.bpf.events import EventSink
    from podnet.datapath.bpf.maps import EndpointCounters, EndpointInfo, PolicyKey, PolicyValue


@dataclass(frozen=True)
class EndpointLink:
    host_ifname: str
    host_ifindex: int
    host_mac: str
    peer_ifname: str  # the container side's current name (temporary for docker)
    peer_mac: str
    moved: bool  # True when the peer was created inside the pod's namespace


@dataclass(frozen=True)
class LinkCounters:
    rx_packets: int
    rx_bytes: int
    tx_packets: int
    tx_bytes: int
    rx_dropped: int
    tx_dropped: int


@dataclass(frozen=True)
class PodLink:
    """A pod's interface as its network namespace has it now (what CNI CHECK compares)."""

    mac: str
    addresses: tuple[str, ...]  # CIDRs
    routes: tuple[tuple[str, str], ...]  # (destination CIDR, gateway or "") of routes through it


class BpfAccess(Protocol):
    """The maps, counters and event stream of a BPF datapath."""

    @property
    def pin_dir(self) -> Path: ...
    def endpoint_entries(self) -> list[tuple[str, EndpointInfo]]: ...
    def policy_entries(self) -> list[tuple[PolicyKey, PolicyValue]]: ...
    def ipcache_entries(self) -> dict[str, int]: ...
    def counter_entries(self) -> dict[int, EndpointCounters]: ...
    def set_trace(self, on: bool) -> None: ...
    def start_events(self, sink: EventSink) -> None: ...


class Datapath(Protocol):
    """Endpoints, the node's host device, and the policy the kernel enforces."""

    mode: str  # "bpf" or "routes"

    def describe(self) -> str: ...
    def bpf(self) -> BpfAccess | None:
        """The BPF maps and events, or None when this datapath has none (routes)."""
        ...

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
        entries: Iterable[tuple[int, int, int, int]] | None,
        ipcache: dict[str, int] | None,
    ) -> None:
        """The named endpoints' (identity, enforced); the allow entries (None: as last applied);
        the remote IPs' identities (None: as last applied)."""
        ...

    def index_of(self, ifname: str) -> int | None: ...
    def pod_interface(self, netns: str, ifname: str) -> PodLink | None:
        """The interface `ifname` in the pod's namespace, or None when it is not there."""
        ...

    def delete_link(self, ifname: str) -> None: ...
    def pending_deletions(self) -> int: ...
    def wait_deleted(self, endpoint_id: str, timeout_s: float = 5.0) -> bool:
        """Until the endpoint's veth, handed to `delete_endpoint_later`, is gone (True), or the timeout."""
        ...
