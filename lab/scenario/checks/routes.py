"""`routes`: a node's, a container's or a CNI pod's main table has (or lacks) a route; `gateways` names
every next hop of an equal-cost (ECMP) route, those over a link without carrier not counted."""

from __future__ import annotations

import json

from pydantic import Field, model_validator

from lab.backends.node import LabNode
from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult

PROTOS = {2: "kernel", 3: "boot", 4: "static", 12: "bird", 186: "bgp", 200: "podnet"}


class RouteMatch(Strict):
    dst: str = Field(description="'default' or a CIDR")
    gateway: str | None = None
    gateways: list[str] | None = Field(
        default=None, min_length=1, description="exactly these next hops (ECMP: one per equal path)"
    )
    dev: str | None = None
    proto: str | None = None


class Routes(Strict):
    node: str
    container: str | None = None
    pod: str | None = None
    has: RouteMatch | None = None
    lacks: RouteMatch | None = None

    @model_validator(mode="after")
    def _one(self) -> Routes:
        if (self.has is None) == (self.lacks is None):
            raise ValueError("give exactly one of has, lacks")
        if self.container and self.pod:
            raise ValueError("give container or pod, not both")
        return self


DOWN = {"dead", "linkdown"}  # a next hop the kernel does not use


def table(node: LabNode, netns: str | None) -> list[dict[str, str]]:
    """The main table as iproute2 sees it (run on the node, so it works on every backend)."""
    enter = ["nsenter", f"--net={netns}"] if netns else []
    proc = node.cmd(*enter, "ip", "-N", "-j", "route", "show", "table", "main")
    found = []
    for route in json.loads(proc.stdout or "[]"):
        dst = route.get("dst", "")
        proto = int(route.get("protocol", 3))  # iproute2 leaves out proto boot
        hops = route.get("nexthops") or [route]
        live = [h["gateway"] for h in hops if h.get("gateway") and not DOWN & set(h.get("flags", []))]
        found.append(
            {
                "dst": dst if dst == "default" or "/" in dst else f"{dst}/32",
                "gateway": route.get("gateway", ""),
                "gateways": ",".join(sorted(live)),
                "dev": route.get("dev", ""),
                "proto": PROTOS.get(proto, str(proto)),
            }
        )
    return found


def _text(route: dict[str, str]) -> str:
    if route["gateway"] or not route.get("gateways"):
        via = f" via {route['gateway']}" if route["gateway"] else ""
        return f"{route['dst']}{via} dev {route['dev']} proto {route['proto']}"
    return f"{route['dst']} proto {route['proto']} nexthops via {route['gateways'].replace(',', ' + ')}"


def matches(route: dict[str, str], want: RouteMatch) -> bool:
    dst = want.dst if want.dst == "default" or "/" in want.dst else f"{want.dst}/32"
    return (
        route["dst"] == dst
        and (want.gateway is None or route["gateway"] == want.gateway)
        and (want.gateways is None or route.get("gateways") == ",".join(sorted(want.gateways)))
        and (want.dev is None or route["dev"] == want.dev)
        and (want.proto is None or route["proto"] == want.proto)
    )


def evaluate(ctx: Context, check: Routes) -> CheckResult:
    node = ctx.node(check.node)
    if check.pod:
        netns = ctx.lab.pods().pod_netns(node, check.pod)
        where = f"{node.name}: nsenter --net={netns} ip route"
    elif check.container:
        pid = node.docker("inspect", "-f", "{{.State.Pid}}", check.container).stdout.strip()
        netns, where = f"/proc/{pid}/ns/net", f"{node.name}: docker exec {check.container} ip route"
    else:
        netns, where = None, f"{node.name}: ip route"
    routes = table(node, netns)
    want = check.has or check.lacks
    assert want is not None
    hit = any(matches(r, want) for r in routes)
    wanted = " ".join(f"{k} {v}" for k, v in want.model_dump(exclude_none=True).items())
    subject = f"{check.container or check.pod} on {node.name}" if check.container or check.pod else node.name
    return CheckResult(
        "routes",
        f"{subject} {'has' if check.has else 'lacks'} route {wanted}",
        hit if check.has else not hit,
        f"{'a' if check.has else 'no'} route {wanted}",
        "; ".join(_text(r) for r in routes) or "empty table",
        where,
    )


def requires(check: Routes) -> frozenset[str]:
    return frozenset({"host-cni-runtime"}) if check.pod else frozenset()


KIND = CheckKind("routes", Routes, evaluate, requires=requires)
