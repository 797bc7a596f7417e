"""`fault`: apply a fault (one key: its kind, see lab/scenario/faults/) under an `id`; it stays until a
`restore` step names it, or until the scenario ends (then it is restored automatically, after cleanup)."""

from __future__ import annotations

from pydantic import Field, create_model

from lab.scenario.context import ActiveFault, Context, StepFailed
from lab.scenario.faults import FAULTS
from lab.scenario.kinds import OneKind, Outcome, StepKind


class FaultBase(OneKind):
    KINDS = FAULTS
    WHAT = "fault"

    id: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9-]*$", description="its name for `restore` (default: the kind)"
    )

    @property
    def name(self) -> str:
        return self.id or self.kind


Fault: type[FaultBase] = create_model(
    "Fault",
    __base__=FaultBase,
    **{name: (kind.spec | None, Field(default=None, description=kind.doc)) for name, kind in FAULTS.items()},  # type: ignore[call-overload]
)


def run(ctx: Context, spec: FaultBase) -> Outcome:
    if spec.name in ctx.faults:
        raise StepFailed(f"fault {spec.name!r} is already applied: restore it first, or give this one another id")
    kind = spec.kind
    undo = FAULTS[kind].apply(ctx, spec.spec)
    what = f"{kind} fault {spec.name}: {spec.spec.model_dump(exclude_defaults=True)}"
    ctx.faults[spec.name] = ActiveFault(spec.name, what, undo.description, undo.call)
    return Outcome(f"fault {spec.name}", stdout=f"applied {what}\nrestore: {undo.description}")


def requires(spec: FaultBase) -> frozenset[str]:
    return FAULTS[spec.kind].requires(spec.spec)


KIND = StepKind("fault", Fault, run, requires=requires)
