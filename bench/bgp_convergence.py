"""BGP convergence: agent start → the node's pod CIDR in the ToR's kernel table, and stop → withdrawn.

Brings up the default lab (ToR running bird2, two workers, the control
node), then restarts node2's agent repeatedly, polling the ToR's kernel
table (`ip route show proto bird`) every 20 ms. The reference is bird's own
session set-up: the same clock also times how long the ToR takes to learn
the route once the agent's bird speaker is running.

    python bench/bgp_convergence.py [--cycles 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from lab.backends.lab import AnyLab as Lab
from lab.backends.registry import make_lab
from lab.model.topology import load_topology


def wait_route(lab: Lab, cidr: str, present: bool, timeout_s: float = 60.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if (f"{cidr} via " in lab.tor.cmd("ip", "route", "show", "proto", "bird").stdout) == present:
            return time.perf_counter()
        time.sleep(0.02)
    raise RuntimeError(f"{cidr} still {'absent' if present else 'present'} on the ToR after {timeout_s}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=10)
    args = parser.parse_args()
    console = Console(width=140)
    lab = make_lab(load_topology("default"))
    starts, readies, withdraws = [], [], []
    try:
        with console.status("lab up…"):
            lab.up()
        cidr = lab.pod_cidr("node2")
        assert cidr is not None
        with console.status(f"{args.cycles} agent stop/start cycles on node2…"):
            for _ in range(args.cycles):
                t0 = time.perf_counter()
                lab.stop_process("node2", "podnet-agent")
                withdraws.append(wait_route(lab, cidr, present=False) - t0)
                t0 = time.perf_counter()
                lab.start_process("node2", "podnet-agent")
                ready = time.perf_counter()
                routed = wait_route(lab, cidr, present=True)
                starts.append(routed - t0)
                readies.append(routed - ready)
    finally:
        lab.down()
    table = Table(title=f"BGP convergence on the ToR (bird2), {args.cycles} cycles, node2's pod CIDR {cidr}")
    for column in ("", "median s", "min s", "max s"):
        table.add_column(column, justify="left" if not column else "right")
    for label, values in (
        ("agent start → route in the ToR's kernel table", starts),
        ("  of which: agent ready (healthz ok) → route", readies),
        ("agent stop → route withdrawn", withdraws),
    ):
        table.add_row(label, f"{statistics.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
