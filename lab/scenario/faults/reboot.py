"""`reboot`: a node powered off as by a crash — it loses what a reboot loses (its processes, its
containers' namespaces and veths, its pinned BPF objects, the routes in its namespace) and keeps what
a disk keeps (its state directory, docker's data, its underlay address). Restored by booting it:
its processes start again in order (containers with `--restart always` come back with dockerd).
Needs capability reboot."""

from __future__ import annotations

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import FaultKind, Undo


class Reboot(Strict):
    node: str


def apply(ctx: Context, spec: Reboot) -> Undo:
    ctx.lab.power_off(spec.node)
    return Undo(f"boot {spec.node}", lambda: ctx.lab.boot(spec.node))


def requires(spec: Reboot) -> frozenset[str]:
    return frozenset({"reboot"})


KIND = FaultKind("reboot", Reboot, apply, requires=requires)
