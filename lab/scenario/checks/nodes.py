"""`nodes`: the cluster's nodes as the operator left them in the store (what `podnet node list` shows)."""

from __future__ import annotations

import json

from pydantic import Field, model_validator

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult


class NodeCondition(Strict):
    node: str
    reason: str = Field(description="e.g. ClusterPoolExhausted")
    message_contains: str | None = None


class Nodes(Strict):
    pod_cidrs: dict[str, str] | None = Field(default=None, description="node -> its pod CIDR, or none")
    condition: NodeCondition | None = None

    @model_validator(mode="after")
    def _one(self) -> Nodes:
        if (self.pod_cidrs is None) == (self.condition is None):
            raise ValueError("give exactly one of pod_cidrs, condition")
        return self


def evaluate(ctx: Context, check: Nodes) -> CheckResult:
    """Runs `podnet node list --json` on the control node, against the cluster's store."""
    control = ctx.lab.control
    if control is None:
        return CheckResult("nodes", "cluster nodes", False, "a control node", "this topology has none")
    where = f"{control.name}: podnet node list"
    proc = control.cmd("podnet", "node", "list", "--json", check=False, env=ctx.lab.node_env(control.name))
    if proc.returncode != 0:
        return CheckResult("nodes", "cluster nodes", False, "podnet node list succeeds", proc.stderr.strip(), where)
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    if check.pod_cidrs is not None:
        want = dict(check.pod_cidrs)
        got = {
            name: ", ".join(rows[name]["pod-cidrs"]) or "none" if name in rows else "not registered" for name in want
        }
        return CheckResult(
            "nodes", f"pod CIDRs of {', '.join(want)}", got == want, json.dumps(want), json.dumps(got), where
        )
    assert check.condition is not None
    c = check.condition
    condition = (rows.get(c.node) or {}).get("condition") or {}
    ok = condition.get("reason") == c.reason and (c.message_contains or "") in condition.get("message", "")
    expected = c.reason + (f": …{c.message_contains}…" if c.message_contains else "")
    actual = f"{condition.get('reason')}: {condition.get('message')}" if condition else "no condition"
    return CheckResult("nodes", f"condition of {c.node}", ok, expected, actual, where)


KIND = CheckKind("nodes", Nodes, evaluate)
