"""`connection`: a flow a `connections` step opened, as its receiver saw it so far: never reset, no
sequence gap, the longest silence between two arrivals within a budget (per backend if need be: VMs
under TCG are slower), at least some packets arrived, and it is flowing now (a silence still going on
is not yet a silence: `flowing_ms` judges it)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult
from lab.scenario.steps.connections import stats_file


class Connection(Strict):
    name: str
    node: str = Field(description="the receiver's node (where its stats are)")
    no_reset: bool = True
    max_gap: int = Field(default=0, ge=0, description="sequence numbers allowed missing (UDP: lost datagrams)")
    max_silence_ms: int | dict[str, int] = Field(
        default=500, description="the longest silence allowed; or per backend, e.g. {netns: 300, vagrant: 3000}"
    )
    min_count: int = Field(default=10, ge=0)
    flowing_ms: int = Field(default=1000, ge=1, description="it is flowing now: the last arrival at most this long ago")


def _read(ctx: Context, node: str, path: str) -> dict[str, Any]:
    out = ctx.node(node).cmd("cat", path, check=False).stdout
    try:
        data: dict[str, Any] = json.loads(out)
    except ValueError:
        return {}
    return data


def evaluate(ctx: Context, check: Connection) -> CheckResult:
    budget = check.max_silence_ms
    if isinstance(budget, dict):
        budget = budget.get(ctx.lab.backend, max(budget.values()))
    received = _read(ctx, check.node, stats_file(ctx, check.name, "receiver"))
    where = f"{check.node}: {stats_file(ctx, check.name, 'receiver')}"
    if not received:
        return CheckResult("connection", f"flow {check.name}", False, "the receiver's stats", "none yet", where)
    problems = []
    if check.no_reset and (received.get("reset") or received.get("closed")):
        problems.append("the connection was reset" if received.get("reset") else "the connection was closed")
    if received["gaps"] > check.max_gap:
        problems.append(f"{received['gaps']} sequence number(s) missing")
    if received["max_silence_ms"] > budget:
        problems.append(f"silent for {received['max_silence_ms']:.0f} ms")
    now = received.get("silent_now_ms", 0.0)
    if now > check.flowing_ms:
        problems.append(f"nothing for the last {now:.0f} ms")
    if received["count"] < check.min_count:
        problems.append(f"only {received['count']} arrived")
    expected = (
        f"no reset, ≤ {check.max_gap} missing, silences ≤ {budget} ms, ≥ {check.min_count} arrived, "
        f"flowing (last arrival ≤ {check.flowing_ms} ms ago)"
    )
    actual = (
        f"{received['count']} arrived, {received['gaps']} missing, longest silence {received['max_silence_ms']:.0f} ms"
        f"{', reset' if received.get('reset') else ''}" + (f": {'; '.join(problems)}" if problems else "")
    )
    return CheckResult(
        "connection", f"flow {check.name} uninterrupted", not problems, expected, actual, where, data=received
    )


KIND = CheckKind("connection", Connection, evaluate)
