"""`router`: a router (a fabric's leaf or spine, or the ToR) fails as a whole. `power-off`: every one of
its underlay links down, as when the switch loses power (its neighbours see the carrier go); `freeze`:
it drops everything it receives and sends, its links up (a hung switch: only BFD, or the BGP hold
timer, tells its neighbours). Restored by setting the links up again, or by removing the drop rules;
its BGP sessions then come back by themselves, and the routes the lab made (not the kernel's, not
bird's: a leaf's default over its spines), which the kernel dropped with the links, are put back."""

from __future__ import annotations

import json
from typing import Any, Literal

from lab.backends.node import LabNode
from lab.model.files import Strict
from lab.scenario.context import Context, StepFailed
from lab.scenario.kinds import FaultKind, Undo

TAG = "pn-fault-router"


class Router(Strict):
    node: str
    mode: Literal["power-off", "freeze"] = "power-off"


def interfaces(ctx: Context, name: str) -> tuple[list[str], list[str]]:
    """The router's underlay interfaces: to what is below it, and to what is above."""
    topology = ctx.lab.topology
    return [link.upper_if for link in topology.downlinks(name)], [link.lower_if for link in topology.uplinks(name)]


def made_routes(node: LabNode) -> list[list[str]]:
    """The main table's routes neither the kernel nor bird made, as `ip route replace` arguments."""
    out = node.cmd("ip", "-j", "route", "show", "table", "main", check=False).stdout
    try:
        routes: list[dict[str, Any]] = json.loads(out or "[]")
    except ValueError:
        return []
    found = []
    for route in routes:
        if route.get("protocol") in ("kernel", "bird"):
            continue
        hops = route.get("nexthops") or [route]
        args = []
        for hop in hops:
            via = ["via", hop["gateway"]] if hop.get("gateway") else []
            args += (["nexthop"] if len(hops) > 1 else []) + via + ["dev", hop["dev"]]
        found.append([route["dst"], *args])
    return found


def freeze_rules() -> list[list[str]]:
    """raw-table drops (before conntrack, for every packet in and out; without -I/-D)."""
    tagged = ["-m", "comment", "--comment", TAG, "-j", "DROP"]
    return [["PREROUTING", *tagged], ["OUTPUT", *tagged]]


def apply(ctx: Context, spec: Router) -> Undo:
    routers = [r.name for r in ctx.lab.topology.routers()]
    if spec.node not in routers:
        raise StepFailed(f"{spec.node!r} is not a router (routers: {', '.join(routers)})")
    node = ctx.node(spec.node)
    if spec.mode == "freeze":
        rules = freeze_rules()
        for rule in rules:
            node.cmd("iptables", "-w", "-t", "raw", "-I", *rule)

        def thaw() -> None:
            for rule in rules:
                node.cmd("iptables", "-w", "-t", "raw", "-D", *rule, check=False)

        return Undo(f"remove the drop-everything rules on {node.name}", thaw)
    downlinks, uplinks = interfaces(ctx, spec.node)
    links = downlinks + uplinks
    routes = made_routes(node)
    for interface in links:
        node.cmd("ip", "link", "set", "dev", interface, "down")

    def power_on() -> None:
        # Upwards first, with the routes put back, and only then the links to what is below: a node
        # sends over a link as soon as it has a carrier, and the router must be able to forward it
        # by then (in the other order each packet hashed here is dropped until the last command).
        for interface in uplinks:
            node.cmd("ip", "link", "set", "dev", interface, "up", check=False)
        for route in routes:
            node.cmd("ip", "route", "replace", *route, check=False)
        for interface in downlinks:
            node.cmd("ip", "link", "set", "dev", interface, "up", check=False)

    return Undo(f"ip link set up {', '.join(uplinks + downlinks)} on {node.name}", power_on)


KIND = FaultKind("router", Router, apply)
