"""What each node runs with, derived from the topology: one source, several renderings.

The cluster's settings are computed here once — the agents' settings, etcd's,
the operator's arguments, the order in which the control node registers the
workers, the ToR's bird configuration, the store URL — and each backend only
renders them: the netns backend as command-line flags, the Vagrant backend
as the agent's TOML file and systemd environment files.
"""

from __future__ import annotations

from typing import Any

from lab.model.topology import Topology

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
OPERATOR_INTERVAL_S = 0.2
FABRIC_DEFAULT = "fabric_default"  # the spines' bird protocol that originates the default route  # the lab's operator reconciles often: a lab waits on it

Settings = dict[str, Any]


# -- the store ---------------------------------------------------------------------
def control_store_url(topology: Topology) -> str | None:
    """etcd on the control node, which every agent reaches over the ToR; None without one
    (each backend then provides a shared store of its own: a SQLite file, or etcd on the ToR)."""
    control = topology.control()
    if control is None:
        return None
    return f"etcd://{topology.node_ip(control.name)}:{ETCD_CLIENT_PORT}"


# -- agents --------------------------------------------------------------------------
def agent_settings(topology: Topology, node: str, store_url: str) -> Settings:
    """podnet-agent's settings for a worker (the keys of podnet.agent.config.AgentConfig): one BGP
    peer per uplink (its ToR, or each of its two leaves, then with its node IP announced too and the
    leaves' default routes imported)."""
    uplinks = topology.uplinks(node)
    settings: Settings = {
        "store": store_url,
        "datapath": topology.datapath,
        "cluster_cidrs": list(topology.cluster_cidrs),
        "mask_size": topology.mask_size,
        "node_ip": topology.node_ip(node),
    }
    if len(uplinks) == 1:
        settings |= {
            "bgp_peer": uplinks[0].upper_ip,
            "bgp_asn": topology.asn(node),
            "bgp_peer_asn": topology.asn(uplinks[0].upper),
        }
    else:
        settings |= {
            "bgp_peer": [link.upper_ip for link in uplinks],
            "bgp_asn": topology.asn(node),
            "bgp_peer_asn": [topology.asn(link.upper) for link in uplinks],
            "bgp_announce_node_ip": True,
            "bgp_import_default": True,  # its leaves' defaults, so a leaf whose session ends is left at once
        }
    if topology.bfd is not None:
        settings |= {"bgp_bfd_interval_ms": topology.bfd.interval_ms, "bgp_bfd_multiplier": topology.bfd.multiplier}
    if topology.bpf_maps is not None:
        settings["bpf_map_entries"] = topology.bpf_maps.model_dump(exclude_none=True)
    if topology.control() is not None:
        settings["ipam_mode"] = "operator"
    return settings


def plugin_args() -> list[str]:
    """podnet-docker's flags in the lab: debug log (plugin_calls checks read the calls there), and a
    short reconcile period, so scenarios that wait on it (labels after an agent restart, leaks after a
    plugin kill) wait seconds, not minutes."""
    return ["--log-level", "debug", "--gc-interval", "5", "--gc-grace", "10"]


def in_agent_plugin_settings() -> Settings:
    """The same for a plugin served by podnet-agent (a node's `docker_plugin: agent`), as agent
    settings: the plugin's calls logged at debug (in the agent's log), the same reconcile period.
    The socket and dockerd's address are the node's (each backend adds them)."""
    return {"docker_plugin_log_level": "debug", "docker_gc_interval_s": 5.0, "docker_gc_grace_s": 10.0}


def in_agent_plugin_flags() -> list[str]:
    """`in_agent_plugin_settings` as podnet-agent's flags."""
    names = {
        "docker_plugin_log_level": "--docker-plugin-log-level",
        "docker_gc_interval_s": "--docker-gc-interval",
        "docker_gc_grace_s": "--docker-gc-grace",
    }
    return [
        part
        for key, value in in_agent_plugin_settings().items()
        for part in (names[key], f"{value:g}" if isinstance(value, float) else str(value))
    ]


def as_flags(settings: Settings) -> list[str]:
    """A list is a repeated flag, a dict NAME=VALUE pairs of one, True a bare flag (False none)."""
    flags: list[str] = []
    for key, value in settings.items():
        flag = "--" + ("cluster-cidr" if key == "cluster_cidrs" else key.replace("_", "-"))
        if isinstance(value, bool):
            flags += [flag] if value else []
            continue
        if isinstance(value, dict):
            value = [f"{k}={v}" for k, v in value.items()]
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
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def as_toml(settings: Settings) -> str:
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in settings.items())


# -- the control plane -----------------------------------------------------------------
def etcd_settings(name: str, *, listen_ips: list[str], advertise_ip: str, data_dir: str) -> dict[str, str]:
    """etcd's settings (its flag names without dashes); one member, peers on loopback."""
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    return {
        "name": name,
        "data-dir": data_dir,
        "listen-client-urls": ",".join(f"http://{ip}:{ETCD_CLIENT_PORT}" for ip in listen_ips),
        "advertise-client-urls": f"http://{advertise_ip}:{ETCD_CLIENT_PORT}",
        "listen-peer-urls": peer,
        "initial-advertise-peer-urls": peer,
        "initial-cluster": f"{name}={peer}",
        "log-level": "warn",
    }


def etcd_flags(settings: dict[str, str]) -> list[str]:
    return [f"--{key}={value}" for key, value in settings.items()]


def etcd_env(settings: dict[str, str]) -> str:
    """The same settings as etcd's environment file (ETCD_NAME=…)."""
    return "".join(f"ETCD_{key.upper().replace('-', '_')}={value}\n" for key, value in settings.items())


def operator_args(topology: Topology, store_url: str) -> list[str]:
    cidrs = [a for c in topology.cluster_cidrs for a in ("--cluster-cidr", c)]
    return [
        "--store",
        store_url,
        *cidrs,
        "--mask-size",
        str(topology.mask_size),
        "--interval",
        str(OPERATOR_INTERVAL_S),
    ]


def registrations(topology: Topology) -> list[tuple[str, str]]:
    """(worker, node IP) in topology order: the operator serves nodes in registration order,
    and the seed's example (nodes 1–4 in the first cluster CIDR, 5–8 in the second) depends on it."""
    return [(w.name, topology.node_ip(w.name)) for w in topology.workers()]


# -- the routers ----------------------------------------------------------------------
def tor_config(topology: Topology) -> str:
    """bird2 on the ToR of a one-ToR topology (its only router)."""
    return router_config(topology, topology.routers()[0].name)


def router_config(topology: Topology, name: str) -> str:
    """bird2 on a router: one eBGP session per worker below it (the control node speaks no BGP) and, on a
    leaf, per spine above; what it learns into its kernel table. In a fabric: equal paths merged (ECMP),
    a leaf's connected node links announced upwards (the control node's address is one), and, with
    `bfd`, BFD on every session. The spines originate a default route (in bird only, never in their
    kernel) and send it to the leaves, which pass it on to their dual-homed nodes only: a leaf sends a
    default while it has a spine's, and a node's default (see podnet.bgp.bird) follows its sessions.
    A leaf's own default stays the lab's kernel route (see wiring.py)."""
    router = topology.router(name)
    fabric = topology.is_fabric()
    sessions = topology.bgp_sessions(name)
    if sessions:
        first, _ = sessions[0]
        router_id = first.upper_ip if first.upper == name else first.lower_ip
    else:
        router_id = (topology.downlinks(name) or topology.uplinks(name))[0].upper_ip
    lines = [f"router id {router_id};", "log stderr all;", "protocol device { scan time 10; }"]
    if router.tier == "leaf":
        lines.append('protocol direct { ipv4; interface "to-*"; }')  # its node links, for the rest of the fabric
    if router.tier == "spine":
        lines.append(f"protocol static {FABRIC_DEFAULT} {{ ipv4; route 0.0.0.0/0 blackhole; }}")
    learned = "source = RTS_BGP" + (" && net != 0.0.0.0/0" if router.tier == "leaf" else "")
    lines += [
        "protocol kernel {",
        f"  ipv4 {{ import none; export where {learned}; }};",  # pod CIDRs into the router's kernel table
        *(["  merge paths on;"] if fabric else []),  # ECMP: every equal path into one multipath route
        "}",
    ]
    if topology.bfd is not None:
        interval, multiplier = topology.bfd.interval_ms, topology.bfd.multiplier
        lines += [
            "protocol bfd {",
            f'  interface "to-*" {{ min rx interval {interval} ms; min tx interval {interval} ms; '
            f"multiplier {multiplier}; }};",
            "}",
        ]
    for link, peer in sessions:
        below = link.upper == name
        local, remote = (link.upper_ip, link.lower_ip) if below else (link.lower_ip, link.upper_ip)
        if below and not link.lower_is_router and len(topology.uplinks(peer)) > 1 and router.tier == "leaf":
            export = "where source = RTS_BGP && net = 0.0.0.0/0"  # a dual-homed node: the spines' default
        elif below and not link.lower_is_router:
            export = "none"  # a single-homed node learns nothing (its agent imports nothing)
        elif below:
            export = f'where source = RTS_BGP || proto = "{FABRIC_DEFAULT}"'  # a spine: all it knows, to every leaf
        else:
            export = "where (source = RTS_BGP || source = RTS_DEVICE) && net != 0.0.0.0/0"  # a leaf: its nodes' routes and links, up
        lines += [
            f"protocol bgp {peer} {{",
            f"  local {local} as {router.asn};",
            f"  neighbor {remote} as {topology.asn(peer)};",
            "  hold time 9; keepalive time 3;",
            # bird's defaults make a reconnect wait ~73 s; seconds are what a lab needs
            "  connect retry time 3; error wait time 1, 10; error forget time 10;",
            *(["  bfd on;"] if topology.bfd is not None else []),
            f"  ipv4 {{ import all; export {export}; }};",
            "}",
        ]
    return "\n".join(lines) + "\n"
