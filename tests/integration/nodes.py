"""Real lab nodes for integration tests: netns + own dockerd + podnet agent and plugin."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.backends.netns.host import lab_cgroups
from lab.backends.netns.node import NetnsNode
from lab.backends.netns.standalone import bare_node as lab_bare_node
from lab.backends.netns.standalone import docker_node as lab_docker_node
from podnet.api.client import AgentClient

PYTHON = sys.executable
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "integration"
FAST_GC = ("--gc-interval", "1", "--gc-grace", "3", "--log-level", "debug")
# The same for the plugin in the agent (podnet-agent --docker-plugin-socket).
IN_AGENT_FAST_GC = ("--docker-gc-interval", "1", "--docker-gc-grace", "3", "--docker-plugin-log-level", "debug")


def host_snapshot() -> dict[str, set[str]]:
    """What a node could leak into the machine: namespaces, root-ns links, mounts, BPF pins, and
    cgroups in every mounted hierarchy (v1 controllers and the unified one on this machine kind)."""
    netns = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    lines = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
    links = {line.split(":")[1].strip().split("@")[0] for line in lines}
    mounts = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    pins = {str(p) for p in Path("/sys/fs/bpf").rglob("*")} if Path("/sys/fs/bpf").is_dir() else set()
    cgroups = {str(p) for p in lab_cgroups()}
    return {
        "netns": {n for n in netns if n.startswith("pn-")},
        "links": links,
        "mounts": mounts,
        "pins": pins,
        "cgroups": cgroups,
    }


def assert_nothing_left(before: dict[str, set[str]]) -> None:
    """Nothing a node made outlives it: no namespace, root-ns link, mount, BPF pin or cgroup more than `before`."""
    after = host_snapshot()
    assert after["netns"] == before["netns"], "a lab namespace was left behind"
    for kind in ("links", "mounts", "pins", "cgroups"):
        assert after[kind] <= before[kind], f"{kind} left behind: {after[kind] - before[kind]}"


@contextmanager
def docker_node(name: str, *agent_args: str, plugin_in_agent: bool = False) -> Iterator[NetnsNode]:
    """`plugin_in_agent`: the agent serves the libnetwork plugin (no podnet-docker)."""
    plugin_args = IN_AGENT_FAST_GC if plugin_in_agent else FAST_GC
    with lab_docker_node(
        name,
        PYTHON,
        agent_args=agent_args,
        plugin_args=plugin_args,
        keep_logs=ARTIFACTS,
        plugin_in_agent=plugin_in_agent,
    ) as node:
        yield node


def datapath(node: NetnsNode) -> str:
    """The datapath the node's agent was started with (podnet's default: bpf)."""
    args = node.agent_args
    return args[args.index("--datapath") + 1] if "--datapath" in args else "bpf"


def assert_delivered_to(node: NetnsNode, ip: str, ifname: str, pod_cidr: str) -> None:
    """routes: a /32 route per pod; bpf: one route for the pod CIDR, the pod in the endpoints map."""
    routes = node.cmd("ip", "route").stdout
    if datapath(node) == "routes":
        assert f"{ip} dev {ifname}" in routes, routes
        return
    assert f"{ip} dev" not in routes and f"{pod_cidr} dev podnet_host proto 200" in routes, routes
    maps = AgentClient(str(node.agent_sock)).request("GET", "/v1/bpf")
    assert (ip, ifname) in {(e["ip"], e["interface-name"]) for e in maps["endpoints"]}, maps["endpoints"]


@contextmanager
def bare_node(name: str) -> Iterator[NetnsNode]:
    """A node namespace with nothing started; its logs are kept in artifacts/, the rest removed."""
    with lab_bare_node(name, keep_logs=ARTIFACTS) as node:
        yield node


@contextmanager
def pod_netns(node: NetnsNode) -> Iterator[str]:
    """A pod sandbox: a network namespace of its own, named after the node (so `lab clean` finds it)."""
    name = f"{node.netns}-pod{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def in_pod(netns: str, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True, check=True).stdout


def ipam_owners(node: NetnsNode) -> list[str]:
    """Who holds each IP on the node's agent (the router IP's owner is `router`)."""
    from podnet.api.client import AgentClient

    return [a["owner"] for a in AgentClient(str(node.agent_sock)).request("GET", "/v1/ipam")["allocations"]]
