"""`endpoint`: a field of a container's podnet endpoint (e.g. state: ready once its labels are known)."""

from __future__ import annotations

from lab.model.files import Strict
from lab.model.variables import dig
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult


class Endpoint(Strict):
    node: str
    container: str
    field: str
    equals: str


def evaluate(ctx: Context, check: Endpoint) -> CheckResult:
    node = ctx.node(check.node)
    description = f"{check.container}'s endpoint {check.field} = {check.equals}"
    where = f"{node.name}: podnet endpoint get (docker inspect {check.container} for its endpoint id)"
    endpoint_id = node.endpoint_id(check.container)
    if not endpoint_id:
        return CheckResult("endpoint", description, False, check.equals, f"{check.container} has no endpoint", where)
    data = node.agent().endpoint_get(endpoint_id)
    try:
        value = str(dig(data, check.field))
    except (KeyError, IndexError, ValueError):
        value = f"(no field {check.field})"
    return CheckResult("endpoint", description, value == check.equals, check.equals, value, where)


KIND = CheckKind("endpoint", Endpoint, evaluate)
