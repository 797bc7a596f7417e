"""`docker`: any docker CLI action on a node (its own dockerd)."""

from __future__ import annotations

import shlex

from pydantic import Field

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import Outcome, StepKind


class Docker(Strict):
    node: str
    args: list[str] = Field(min_length=1)


def run(ctx: Context, spec: Docker) -> Outcome:
    node = ctx.node(spec.node)
    proc = node.docker(*spec.args, check=False)
    return Outcome(f"{node.name}$ docker {shlex.join(spec.args)}", proc.returncode, proc.stdout, proc.stderr)


KIND = StepKind("docker", Docker, run, has_output=True)
