"""Check evaluators that look at a live lab: allocations, cluster nodes, routes, inspect, plugin calls.

Each returns a `CheckResult` with what was expected, what was found, and where
to look when they differ.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab.node import LabNode

if TYPE_CHECKING:
    from lab.lab import AnyLab
from lab.scenario import (
    AllocationsCheck,
    CompareCheck,
    EndpointCheck,
    InspectCheck,
    NodesCheck,
    PluginCallsCheck,
    RouteMatch,
    RoutesCheck,
)
from lab.variables import dig

PROTOS = {2: "kernel", 3: "boot", 4: "static", 12: "bird", 186: "bgp", 200: "podnet"}


@dataclass
class CheckResult:
    kind: str
    description: str
    passed: bool
    expected: str
    actual: str
    where: str = ""


def _agent(node: LabNode, path: str) -> Any:
    from podnet.api.client import AgentClient

    return AgentClient(str(node.agent_sock), timeout=10).request("GET", path)


def allocations(node: LabNode, check: AllocationsCheck) -> CheckResult:
    state = _agent(node, "/v1/ipam")
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
        endpoints = len(_agent(node, "/v1/endpoint"))
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
        return CheckResult(
            "allocations",
            f"{check.ip} released on {node.name}",
            record is None,
            "not allocated",
            "allocated to " + record["owner"] if record else "not allocated",
            where,
        )
    problems = []
    if record is None:
        problems.append("not allocated")
    else:
        if check.owner_prefix and not record["owner"].startswith(check.owner_prefix):
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


def cluster_nodes(lab: AnyLab, check: NodesCheck) -> CheckResult:
    """Runs `podnet node list --json` on the control node, against the cluster's store."""
    control = lab.control
    if control is None:
        return CheckResult("nodes", "cluster nodes", False, "a control node", "this topology has none")
    where = f"{control.name}: podnet node list"
    proc = control.cmd("podnet", "node", "list", "--json", check=False, env=lab.node_env(control.name))
    if proc.returncode != 0:
        return CheckResult("nodes", "cluster nodes", False, "podnet node list succeeds", proc.stderr.strip(), where)
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    if check.pod_cidrs is not None:
        want = {name: cidr for name, cidr in check.pod_cidrs.items()}
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


def _routes(node: LabNode, netns: str | None) -> list[dict[str, str]]:
    """The main table as iproute2 sees it (run on the node, so it works on every backend)."""
    enter = ["nsenter", f"--net={netns}"] if netns else []
    proc = node.cmd(*enter, "ip", "-N", "-j", "route", "show", "table", "main")
    found = []
    for route in json.loads(proc.stdout or "[]"):
        dst = route.get("dst", "")
        proto = int(route.get("protocol", 3))  # iproute2 leaves out proto boot
        found.append(
            {
                "dst": dst if dst == "default" or "/" in dst else f"{dst}/32",
                "gateway": route.get("gateway", ""),
                "dev": route.get("dev", ""),
                "proto": PROTOS.get(proto, str(proto)),
            }
        )
    return found


def _route_text(route: dict[str, str]) -> str:
    via = f" via {route['gateway']}" if route["gateway"] else ""
    return f"{route['dst']}{via} dev {route['dev']} proto {route['proto']}"


def _match(route: dict[str, str], want: RouteMatch) -> bool:
    dst = want.dst if want.dst == "default" or "/" in want.dst else f"{want.dst}/32"
    return (
        route["dst"] == dst
        and (want.gateway is None or route["gateway"] == want.gateway)
        and (want.dev is None or route["dev"] == want.dev)
        and (want.proto is None or route["proto"] == want.proto)
    )


def pod_netns(node: LabNode, pod: str) -> str:
    """Where a CNI step's pod namespace lives (on the node's machine)."""
    return f"/run/netns/{node.pod_netns_prefix}-{pod}"


def routes(node: LabNode, check: RoutesCheck) -> CheckResult:
    if check.pod:
        netns, where = pod_netns(node, check.pod), f"{node.name}: nsenter --net={pod_netns(node, check.pod)} ip route"
    elif check.container:
        pid = node.docker("inspect", "-f", "{{.State.Pid}}", check.container).stdout.strip()
        netns, where = f"/proc/{pid}/ns/net", f"{node.name}: docker exec {check.container} ip route"
    else:
        netns, where = None, f"{node.name}: ip route"
    table = _routes(node, netns)
    want = check.has or check.lacks
    assert want is not None
    hit = any(_match(r, want) for r in table)
    wanted = " ".join(f"{k} {v}" for k, v in want.model_dump(exclude_none=True).items())
    subject = f"{check.container or check.pod} on {node.name}" if check.container or check.pod else node.name
    return CheckResult(
        "routes",
        f"{subject} {'has' if check.has else 'lacks'} route {wanted}",
        hit if check.has else not hit,
        f"{'a' if check.has else 'no'} route {wanted}",
        "; ".join(_route_text(r) for r in table) or "empty table",
        where,
    )


def inspect(node: LabNode, check: InspectCheck) -> CheckResult:
    proc = node.docker(*check.docker, check=False)
    where = f"{node.name}: docker {' '.join(check.docker)}"
    try:
        value = dig(json.loads(proc.stdout), check.path)
    except (ValueError, KeyError, IndexError, TypeError):
        return CheckResult(
            "inspect",
            f"{check.path} of docker {' '.join(check.docker)}",
            False,
            f"a value at {check.path}",
            (proc.stderr or proc.stdout).strip()[:300],
            where,
        )
    if check.contains is not None:
        ok, expected = check.contains in json.dumps(value), f"contains {check.contains!r}"
    else:
        ok, expected = value == check.equals, f"= {check.equals!r}"
    return CheckResult(
        "inspect", f"{check.path} of docker {' '.join(check.docker)}", ok, expected, json.dumps(value)[:300], where
    )


def plugin_calls(node: LabNode, check: PluginCallsCheck, log_text: str, where: str) -> CheckResult:
    calls = [
        line.split("podnet.docker: ", 1)[1].split(" ", 1)[0]
        for line in log_text.splitlines()
        if "podnet.docker: /" in line
    ]
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
        where,
    )


def compare(check: CompareCheck) -> CheckResult:
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


def endpoint(node: LabNode, check: EndpointCheck) -> CheckResult:
    from podnet.api.client import AgentClient

    description = f"{check.container}'s endpoint {check.field} = {check.equals}"
    endpoint_id = node.endpoint_id(check.container)
    if not endpoint_id:
        return CheckResult("endpoint", description, False, check.equals, f"{check.container} has no endpoint")
    data = AgentClient(str(node.agent_sock), timeout=10).endpoint_get(endpoint_id)
    try:
        value = str(dig(data, check.field))
    except (KeyError, IndexError, ValueError):
        value = f"(no field {check.field})"
    return CheckResult("endpoint", description, value == check.equals, check.equals, value)
