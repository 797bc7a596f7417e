"""`allocations`: the node agent's IPAM: an IP held or released, its owner, inside the pod CIDR,
IPs distinct, how many endpoints and allocations there are."""

from __future__ import annotations

import ipaddress

from pydantic import Field, model_validator

from lab.model.files import Strict
from lab.scenario.context import Context
from lab.scenario.kinds import CheckKind
from lab.scenario.results import CheckResult


class Allocations(Strict):
    node: str
    ip: str | None = None
    held: bool = True
    owner_prefix: str | None = None
    in_pod_cidr: bool | None = None
    distinct: list[str] | None = None
    endpoints: int | None = Field(default=None, ge=0, description="how many endpoints the agent has")
    allocated: int | None = Field(default=None, ge=0, description="how many IPs are held, the router IP included")

    @model_validator(mode="after")
    def _one(self) -> Allocations:
        modes = {
            "ip": self.ip is not None,
            "distinct": self.distinct is not None,
            "endpoints/allocated": self.endpoints is not None or self.allocated is not None,
        }
        given = [k for k, v in modes.items() if v]
        if len(given) != 1:
            raise ValueError(f"give exactly one of ip, distinct, endpoints/allocated (got {given or 'none'})")
        return self


def evaluate(ctx: Context, check: Allocations) -> CheckResult:
    node = ctx.node(check.node)
    agent = node.agent()
    state = agent.request("GET", "/v1/ipam")
    held = {a["ip"]: a for a in state["allocations"]}
    where = f"{node.name}: podnet ipam list"
    if check.distinct is not None:
        ips = check.distinct
        ok = len(set(ips)) == len(ips) and all(ip in held for ip in ips)
        return CheckResult(
            "allocations",
            f"{', '.join(ips)} distinct and held on {node.name}",
            ok,
            "all different, all allocated",
            f"{ips}; held: {[ip for ip in ips if ip in held]}",
            where,
        )
    if check.endpoints is not None or check.allocated is not None:
        endpoints = len(agent.request("GET", "/v1/endpoint"))
        want = {"endpoints": check.endpoints, "allocated IPs": check.allocated}
        got = {"endpoints": endpoints, "allocated IPs": len(held)}
        ok = all(want[k] is None or want[k] == got[k] for k in want)
        shown = {k: v for k, v in want.items() if v is not None}
        return CheckResult(
            "allocations", f"{node.name} holds {shown}", ok, str(shown), f"{got}; held: {sorted(held)}", where
        )
    assert check.ip is not None
    record = held.get(check.ip)
    if not check.held:
        actual = "allocated to " + record["owner"] if record else "not allocated"
        return CheckResult(
            "allocations", f"{check.ip} released on {node.name}", record is None, "not allocated", actual, where
        )
    problems = []
    if record is None:
        problems.append("not allocated")
    elif check.owner_prefix and not record["owner"].startswith(check.owner_prefix):
        problems.append(f"owner {record['owner']!r} does not start with {check.owner_prefix!r}")
    if check.in_pod_cidr is not None:
        inside = ipaddress.ip_address(check.ip) in ipaddress.ip_network(state["pod-cidr"])
        if inside != check.in_pod_cidr:
            problems.append(f"{'not ' if check.in_pod_cidr else ''}inside pod CIDR {state['pod-cidr']}")
    expected = (
        "allocated"
        + (f", owner {check.owner_prefix}…" if check.owner_prefix else "")
        + (f", inside the pod CIDR {state['pod-cidr']}" if check.in_pod_cidr else "")
    )
    actual = (f"owner {record['owner']}" if record else "not allocated") + (
        f"; {'; '.join(problems)}" if problems else ""
    )
    return CheckResult("allocations", f"{check.ip} on {node.name}", not problems, expected, actual, where)


KIND = CheckKind("allocations", Allocations, evaluate)
