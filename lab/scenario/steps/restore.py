"""`restore`: take back a fault a `fault` step applied (by its id), or every fault still applied
(`all: true`, newest first)."""

from __future__ import annotations

from pydantic import model_validator

from lab.model.files import Strict
from lab.scenario.context import Context, StepFailed
from lab.scenario.kinds import Outcome, StepKind


class Restore(Strict):
    fault: str | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one(self) -> Restore:
        if (self.fault is None) == (not self.all):
            raise ValueError("give fault (its id) or all: true")
        return self


def restore(ctx: Context, name: str) -> str:
    """Undo one applied fault; what was done."""
    fault = ctx.faults.pop(name)
    fault.undo()
    return f"restored {name}: {fault.restore}"


def run(ctx: Context, spec: Restore) -> Outcome:
    if spec.fault is not None and spec.fault not in ctx.faults:
        applied = ", ".join(ctx.faults) or "none"
        raise StepFailed(f"no fault {spec.fault!r} is applied (applied: {applied})")
    names = [spec.fault] if spec.fault is not None else list(reversed(ctx.faults))
    done = [restore(ctx, name) for name in names]
    return Outcome(f"restore {', '.join(names) or '(nothing applied)'}", stdout="\n".join(done))


KIND = StepKind("restore", Restore, run)
