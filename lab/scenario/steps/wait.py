"""`wait`: sleep (prefer a step's `within`, which waits only as long as it must)."""

from __future__ import annotations

import time

from pydantic import Field

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import Outcome, StepKind


class Wait(Strict):
    seconds: float = Field(gt=0, le=300)


def run(ctx: Context, spec: Wait) -> Outcome:
    time.sleep(spec.seconds)
    return Outcome(f"sleep {spec.seconds}")


KIND = StepKind("wait", Wait, run)
