"""Agent configuration: command-line flags and/or a TOML file, validated."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from podnet.datapath.netns import DEFAULT_NETNS_PATHS
from podnet.errors import PodnetError
from podnet.ipam.cidr import parse_address, parse_cidr

DEFAULT_SOCKET = "/var/run/podnet/podnet.sock"
DEFAULT_STORE = "sqlite:///var/lib/podnet/state.db"
# The BPF maps a topology may size (bpf_map_entries), each with its least size.
BPF_MAPS = {"endpoints": 16, "policy": 16, "ipcache": 16, "counters": 16, "events": 4096}


class ConfigError(PodnetError):
    pass


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_name: str = Field(default_factory=socket.gethostname)
    socket: str = DEFAULT_SOCKET
    store: str = DEFAULT_STORE
    cluster_cidrs: list[str] = Field(default_factory=lambda: ["10.20.0.0/16"], min_length=1)
    mask_size: int = Field(default=24, ge=1, le=32)
    pod_cidr: str | None = None
    router_ip: str | None = None
    mtu: int = Field(default=1500, ge=576, le=65535)
    ip_expiration_s: float = Field(default=120.0, gt=0, description="how long an unclaimed IP is held")
    endpoint_release_grace_s: float = Field(
        default=60.0, gt=0, description="how long a deleted endpoint's IP waits for the runtime's release"
    )
    gc_interval_s: float = Field(default=5.0, gt=0)
    identity_gc_grace_s: float = Field(
        default=600.0, ge=0, description="identities no endpoint in the cluster used for this long are removed"
    )
    identity_gc_interval_s: float = Field(
        default=60.0, gt=0, description="how often an agent without an operator collects unused identities"
    )
    node_ip: str | None = Field(default=None, description="the node's underlay IP (BGP next hop)")
    ipam_mode: Literal["local", "operator"] = Field(
        default="local",
        description="local: take a pod CIDR from the cluster pool in the store; operator: register and wait for one",
    )
    datapath: Literal["bpf", "routes"] = Field(
        default="bpf",
        description="bpf: tc programs, no per-pod routes, policy; routes: veth + /32 routes "
        "(also used, with a logged reason, when BPF cannot load)",
    )
    bpf_pin_dir: str | None = Field(
        default=None, description="where the node's BPF maps are pinned (default /sys/fs/bpf/podnet/<node name>)"
    )
    bpf_object: str | None = Field(
        default=None, description="load this compiled BPF object instead of the one podnet ships (development)"
    )
    netns_paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NETNS_PATHS),
        description="where a pod's network namespace may be (absolute glob patterns: `*` is one path "
        "component, `**` any number); a netns elsewhere is refused",
    )
    bgp_peer: str | list[str] | None = Field(
        default=None, description="announce the pod CIDR to this router over BGP (a list: to each, e.g. two leaves)"
    )
    bgp_asn: int = Field(default=65001, ge=1, le=4294967295)
    bgp_peer_asn: int | list[int] = Field(
        default=65000, description="the peers' AS: one for every peer, or a list with one per peer, in order"
    )
    bgp_announce_node_ip: bool = Field(
        default=False,
        description="announce node_ip/32 too (a node IP on lo, not on a link: a dual-homed node); each session "
        "then speaks from its link's own address",
    )
    bgp_import_default: bool = Field(
        default=False,
        description="install the default route each peer sends in the kernel: one multipath route, a next hop "
        "per peer that sends one, node_ip as its source (a dual-homed node: a leaf whose session ends leaves it); "
        "off: import nothing",
    )
    bgp_bfd_interval_ms: int | None = Field(
        default=None, ge=10, le=10000, description="BFD on every BGP session at this interval (none: no BFD)"
    )
    bgp_bfd_multiplier: int = Field(default=3, ge=2, le=255, description="BFD packets missed before a session is down")
    docker_plugin_socket: str | None = Field(
        default=None,
        description="serve podnet's libnetwork plugin (network + IPAM driver) on this socket, inside the agent "
        "(e.g. /run/docker/plugins/podnet.sock), instead of a podnet-docker process of its own",
    )
    docker_host: str = Field(
        default="unix:///var/run/docker.sock", description="with docker_plugin_socket: dockerd's API (labels, GC)"
    )
    docker_gc_interval_s: float = Field(
        default=30.0, gt=0, description="with docker_plugin_socket: how often labels and garbage are reconciled"
    )
    docker_gc_grace_s: float = Field(
        default=60.0, ge=0, description="with docker_plugin_socket: endpoints younger than this are left alone"
    )
    docker_plugin_log_level: Literal["debug", "info", "warning", "error"] | None = Field(
        default=None,
        description="with docker_plugin_socket: the plugin's own log level (debug: every libnetwork call); "
        "unset: the agent's",
    )
    bpf_map_entries: dict[str, int] = Field(
        default_factory=dict,
        description="BPF map sizes (endpoints, policy, ipcache, counters: max entries; events: ring buffer bytes); "
        "unset ones keep the program's own. Flag form: NAME=N, repeated",
    )

    @field_validator("bpf_map_entries", mode="before")
    @classmethod
    def _map_pairs(cls, value: Any) -> Any:
        """The flag form: ["endpoints=256", ...]."""
        if not isinstance(value, list):
            return value
        pairs: dict[str, Any] = {}
        for item in value:
            name, sep, number = str(item).partition("=")
            if not sep or not number.strip().isdigit():
                raise ValueError(f"{item!r} is not NAME=N (e.g. endpoints=256)")
            pairs[name.strip()] = int(number)
        return pairs

    @field_validator("bpf_map_entries")
    @classmethod
    def _map_sizes(cls, value: dict[str, int]) -> dict[str, int]:
        for name, size in value.items():
            if name not in BPF_MAPS:
                raise ValueError(f"no BPF map {name!r} (maps: {', '.join(BPF_MAPS)})")
            if size < BPF_MAPS[name]:
                raise ValueError(f"{name}: {size} is below the least size, {BPF_MAPS[name]}")
            if name == "events" and size & (size - 1):
                raise ValueError(f"events: {size} is not a power of 2 (a ring buffer's size is)")
        return value

    def bgp_peers(self) -> list[tuple[str, int]]:
        """(address, AS) of every BGP peer."""
        peers = [self.bgp_peer] if isinstance(self.bgp_peer, str) else list(self.bgp_peer or [])
        asns = [self.bgp_peer_asn] if isinstance(self.bgp_peer_asn, int) else list(self.bgp_peer_asn)
        if len(asns) == 1:
            asns = asns * len(peers)
        return list(zip(peers, asns, strict=True))

    @model_validator(mode="after")
    def _bgp(self) -> AgentConfig:
        peers = [self.bgp_peer] if isinstance(self.bgp_peer, str) else list(self.bgp_peer or [])
        asns = [self.bgp_peer_asn] if isinstance(self.bgp_peer_asn, int) else list(self.bgp_peer_asn)
        if len(asns) not in (1, len(peers)) or not asns:
            raise ValueError(
                f"bgp_peer_asn: give one AS for every peer or one per peer ({len(peers)} peers, {len(asns)} AS numbers)"
            )
        for asn in asns:
            if not 1 <= asn <= 4294967295:
                raise ValueError(f"bgp_peer_asn: {asn} is not an AS number (1–4294967295)")
        if len(set(peers)) != len(peers):
            raise ValueError(f"bgp_peer: a peer is given twice ({', '.join(peers)})")
        for peer in peers:
            parse_address(peer, what="BGP peer")
        if peers and self.node_ip is None:
            raise ValueError("bgp_peer needs node_ip (the BGP next hop for the pod CIDR)")
        if self.node_ip is not None:
            parse_address(self.node_ip, what="node IP")
        if self.ipam_mode == "operator" and self.node_ip is None and self.pod_cidr is None:
            raise ValueError("ipam_mode operator needs node_ip (nodes register with their underlay IP)")
        return self

    @property
    def pin_dir(self) -> str:
        return self.bpf_pin_dir or f"/sys/fs/bpf/podnet/{self.node_name}"

    @field_validator("bpf_pin_dir")
    @classmethod
    def _pin_dir(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/sys/fs/bpf/"):
            raise ValueError(f"bpf_pin_dir {value!r} must be under /sys/fs/bpf/ (a BPF filesystem)")
        return value

    @field_validator("netns_paths")
    @classmethod
    def _netns_paths(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.startswith("/") or pattern.rstrip("/") != pattern or "//" in pattern:
                raise ValueError(f"netns path pattern {pattern!r} must be an absolute path pattern (e.g. /run/netns/*)")
        return value

    @field_validator("cluster_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            parse_cidr(cidr, what="cluster CIDR")
        return value

    @field_validator("pod_cidr")
    @classmethod
    def _pod_cidr(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cidr(value, what="pod CIDR")
        return value

    @field_validator("router_ip")
    @classmethod
    def _router(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value, what="router IP")
        return value


def describe_validation_error(err: ValidationError, what: str) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e["loc"]) or "(top level)"
        message = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return f"{what}: " + "; ".join(parts)


def load_config(path: str | None, overrides: dict[str, Any]) -> AgentConfig:
    data: dict[str, Any] = {}
    source = "command line"
    if path:
        source = path
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as err:
            raise ConfigError(f"cannot read agent configuration {path}: {err.strerror}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"invalid agent configuration {path}: {err}") from err
        data = {k.replace("-", "_"): v for k, v in data.items()}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return AgentConfig(**data)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, f"invalid agent configuration ({source})")) from None
