"""The CNI plugin as a runtime execs it: the C shim (built with ASan and UBSan, any finding fatal)
forwarding to a real agent with a fake kernel, given generated environments and configurations (issue 13)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TypeVar

from hypothesis import example, given
from hypothesis import strategies as st

from podnet.agent.service import Agent
from podnet.cni.spec import endpoint_id
from tests.fuzz.cni import CNICase, cni_cases
from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.node import FuzzNode
from tests.fuzz.outcomes import ENDPOINT_CHANGES, Outcome, Verdict, after_request, json_or_none, judge
from tests.fuzz.probes import CNI as SEEDS
from tests.fuzz.verdicts import shim as judge_shim
from tests.interfaces import ShimRun, run_shim

T = TypeVar("T")
INTERFACE = "CNI (through the shim)"
SLACK_S = 2.0  # past its deadline (agentTimeout, else 30 s), a call is a hang


def deadline_of(stdin: bytes) -> float:
    conf = json_or_none(stdin)
    timeout = conf.get("agentTimeout") if isinstance(conf, dict) else None
    valid = isinstance(timeout, int | float) and not isinstance(timeout, bool) and 0 < timeout <= 3600
    return min(float(timeout), 30.0) if valid else 30.0  # type: ignore[arg-type]


def own_ip(output: object, env: dict[str, str]) -> str:
    """The IP an ADD result puts on CNI_IFNAME in CNI_NETNS: podnet's (a chain's prevResult comes first)."""
    result = output if isinstance(output, dict) else {}
    interfaces, ips = result.get("interfaces") or [], result.get("ips") or []
    for ip in ips if isinstance(ips, list) else []:
        index = ip.get("interface") if isinstance(ip, dict) else None
        if isinstance(index, int) and 0 <= index < len(interfaces):
            target = interfaces[index]
            if target.get("name") == env.get("CNI_IFNAME") and target.get("sandbox") == env.get("CNI_NETNS"):
                return str(ip.get("address", "")).split("/")[0]
    return ""


def semantics(agent: Agent, case: CNICase, output: object) -> str:
    """What an accepted ADD or DEL must have done: '' or what it did not."""
    command = case.env.get("CNI_COMMAND")
    if command not in ("ADD", "DEL"):
        return ""
    endpoint = endpoint_id(case.env.get("CNI_CONTAINERID", ""), case.env.get("CNI_IFNAME", ""))
    held = {str(a.ip): a.owner for a in agent.ipam.allocations()}
    if command == "ADD":
        ip = own_ip(output, case.env)
        if held.get(ip) != f"endpoint:{endpoint}":
            return f"ADD answered {ip or output!r}, held by {held.get(ip)!r}, not by endpoint {endpoint}"
    elif endpoint in {e.id for e in agent.endpoints.list()} or f"endpoint:{endpoint}" in held.values():
        return f"DEL succeeded, but endpoint {endpoint} or its IP is still there"
    return ""


def try_one(node: FuzzNode, shim: Path, case: CNICase) -> None:
    env, stdin = case.for_agent(node.socket)
    limit = deadline_of(stdin) + SLACK_S
    before = node.snapshot()
    run: ShimRun | None
    try:
        run = run_shim(shim, stdin, env, timeout=limit + 5)  # type: ignore[arg-type]
    except subprocess.TimeoutExpired:
        run = None
    command = case.env.get("CNI_COMMAND")
    verdict = judge_shim(run, command, limit)
    if verdict.outcome == Outcome.fine and run is not None:
        problem = semantics(node.running.agent, case, run.output)
        if problem:
            verdict = Verdict(Outcome.unsafe, problem)
    allowed = ENDPOINT_CHANGES if command in ("ADD", "DEL", "GC") else frozenset()
    verdict = after_request(node.running.agent, before, node.snapshot(), verdict, allowed)
    judge(INTERFACE, verdict, case.describe())
    if verdict.outcome == Outcome.unsafe:
        node.restart()
        return
    problem = node.tidy()
    if problem:
        judge(INTERFACE, Verdict(Outcome.unsafe, problem), "clearing the node")
        node.restart()


def with_seeds(test: T) -> T:
    for seed in SEEDS:
        test = example(cases=seed)(test)
    return test


@with_seeds
@fuzz_settings("cni")
@given(cases=st.lists(cni_cases(), min_size=1, max_size=3))
def test_the_shim_and_plugin_answer_any_call_in_cni_form_and_keep_the_node_safe(
    node: FuzzNode, shim: Path, cases: list[CNICase]
) -> None:
    for case in cases:
        try_one(node, shim, case)
