"""`agent`: a value in a node agent's API (`GET <path>`, then a dotted field), equal to or containing
a text — e.g. `{node: node2, path: /v1/healthz, field: store.state, equals: failure}`."""

from __future__ import annotations

import json

from pydantic import Field, model_validator

from lab.model.files import Strict
from lab.model.variables import dig
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult


class Agent(Strict):
    node: str
    path: str = Field(pattern=r"^/v1/[a-z0-9/_-]*$", description="an agent API path, e.g. /v1/healthz")
    field: str = Field(description="dotted path into the JSON, e.g. ipam.message")
    equals: str | None = None
    contains: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Agent:
        if (self.equals is None) == (self.contains is None):
            raise ValueError("give exactly one of equals, contains")
        return self


def evaluate(ctx: Context, check: Agent) -> CheckResult:
    node = ctx.node(check.node)
    data = node.agent(timeout=5).request("GET", check.path)
    description = f"{node.name} {check.path} {check.field}"
    try:
        found = dig(data, check.field)
        value = found if isinstance(found, str) else json.dumps(found)
    except (KeyError, IndexError, ValueError):
        value = f"(no field {check.field})"
    if check.equals is not None:
        ok, expected = value == check.equals, check.equals
    else:
        assert check.contains is not None
        ok, expected = check.contains in value, f"contains {check.contains!r}"
    return CheckResult(
        "agent", description, ok, expected, value[:400], f"{node.name}: podnet status / curl {check.path}"
    )


KIND = CheckKind("agent", Agent, evaluate)
