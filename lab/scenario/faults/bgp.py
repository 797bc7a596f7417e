"""`bgp`: the ToR's BGP session to a node disabled (`birdc disable <node>`): the ToR withdraws what it
learned from it. Restored by enabling it (`birdc enable <node>`)."""

from __future__ import annotations

from lab.model.files import Strict
from lab.scenario.context import Context, StepFailed
from lab.scenario.kinds import FaultKind, Undo


class Bgp(Strict):
    peer: str  # the node whose session the ToR disables (bird's protocol has the node's name)


def apply(ctx: Context, spec: Bgp) -> Undo:
    if ctx.lab.topology.is_fabric():
        raise StepFailed("a fabric has no single ToR: break a leaf or a spine with a `router` or `link` fault")
    if spec.peer not in ctx.lab.workers:
        raise StepFailed(f"the ToR has no BGP session to {spec.peer!r} (workers: {', '.join(ctx.lab.workers)})")
    tor = ctx.lab.tor
    tor.birdc("disable", spec.peer)
    return Undo(f"birdc enable {spec.peer} on {tor.name}", lambda: tor.birdc("enable", spec.peer))


KIND = FaultKind("bgp", Bgp, apply)
