"""`loss`: random packet loss on a node's interface (iptables' `statistic` match: this kernel has no
netem), in either direction or both. Restored by removing the rules. (No delay or jitter: that needs
netem or sch_fq, which this kernel lacks.)"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import FaultKind, Undo


class Loss(Strict):
    node: str
    interface: str
    percent: float = Field(gt=0, le=100)
    direction: Literal["both", "out", "in"] = "both"


def rules(spec: Loss, tag: str) -> list[list[str]]:
    """The mangle rules (without -I/-D): packets leaving (-o) and arriving (-i) on the interface."""
    match = ["-m", "statistic", "--mode", "random", "--probability", f"{spec.percent / 100:.4f}"]
    tagged = ["-m", "comment", "--comment", tag, "-j", "DROP"]
    found = []
    if spec.direction in ("both", "out"):
        found.append(["POSTROUTING", "-o", spec.interface, *match, *tagged])
    if spec.direction in ("both", "in"):
        found.append(["PREROUTING", "-i", spec.interface, *match, *tagged])
    return found


def apply(ctx: Context, spec: Loss) -> Undo:
    node = ctx.node(spec.node)
    tag = f"pn-fault-loss-{spec.interface}"
    added = rules(spec, tag)
    for rule in added:
        node.cmd("iptables", "-w", "-t", "mangle", "-I", *rule)

    def remove() -> None:
        for rule in added:
            node.cmd("iptables", "-w", "-t", "mangle", "-D", *rule, check=False)

    return Undo(f"remove the {spec.percent}% loss rules on {node.name}/{spec.interface}", remove)


KIND = FaultKind("loss", Loss, apply)
