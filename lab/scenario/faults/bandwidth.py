"""`bandwidth`: a node's interface limited to a rate (a tbf root qdisc) on its way out. Restored by
removing the qdisc."""

from __future__ import annotations

from pydantic import Field

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import FaultKind, Undo


class Bandwidth(Strict):
    node: str
    interface: str
    rate: str = Field(pattern=r"^\d+(\.\d+)?([kmg]?bit|[kmg]?bps)$", description="e.g. 1mbit, 500kbit")
    burst: str = Field(default="32kbit", pattern=r"^\d+[kmg]?(bit|b)?$")
    latency: str = Field(default="50ms", pattern=r"^\d+(us|ms|s)$", description="tbf's queue limit, as time")


def apply(ctx: Context, spec: Bandwidth) -> Undo:
    node = ctx.node(spec.node)
    node.cmd(
        "tc", "qdisc", "replace", "dev", spec.interface, "root",
        "tbf", "rate", spec.rate, "burst", spec.burst, "latency", spec.latency,
    )  # fmt: skip
    return Undo(
        f"remove the {spec.rate} limit on {node.name}/{spec.interface}",
        lambda: node.cmd("tc", "qdisc", "del", "dev", spec.interface, "root", check=False),
    )


KIND = FaultKind("bandwidth", Bandwidth, apply)
