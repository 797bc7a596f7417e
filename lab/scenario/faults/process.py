"""`process`: signal one of a node's processes — kill (SIGKILL, the default), stop (SIGSTOP: paused),
or any other signal. Restored by starting it again (or SIGCONT for a paused one); a worker's `bird` is
podnet-agent's speaker, which the agent itself starts again."""

from __future__ import annotations

import signal

from pydantic import field_validator

from lab.backends.base import PROCESSES
from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import FaultKind, Undo


class Process(Strict):
    node: str
    name: str
    signal: str = "KILL"

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PROCESSES:
            raise ValueError(f"no process {value!r} (processes: {', '.join(PROCESSES)})")
        return value

    @field_validator("signal")
    @classmethod
    def _signal(cls, value: str) -> str:
        name = value.upper().removeprefix("SIG")
        if f"SIG{name}" not in signal.Signals.__members__:
            raise ValueError(f"unknown signal {value!r} (e.g. KILL, TERM, STOP)")
        return name


def apply(ctx: Context, spec: Process) -> Undo:
    node = ctx.node(spec.node)
    node.require_process(spec.name)
    number = signal.Signals[f"SIG{spec.signal}"]
    speaker = spec.name == "bird" and node.name in ctx.lab.workers
    node.signal_process(spec.name, number)
    if number == signal.SIGSTOP:
        return Undo(f"SIGCONT {spec.name} on {node.name}", lambda: node.signal_process(spec.name, signal.SIGCONT))
    if speaker:
        return Undo("nothing: podnet-agent starts its speaker again", lambda: None)

    def start() -> None:
        if not node.alive(spec.name):
            ctx.lab.start_process(node.name, spec.name)

    return Undo(f"start {spec.name} on {node.name} (if it is not running)", start)


KIND = FaultKind("process", Process, apply)
