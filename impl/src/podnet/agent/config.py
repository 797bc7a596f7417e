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
    bgp_peer: str | None = Field(default=None, description="announce the pod CIDR to this router over BGP")
    bgp_asn: int = Field(default=65001, ge=1, le=4294967295)
    bgp_peer_asn: int = Field(default=65000, ge=1, le=4294967295)

    @model_validator(mode="after")
    def _bgp(self) -> AgentConfig:
        if self.bgp_peer is not None:
            parse_address(self.bgp_peer, what="BGP peer")
            if self.node_ip is None:
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
