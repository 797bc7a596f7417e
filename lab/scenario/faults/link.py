"""`link`: an interface down on a node — its underlay link (`uplink`; the ToR's `to-<node>`), or a
pod's host-side veth. Restored by setting it up again."""

from __future__ import annotations

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import FaultKind, Undo


class Link(Strict):
    node: str
    interface: str


def apply(ctx: Context, spec: Link) -> Undo:
    node = ctx.node(spec.node)
    node.cmd("ip", "link", "set", "dev", spec.interface, "down")
    return Undo(
        f"ip link set {spec.interface} up on {node.name}",
        lambda: node.cmd("ip", "link", "set", "dev", spec.interface, "up"),
    )


KIND = FaultKind("link", Link, apply)
