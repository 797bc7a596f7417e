"""`link`: an interface down on a node — its underlay link (`uplink`; the ToR's `to-<node>`), or a
pod's host-side veth. Restored by setting it up again and putting back the routes through it that the
kernel dropped when it went down (an admin-down link loses its static routes; a cable's return would
not need it, but a lab's restore must leave the node as it found it)."""

from __future__ import annotations

import json

from lab.backends.node import LabNode
from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import FaultKind, Undo


class Link(Strict):
    node: str
    interface: str


def static_routes(node: LabNode, interface: str) -> list[dict[str, str]]:
    """Routes through the interface that the kernel does not make itself (proto kernel)."""
    out = node.cmd("ip", "-j", "route", "show", "dev", interface, check=False).stdout
    try:
        routes = json.loads(out or "[]")
    except ValueError:
        return []
    return [r for r in routes if r.get("protocol") != "kernel"]


def apply(ctx: Context, spec: Link) -> Undo:
    node = ctx.node(spec.node)
    routes = static_routes(node, spec.interface)
    node.cmd("ip", "link", "set", "dev", spec.interface, "down")

    def up() -> None:
        node.cmd("ip", "link", "set", "dev", spec.interface, "up")
        for route in routes:
            via = ["via", route["gateway"]] if route.get("gateway") else []
            node.cmd("ip", "route", "replace", route["dst"], *via, "dev", spec.interface, check=False)

    kept = f" and {len(routes)} route(s) through it" if routes else ""
    return Undo(f"ip link set {spec.interface} up on {node.name}{kept}", up)


KIND = FaultKind("link", Link, apply)
