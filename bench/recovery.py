"""Recovery times under faults, measured with the lab's own fault steps (medians and ranges over cycles).

On the default topology (eBPF datapath), each cycle: node1's agent killed
(SIGKILL) then started — until its API serves, until every endpoint is ready
again, until its pod CIDR is back on the ToR; the ToR's BGP session to node1
disabled then enabled — until the route is back; etcd stopped while node2's
agent restarts, then started — until node2 has its pod CIDR again. A UDP
flow between two pods of node1 (one datagram every 10 ms) counts what the
agent's crashes cost existing traffic; the same on the `routes` topology
(plain per-pod routes) for comparison.

    python bench/recovery.py [--cycles 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from lab.model.topology import load_topology
from lab.scenario.model import Scenario
from lab.scenario.results import ScenarioRun
from lab.session import LabSession, Run

OUT = Path(__file__).resolve().parents[1] / "artifacts" / "bench-recovery"
IMAGE_RUN = ["run", "-d", "--net", "podnet-net"]


def setup_steps() -> list[dict[str, Any]]:
    return [
        {"name": "network", "docker": {"node": "node1", "args": ["network", "create", "--driver", "podnet", "--ipam-driver", "podnet", "podnet-net"]}},
        {"name": "network on node2", "docker": {"node": "node2", "args": ["network", "create", "--driver", "podnet", "--ipam-driver", "podnet", "podnet-net"]}},
        {"name": "server", "docker": {"node": "node1", "args": [*IMAGE_RUN, "--name", "srv", "-l", "id=srv", "{image}", "sleep", "3600"]}},
        {"name": "client", "docker": {"node": "node1", "args": [*IMAGE_RUN, "--name", "cli", "-l", "id=cli", "{image}", "sleep", "3600"]}},
        {"name": "flow", "connections": {"udp": {"proto": "udp", "from": {"node": "node1", "container": "cli"}, "to": {"node": "node1", "container": "srv"}, "port": 9001}}},
        {"name": "flowing", "within": 10, "checks": [{"connection": {"name": "udp", "node": "node1", "min_count": 20, "max_gap": 1000000, "max_silence_ms": 1000000}}]},
    ]  # fmt: skip


def agent_cycle(i: int) -> list[dict[str, Any]]:
    tor_has = {"routes": {"node": "tor", "has": {"dst": "{node1.pod_cidr}", "gateway": "{node1.ip}", "proto": "bird"}}}
    return [
        {"name": f"agent {i}: kill", "fault": {"id": f"a{i}", "process": {"node": "node1", "name": "podnet-agent"}}},
        {"name": f"agent {i}: start (API serving)", "restore": {"fault": f"a{i}"}},
        {
            "name": f"agent {i}: endpoints ready",
            "within": 60,
            "checks": [{"endpoints": {"node": "node1", "ready": True}}],
        },
        {"name": f"agent {i}: route on the ToR", "within": 60, "checks": [tor_has]},
    ]


def bgp_cycle(i: int) -> list[dict[str, Any]]:
    route = {"dst": "{node1.pod_cidr}", "gateway": "{node1.ip}", "proto": "bird"}
    return [
        {"name": f"bgp {i}: session down", "fault": {"id": f"b{i}", "bgp": {"peer": "node1"}}},
        {"name": f"bgp {i}: withdrawn", "within": 30, "checks": [{"routes": {"node": "tor", "lacks": {"dst": "{node1.pod_cidr}"}}}]},
        {"name": f"bgp {i}: session up", "restore": {"fault": f"b{i}"}},
        {"name": f"bgp {i}: route back", "within": 60, "checks": [{"routes": {"node": "tor", "has": route}}]},
    ]  # fmt: skip


def etcd_cycle(i: int) -> list[dict[str, Any]]:
    cidr = {"agent": {"node": "node2", "path": "/v1/healthz", "field": "pod-cidr", "equals": "{node2.pod_cidr}"}}
    return [
        {"name": f"etcd {i}: stop", "fault": {"id": f"e{i}", "store": {}}},
        {
            "name": f"etcd {i}: node2's agent restarts, waits",
            "process": {"node": "node2", "name": "podnet-agent", "action": "restart"},
        },
        {"name": f"etcd {i}: start", "restore": {"fault": f"e{i}"}},
        {"name": f"etcd {i}: node2 has its pod CIDR", "within": 60, "checks": [cidr]},
    ]


def seconds(run: ScenarioRun, suffix: str, waited: bool = True) -> list[float]:
    return [
        (s.waited_s if waited else s.seconds) or 0.0
        for s in run.steps
        if s.name.endswith(suffix) and (s.waited_s is not None or not waited)
    ]


def lost(run: ScenarioRun) -> int:
    """Datagrams the UDP flow lost over the whole run (its receiver's sequence gaps)."""
    for step in reversed(run.steps):
        for check in step.checks:
            if check.kind == "connection":
                return int(check.data.get("gaps", 0))
    return -1


def run_topology(run: Run, topology: str, steps: list[dict[str, Any]], console: Console) -> ScenarioRun:
    final = {"name": "the flow at the end", "checks": [{"connection": {"name": "udp", "node": "node1", "max_gap": 1000000, "max_silence_ms": 1000000}}]}  # fmt: skip
    scenario = Scenario.model_validate({"name": f"recovery-{topology}", "steps": [*setup_steps(), *steps, final]})
    session = LabSession(run, load_topology(topology), console=console)
    session.up()
    try:
        return session.run(scenario)
    finally:
        session.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    console = Console(width=150)
    run = Run(OUT)
    cycles = range(1, args.cycles + 1)
    bpf = run_topology(
        run, "default", [s for i in cycles for s in [*agent_cycle(i), *bgp_cycle(i), *etcd_cycle(i)]], console
    )
    routes = run_topology(run, "routes", [s for i in cycles for s in agent_cycle(i)], console)
    table = Table(
        title=f"recovery under faults, {args.cycles} cycles (default topology, eBPF; routes for the last row)"
    )
    for column in ("", "median", "min", "max", "goal"):
        table.add_column(column, justify="left" if not column else "right")

    def row(label: str, values: list[float], goal: str) -> None:
        if values:
            table.add_row(
                label, f"{statistics.median(values):.2f} s", f"{min(values):.2f} s", f"{max(values):.2f} s", goal
            )
        else:
            table.add_row(label, "-", "-", "-", goal)

    row("agent kill -9 → start → API serving", seconds(bpf, "start (API serving)", waited=False), "< 2 s")
    row("  → every endpoint ready again", seconds(bpf, "endpoints ready"), "")
    row("  → its pod CIDR on the ToR again", seconds(bpf, "route on the ToR"), "")
    row("ToR session down → withdrawn on the ToR", seconds(bpf, "withdrawn"), "")
    row("ToR session up → route back", seconds(bpf, "route back"), "< 3 s")
    row("etcd back → a waiting node has its pod CIDR", seconds(bpf, "has its pod CIDR"), "")
    console.print(table)
    console.print(
        f"UDP datagrams lost by an existing pod-to-pod flow over {args.cycles} agent crashes: "
        f"eBPF {lost(bpf)} (goal 0), routes {lost(routes)}"
    )
    failed = [r.name for r in (bpf, routes) if not r.passed]
    for name in failed:
        console.print(f"[red]{name} did not pass: {next(r.failure for r in (bpf, routes) if r.name == name)}[/]")
    console.print(f"report: {run.write()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
