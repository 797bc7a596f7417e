"""`cni`: a CNI call for a pod, as a runtime makes it (capability host-cni-runtime).

ADD makes the pod's network namespace and saves `{pod}.ip`, `{pod}.veth` and
`{pod}.result` (the result JSON, which a later CHECK passes as prevResult);
DEL removes the namespace. `count` acts on pods <pod>-1 … <pod>-N in turn.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, model_validator

from lab.model.files import Strict
from lab.scenario.context import Context, StepFailed
from lab.scenario.kinds import Outcome, StepKind


class CNI(Strict):
    """Exec the node's podnet CNI plugin as a runtime would, for a pod (its netns is made on ADD)."""

    node: str
    command: Literal["ADD", "DEL", "CHECK", "STATUS"]
    pod: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,20}$")
    ifname: str = Field(default="eth0", max_length=15)
    ok: bool = True
    code: int | None = Field(default=None, description="the CNI error code expected when ok is false")
    msg_contains: str | None = None
    count: int = Field(
        default=1, ge=1, le=512, description="act on pods <pod>-1 … <pod>-N in turn (one runtime call each)"
    )
    runtime: Literal["libcni", "exec"] = Field(
        default="libcni",
        description="libcni: through the lab's libcni runtime (conflist, result cache); exec: the plugin exec'd per spec",
    )

    @model_validator(mode="after")
    def _count(self) -> CNI:
        if self.count > 1 and not self.ok:
            raise ValueError("count applies to calls expected to succeed (ok: true)")
        if self.command == "STATUS" and self.runtime == "libcni":
            raise ValueError("libcni 1.1 has no STATUS: use runtime: exec")
        return self

    def pods(self) -> list[str]:
        return [self.pod] if self.count == 1 else [f"{self.pod}-{i}" for i in range(1, self.count + 1)]


def run(ctx: Context, spec: CNI) -> Outcome:
    pods = spec.pods()
    runtime = ctx.lab.pods()
    node = ctx.node(spec.node)
    if spec.runtime == "libcni":
        command = f"{node.name}$ podnet-libcni {spec.command.lower()} podnet /run/netns/<pod>"
    else:
        command = f"{node.name}$ CNI_COMMAND={spec.command} CNI_IFNAME={spec.ifname} podnet < netconf"
    if len(pods) > 1:
        command += f"  # for each of {pods[0]} … {pods[-1]}"
    status, output = 0, None
    for pod in pods:
        prev: Any = None
        if spec.command == "CHECK" and spec.runtime == "exec" and f"{pod}.result" in ctx.variables:
            prev = json.loads(ctx.variables[f"{pod}.result"])
        status, output = runtime.call(
            node, runtime=spec.runtime, command=spec.command, pod=pod, ifname=spec.ifname, prev_result=prev
        )
        if spec.ok and status != 0:
            raise StepFailed(f"CNI {spec.command} for {pod} failed: {output}")
        if spec.command == "ADD" and status == 0:
            ctx.variables[f"{pod}.ip"] = output["ips"][0]["address"].split("/")[0]
            ctx.variables[f"{pod}.veth"] = output["interfaces"][0]["name"]
            ctx.variables[f"{pod}.result"] = json.dumps(output)
    if len(pods) > 1:
        stdout = "\n".join(f"{pod}: {ctx.variables.get(f'{pod}.ip', 'ok')}" for pod in pods)
    else:
        stdout = json.dumps(output, indent=2) if output else ""
    if not spec.ok:
        output = output if isinstance(output, dict) else {}
        if status == 0:
            raise StepFailed(f"CNI {spec.command} for {spec.pod} was expected to fail but succeeded")
        if spec.code is not None and output.get("code") != spec.code:
            raise StepFailed(f"CNI error code {output.get('code')} (expected {spec.code}): {output.get('msg')}")
        if spec.msg_contains and spec.msg_contains not in str(output.get("msg")):
            raise StepFailed(f"CNI error message lacks {spec.msg_contains!r}: {output.get('msg')!r}")
    return Outcome(command, stdout=stdout)


def requires(spec: CNI) -> frozenset[str]:
    return frozenset({"host-cni-runtime"})


KIND = StepKind("cni", CNI, run, requires=requires)
