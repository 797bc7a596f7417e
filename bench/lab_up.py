"""How long the lab takes: `lab up` / `lab down` for a ToR + 3 nodes, and the scenario suite.

Each node runs its own dockerd, podnet agent and plugin. The lab venv is built
once before timing (a changed impl/ pays that once, ~45 s, and it is shown).

    python bench/lab_up.py [--cycles 3] [--skip-suite]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from lab.backends.netns.lab import NetnsLab as Lab
from lab.deploy import lab_venv
from lab.model.topology import load_topology

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--skip-suite", action="store_true", help="do not time pytest tests/lab")
    args = parser.parse_args()
    console = Console(width=140)
    t0 = time.perf_counter()
    _, built = lab_venv()
    console.print(f"lab venv: {'built' if built else 'cached'} in {time.perf_counter() - t0:.1f}s")
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
    table.add_row("lab up", f"{statistics.median(ups):.2f}", f"{min(ups):.2f}", f"{max(ups):.2f}", "< 10 s")
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
