"""`endpoints`: a node's three views of its pods agree — the containers dockerd runs on podnet networks,
the agent's endpoints, the IPs its IPAM holds for endpoints, and the host-side veths in the kernel: one
each, the same ones (nothing leaked, nothing missing). With `ready: true`, every endpoint is also ready,
with its container's name, labels and identity (what a restarted agent must complete)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from lab.backends.node import LabNode
from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult

ENDPOINT_OWNER = "endpoint:"


class Endpoints(Strict):
    node: str
    ready: bool = Field(default=False, description="also: every endpoint ready, with name, labels and identity")
    count: int | None = Field(default=None, ge=0, description="and exactly this many")


def docker_endpoints(node: LabNode) -> dict[str, str]:
    """libnetwork endpoint id -> container name, for running containers on podnet networks."""
    podnet = set(node.docker("network", "ls", "-q", "--no-trunc", "--filter", "driver=podnet").stdout.split())
    ids = node.docker("ps", "-q").stdout.split()
    if not ids or not podnet:
        return {}
    found: dict[str, str] = {}
    for container in json.loads(node.docker("inspect", *ids).stdout):
        for network in (container.get("NetworkSettings", {}).get("Networks") or {}).values():
            if network.get("NetworkID") in podnet and network.get("EndpointID"):
                found[network["EndpointID"]] = container["Name"].lstrip("/")
    return found


def host_veths(node: LabNode) -> set[str]:
    out = node.cmd("ip", "-o", "link", "show").stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}
    return {n for n in names if n.startswith("lxc")}


def evaluate(ctx: Context, check: Endpoints) -> CheckResult:
    node = ctx.node(check.node)
    agent = node.agent()
    endpoints: list[dict[str, Any]] = agent.request("GET", "/v1/endpoint")
    held = {a["ip"]: a["owner"] for a in agent.request("GET", "/v1/ipam")["allocations"]}
    containers = docker_endpoints(node)
    veths = host_veths(node)
    problems = []
    docker_ids: set[str] = {str(e["docker-endpoint-id"]) for e in endpoints if e.get("docker-endpoint-id")}
    if missing := sorted(set(containers) - docker_ids):
        problems.append(f"containers without an endpoint: {', '.join(containers[m] for m in missing)}")
    if stale := sorted(docker_ids - set(containers)):
        problems.append(f"endpoints dockerd does not run: {', '.join(str(s)[:12] for s in stale)}")
    ips = {e["networking"]["addressing"][0]["ipv4"]: e["id"] for e in endpoints}
    for ip, endpoint_id in ips.items():
        if held.get(ip) != ENDPOINT_OWNER + endpoint_id:
            problems.append(f"{ip} of endpoint {endpoint_id[:12]} is held by {held.get(ip, 'nobody')}")
    if leaked := sorted(ip for ip, owner in held.items() if owner.startswith(ENDPOINT_OWNER) and ip not in ips):
        problems.append(f"IPs held for endpoints that are gone: {', '.join(leaked)}")
    wanted_veths = {e["networking"]["interface-name"] for e in endpoints}
    if extra := sorted(veths - wanted_veths):
        problems.append(f"veths no endpoint owns: {', '.join(extra)}")
    if absent := sorted(wanted_veths - veths):
        problems.append(f"endpoints whose veth is gone: {', '.join(absent)}")
    if check.ready:
        for e in endpoints:
            name = e.get("container-name") or e.get("pod-name") or e["id"][:12]
            if e["state"] != "ready" or e.get("identity") is None or not e.get("labels"):
                problems.append(f"{name}: {e['state']}, identity {e.get('identity')}, labels {e.get('labels')}")
            elif e.get("docker-endpoint-id") and not e.get("container-name"):
                problems.append(f"endpoint {e['id'][:12]} has no container name")
    if check.count is not None and len(endpoints) != check.count:
        problems.append(f"{len(endpoints)} endpoints, not {check.count}")
    summary = f"{len(containers)} containers, {len(endpoints)} endpoints, {len(ips)} IPs, {len(veths)} veths"
    expected = "one endpoint, IP and veth per running container" + (", all ready with identity" if check.ready else "")
    return CheckResult(
        "endpoints",
        f"{node.name}: containers, endpoints, IPs and veths agree",
        not problems,
        expected,
        summary + (": " + "; ".join(problems) if problems else ""),
        f"{node.name}: podnet endpoint list, podnet ipam list, docker ps, ip link",
    )


KIND = CheckKind("endpoints", Endpoints, evaluate)
