"""The Vagrant backend against the netns backend, same machine, same scenario files.

Times the box build (cached always; cold with --cold, which rebuilds it),
`lab up` for the default topology (ToR, 2 workers, control node) on both
backends, each scenario's wall time on both, and the VMs' peak memory
(summed RSS of the qemu processes, sampled every second during the VM lab).
Then the VM lab's bring-up broken down: its steps, and per VM when it booted,
was provisioned and became ready, with how far the boots (and the
provisionings) overlapped — on average how many ran at once.

    python bench/vagrant_lab.py [--cold] [--scenarios docker-network-create ebpf-host-routing]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from lab import paths
from lab.backends.base import Timing
from lab.backends.vagrant import box
from lab.backends.vagrant.progress import overlap
from lab.model.topology import load_topology
from lab.scenario.model import load_scenario
from lab.session import LabSession, Run

OUT = Path(__file__).resolve().parents[1] / "artifacts" / "bench-vagrant"


def qemu_rss_mb() -> float:
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().startswith("qemu-system"):
                rss = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("VmRSS"))
                total += int(rss.split()[1])
        except (OSError, StopIteration):
            continue
    return total / 1024


class PeakMemory:
    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, qemu_rss_mb())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


GOAL_UP_S = 300  # issue 17: `lab up --backend vagrant`, default topology, TCG


def run_backend(
    run: Run, backend: str, names: list[str], console: Console
) -> tuple[float, dict[str, float], list[str], list[Timing]]:
    session = LabSession(run, load_topology("default"), backend, console=console)
    t = time.perf_counter()
    session.up()
    up = time.perf_counter() - t
    seconds, failures = {}, []
    try:
        for name in names:
            result = session.run(load_scenario(name, paths.scenarios()))
            seconds[name] = result.seconds
            if not result.passed:
                failures.append(f"{backend} {name}: {result.failure}")
    finally:
        session.close()
    return up, seconds, failures, list(session.lab.timings)


def breakdown(timings: list[Timing], console: Console) -> None:
    """The VM lab's bring-up: its steps, then boot / provision / ready per VM, and the overlap."""
    steps = Table(title="VM lab bring-up: steps (seconds since `lab up` began)")
    for column in ("step", "start s", "took s"):
        steps.add_column(column, justify="left" if column == "step" else "right")
    per_vm: dict[str, dict[str, Timing]] = {}
    for t in timings:
        vm, _, part = t.what.partition(": ")
        if part in ("boot", "provision", "ready"):
            per_vm.setdefault(vm, {})[part] = t
        else:
            steps.add_row(t.what, f"{t.start:.1f}", f"{t.seconds:.1f}")
    console.print(steps)
    vms = Table(title="each VM: boot (domain start to sshd), provision (provision.sh), ready (agent and plugin)")
    for column in ("VM", "boot starts", "boot s", "provision s", "ready s", "ready at"):
        vms.add_column(column, justify="left" if column == "VM" else "right")
    for vm, parts in per_vm.items():

        def cell(part: str, parts: dict[str, Timing] = parts) -> str:
            return f"{parts[part].seconds:.1f}" if part in parts else "-"

        ready = parts.get("ready")
        start = f"{parts['boot'].start:.1f}" if "boot" in parts else "-"
        at = f"{ready.start + ready.seconds:.1f}" if ready else "-"
        vms.add_row(vm, start, cell("boot"), cell("provision"), cell("ready"), at)
    console.print(vms)
    for part in ("boot", "provision"):
        spans = [(p[part].start, p[part].start + p[part].seconds) for p in per_vm.values() if part in p]
        total, wall, together = overlap(spans)
        console.print(
            f"{part} overlap: {len(spans)} VMs, {total:.0f} s of {part}s in {wall:.0f} s wall: "
            f"{together:.1f} at once on average (2 cores here)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="also time a cold box build (rebuilds the box)")
    parser.add_argument("--scenarios", nargs="+", default=["docker-network-create", "ebpf-host-routing"])
    args = parser.parse_args()
    console = Console(width=140)
    rows: list[tuple[str, str, str, str]] = []
    if args.cold:
        cold = box.build(force=True, report=lambda _: None)
        rows.append(("box build, cold", "", f"{cold.seconds:.0f}", f"{cold.size_bytes / 1e6:.0f} MB"))
    t = time.perf_counter()
    cached = box.build(report=lambda _: None)
    rows.append(("box build, cached", "", f"{time.perf_counter() - t:.1f}", "reused" if not cached.built else "built"))
    run = Run(OUT)
    netns_up, netns_s, failures, _ = run_backend(run, "netns", args.scenarios, console)
    with PeakMemory() as memory:
        vm_up, vm_s, vm_failures, vm_timings = run_backend(run, "vagrant", args.scenarios, console)
    failures += vm_failures
    rows.append(
        (
            f"lab up (ToR, node1, node2, ctrl; goal ≤ {GOAL_UP_S} s on VMs)",
            f"{netns_up:.1f}",
            f"{vm_up:.1f}",
            f"{vm_up / netns_up:.1f}x",
        )
    )
    for name in args.scenarios:
        rows.append(
            (f"scenario {name}", f"{netns_s[name]:.1f}", f"{vm_s[name]:.1f}", f"{vm_s[name] / netns_s[name]:.1f}x")
        )
    rows.append(("peak memory of the VMs (qemu RSS)", "", f"{memory.peak:.0f} MB", ""))
    table = Table(title="Vagrant backend (VMs, TCG here) vs netns backend, same machine, same scenario files")
    for column in ("", "netns s", "vagrant s", "vagrant / netns"):
        table.add_column(column, justify="left" if not column else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    breakdown(vm_timings, console)
    for failure in failures:
        console.print(f"[red]{failure}[/]")
    console.print(f"report: {run.write()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
