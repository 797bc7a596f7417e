"""How long the lab takes: `lab up` / `lab down` for a ToR + 3 nodes, and the scenario suite;
and how long one podnet-agent takes to serve.

Each node runs its own dockerd, podnet agent and plugin. The lab venv is built
once before timing (a changed impl/ pays that once, ~45 s, and it is shown).
Agent start: a fresh node namespace, `podnet-agent --pod-cidr …` (eBPF
datapath, SQLite) from exec until its healthz answers with the pod CIDR
(polled every 50 ms), and the agent's imports alone, with the RSS they take.

    python bench/lab_up.py [--cycles 3] [--skip-suite] [--skip-lab]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from lab.backends.netns.host import remove_tree
from lab.backends.netns.lab import NetnsLab as Lab
from lab.backends.netns.node import NetnsNode
from lab.deploy import lab_venv
from lab.model.topology import load_topology

REPO = Path(__file__).resolve().parents[1]
AGENT_GOAL_S = 0.7
# What a podnet-agent imports (podnet.cmd.agent itself imports the rest once it runs).
AGENT_MODULES = (
    "podnet.cmd.agent, podnet.agent.service, podnet.agent.server, podnet.agent.waiting, podnet.datapath.ebpf"
)
# As podnet-agent's main() imports them: aiohttp first, without the CA bundle (podnet.aiohttp_import).
AGENT_IMPORTS = (
    f"import resource; from podnet.aiohttp_import import import_aiohttp; import_aiohttp(); import {AGENT_MODULES}"
)
LAB_UP_GOAL_S = 4.0


def agent_start(python: Path, cycles: int, console: Console) -> None:
    """podnet-agent from exec to serving, and its imports alone (with their RSS)."""
    serving = []
    run_id = secrets.token_hex(3)
    root = Path(f"/tmp/podnet-bench-agent-{run_id}")
    node = NetnsNode("agentstart", run_id, root)
    try:
        node.create()
        for i in range(cycles + 1):  # the first start creates the host device and pins: not counted
            t = time.perf_counter()
            if i == 0:
                node.start_agent(str(python), "--pod-cidr", "10.63.0.0/24")
            else:
                node.start_agent(str(python))
            if i:
                serving.append(time.perf_counter() - t)
            node.stop("podnet-agent")
    finally:
        node.destroy()
        remove_tree(root)
    imports, rss = [], []
    for _ in range(cycles):
        t = time.perf_counter()
        out = subprocess.run(
            [str(python), "-c", f"{AGENT_IMPORTS}; print(resource.getrusage(0).ru_maxrss)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        imports.append(time.perf_counter() - t)
        rss.append(int(out) / 1024)
    table = Table(title=f"podnet-agent start ({cycles} starts, a restart each: pins and host device exist)")
    for column in ("", "median s", "min s", "max s", "goal"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(
        "exec → serving (healthz with pod CIDR)",
        f"{statistics.median(serving):.2f}",
        f"{min(serving):.2f}",
        f"{max(serving):.2f}",
        f"< {AGENT_GOAL_S} s",
    )
    table.add_row(
        f"the agent's imports alone (peak RSS {statistics.median(rss):.0f} MB)",
        f"{statistics.median(imports):.2f}",
        f"{min(imports):.2f}",
        f"{max(imports):.2f}",
        "",
    )
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--skip-suite", action="store_true", help="do not time pytest tests/lab")
    parser.add_argument("--skip-lab", action="store_true", help="only the agent's start")
    args = parser.parse_args()
    console = Console(width=140)
    t0 = time.perf_counter()
    python, built = lab_venv()
    console.print(f"lab venv: {'built' if built else 'cached'} in {time.perf_counter() - t0:.1f}s")
    agent_start(python, max(args.cycles, 5), console)
    if args.skip_lab:
        return 0
    ups, downs, steps = [], [], []
    topology = load_topology("three-nodes")
    for i in range(args.cycles):
        lab = Lab(topology)
        t = time.perf_counter()
        lab.up()
        ups.append(time.perf_counter() - t)
        steps.append(lab.timings)
        t = time.perf_counter()
        errors = lab.down()
        downs.append(time.perf_counter() - t)
        if errors:
            console.print(f"[yellow]cycle {i + 1}: {errors}[/]")
    table = Table(title=f"lab up / down, ToR + 3 nodes, {args.cycles} cycles")
    for column in ("", "median s", "min s", "max s", "goal"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(
        "lab up", f"{statistics.median(ups):.2f}", f"{min(ups):.2f}", f"{max(ups):.2f}", f"< {LAB_UP_GOAL_S:g} s"
    )
    table.add_row("lab down", f"{statistics.median(downs):.2f}", f"{min(downs):.2f}", f"{max(downs):.2f}", "")
    console.print(table)
    per_step: dict[str, list[float]] = {}
    for timings in steps:
        for what, _start, seconds in ((t.what, t.start, t.seconds) for t in timings):
            key = what.split(": ", 1)[-1] if what.startswith("node") else what
            per_step.setdefault(key, []).append(seconds)
    breakdown = Table(title="where lab up spends its time (summed over nodes, median of cycles)")
    breakdown.add_column("step")
    breakdown.add_column("seconds", justify="right")
    for what, values in per_step.items():
        per_cycle = len(values) // args.cycles or 1
        breakdown.add_row(what, f"{statistics.median(values) * per_cycle:.2f}")
    console.print(breakdown)
    if not args.skip_suite:
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/lab", "-q", "-p", "no:cacheprovider"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        suite = time.perf_counter() - t
        last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-200:]
        console.print(
            f"scenario suite (pytest tests/lab: lab up, every scenario, reports, lab down): "
            f"{suite:.1f}s — {last} (goal: full suite < 5 min)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
