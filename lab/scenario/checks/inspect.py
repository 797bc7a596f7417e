"""`inspect`: a value in the JSON docker prints (`docker network inspect …`, `docker inspect …`)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from lab.model.files import Strict
from lab.model.variables import dig
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult


class Inspect(Strict):
    node: str
    docker: list[str] = Field(min_length=1)
    path: str = Field(description="dotted path into the JSON docker prints, e.g. 0.IPAM.Driver")
    equals: Any = None
    contains: str | None = None


def evaluate(ctx: Context, check: Inspect) -> CheckResult:
    node = ctx.node(check.node)
    proc = node.docker(*check.docker, check=False)
    what = f"{check.path} of docker {' '.join(check.docker)}"
    where = f"{node.name}: docker {' '.join(check.docker)}"
    try:
        value = dig(json.loads(proc.stdout), check.path)
    except (ValueError, KeyError, IndexError, TypeError):
        found = (proc.stderr or proc.stdout).strip()[:300]
        return CheckResult("inspect", what, False, f"a value at {check.path}", found, where)
    if check.contains is not None:
        ok, expected = check.contains in json.dumps(value), f"contains {check.contains!r}"
    else:
        ok, expected = value == check.equals, f"= {check.equals!r}"
    return CheckResult("inspect", what, ok, expected, json.dumps(value)[:300], where)


KIND = CheckKind("inspect", Inspect, evaluate)
