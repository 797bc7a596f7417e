"""`process`: stop, start or restart one of a node's processes (gracefully; faults are `fault` steps)."""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import field_validator

from lab.backends.base import PROCESSES
from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import Outcome, StepKind


class Process(Strict):
    node: str
    name: str
    action: Literal["stop", "start", "restart"]

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PROCESSES:
            close = difflib.get_close_matches(value, PROCESSES, n=1)
            hint = f"did you mean {close[0]}?" if close else f"processes: {', '.join(PROCESSES)}"
            raise ValueError(f"no process {value!r}; {hint}")
        return value


def run(ctx: Context, spec: Process) -> Outcome:
    ctx.node(spec.node).require_process(spec.name)
    if spec.action in ("stop", "restart"):
        ctx.lab.stop_process(spec.node, spec.name)
    if spec.action in ("start", "restart"):
        ctx.lab.start_process(spec.node, spec.name)
    return Outcome(f"{spec.node}: {spec.action} {spec.name}")


KIND = StepKind("process", Process, run)
