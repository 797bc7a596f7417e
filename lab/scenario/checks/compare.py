"""`compare`: two values (usually captured before and after): equal, or apart by a number."""

from __future__ import annotations

from pydantic import Field, model_validator

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult


class Compare(Strict):
    left: str
    right: str
    equals: bool | None = Field(default=None, description="left == right (true) or != (false), as text")
    difference: int | None = Field(default=None, description="left - right == N (numbers)")
    at_least: int | None = Field(default=None, description="left - right >= N (numbers)")
    what: str = Field(default="", description="what the values are, for the report")

    @model_validator(mode="after")
    def _one(self) -> Compare:
        given = [k for k in ("equals", "difference", "at_least") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of equals, difference, at_least (got {given or 'none'})")
        return self


def evaluate(ctx: Context, check: Compare) -> CheckResult:
    what = check.what or "values"
    if check.equals is not None:
        same = check.left == check.right
        expected = f"{what} {'unchanged' if check.equals else 'changed'}"
        return CheckResult("compare", expected, same == check.equals, expected, f"{check.left!r} vs {check.right!r}")
    try:
        delta = int(check.left) - int(check.right)
    except ValueError:
        return CheckResult("compare", what, False, "two numbers", f"{check.left!r}, {check.right!r}")
    if check.difference is not None:
        expected = f"{what} up by exactly {check.difference}"
        ok = delta == check.difference
    else:
        assert check.at_least is not None
        expected = f"{what} up by at least {check.at_least}"
        ok = delta >= check.at_least
    return CheckResult("compare", expected, ok, expected, f"up by {delta} ({check.right} -> {check.left})")


KIND = CheckKind("compare", Compare, evaluate)
