"""`plugin_calls`: the libnetwork calls dockerd made to the plugin during the step, in this order.

The plugin's debug log names each call ("podnet.docker: /NetworkDriver.Join …"): podnet-docker's,
or podnet-agent's where the agent serves the plugin (the lab logs its calls at debug there too)."""

from __future__ import annotations

from pydantic import Field

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult


class PluginCalls(Strict):
    node: str
    sequence: list[str] = Field(min_length=1, description="libnetwork calls, in this order (others may come between)")


def _mark(node: str) -> str:
    return f"plugin_calls:{node}"


def prepare(ctx: Context, check: PluginCalls) -> None:
    """Where the plugin's log ends before the step: the calls after it are the step's."""
    node = ctx.node(check.node)
    ctx.marks[_mark(check.node)] = node.log_size(node.plugin_process())


def calls_in(log_text: str) -> list[str]:
    return [
        line.split("podnet.docker: ", 1)[1].split(" ", 1)[0]
        for line in log_text.splitlines()
        if "podnet.docker: /" in line
    ]


def evaluate(ctx: Context, check: PluginCalls) -> CheckResult:
    node = ctx.node(check.node)
    process = node.plugin_process()
    calls = calls_in(node.log_text(process, int(ctx.marks.get(_mark(check.node), 0))))
    position = 0
    for call in calls:
        if position < len(check.sequence) and call == check.sequence[position]:
            position += 1
    return CheckResult(
        "plugin_calls",
        f"dockerd called the plugin on {node.name} in order",
        position == len(check.sequence),
        " → ".join(check.sequence),
        " → ".join(calls) or "no calls",
        f"logs/{node.name}/{process}.log",
        data={"node": node.name, "calls": calls, "expected": check.sequence},
    )


KIND = CheckKind("plugin_calls", PluginCalls, evaluate, prepare=prepare)
