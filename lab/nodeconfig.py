"""What each node runs with, derived from the topology: one source for both backends.

The netns backend turns the agent's settings into flags; the Vagrant backend
writes them as the agent's TOML file (`/etc/podnet/agent.toml`).
"""

from __future__ import annotations

from typing import Any

from lab.bgp import TOR_ASN, node_asn
from lab.topology import Topology

AgentSettings = dict[str, Any]


def agent_settings(topology: Topology, node: str, store_url: str) -> AgentSettings:
    """podnet-agent's settings for a worker (the keys of podnet.agent.config.AgentConfig)."""
    link = next(link for link in topology.links() if link.node == node)
    settings: AgentSettings = {
        "store": store_url,
        "datapath": topology.datapath,
        "cluster_cidrs": list(topology.cluster_cidrs),
        "mask_size": topology.mask_size,
        "node_ip": link.node_ip,
        "bgp_peer": link.tor_ip,
        "bgp_asn": node_asn(link.index),
        "bgp_peer_asn": TOR_ASN,
    }
    if topology.control() is not None:
        settings["ipam_mode"] = "operator"
    return settings


def as_flags(settings: AgentSettings) -> list[str]:
    flags: list[str] = []
    for key, value in settings.items():
        flag = "--" + ("cluster-cidr" if key == "cluster_cidrs" else key.replace("_", "-"))
        for item in value if isinstance(value, list) else [value]:
            flags += [flag, str(item)]
    return flags


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def as_toml(settings: AgentSettings) -> str:
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in settings.items())
