"""`exec`: a command on a node, in one of its containers (`container`), or in a CNI pod (`pod`)."""

from __future__ import annotations

import shlex

from pydantic import Field, model_validator

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import Outcome, StepKind


class Exec(Strict):
    node: str
    container: str | None = None
    pod: str | None = Field(default=None, description="a pod made by a cni step: run in its network namespace")
    cmd: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _where(self) -> Exec:
        if self.container and self.pod:
            raise ValueError("give container or pod, not both")
        return self


def run(ctx: Context, spec: Exec) -> Outcome:
    node = ctx.node(spec.node)
    if spec.container:
        command = f"{node.name}$ docker exec {spec.container} {shlex.join(spec.cmd)}"
        proc = node.docker("exec", spec.container, *spec.cmd, check=False)
    elif spec.pod:
        netns = ctx.lab.pods().pod_netns(node, spec.pod)
        command = f"{node.name}/{spec.pod}$ {shlex.join(spec.cmd)}"
        proc = node.cmd("nsenter", f"--net={netns}", *spec.cmd, check=False)
    else:
        command = f"{node.name}$ {shlex.join(spec.cmd)}"
        proc = node.cmd(*spec.cmd, check=False, env=ctx.lab.node_env(node.name))
    return Outcome(command, proc.returncode, proc.stdout, proc.stderr)


def requires(spec: Exec) -> frozenset[str]:
    return frozenset({"host-cni-runtime"}) if spec.pod else frozenset()


KIND = StepKind("exec", Exec, run, has_output=True, requires=requires)
