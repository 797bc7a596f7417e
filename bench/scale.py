"""Scale: labs of 8, 16, 32 and 64 CNI workers on one machine (issue 18), and how each number grows per node.

Each size is scale-64 (lab/topologies/scale-64.yaml: 2 spines, 4 racks of 16 dual-homed CNI
workers, a control node) cut down by lab.model.scale.derive to its first N workers (the racks
they fill), written to a temp dir and brought up on the netns backend. Per size:

- `lab up` seconds (namespaces, underlay, bird, etcd + operator, every agent, pod CIDRs, BGP);
- memory: the machine's MemAvailable drop from before `lab up` to its lowest during up and the
  pods phase (sampled every 0.2 s), and the peak RSS summed per process kind (processes in the
  lab's namespaces: agent, bird on routers, bird as agent speakers, etcd, operator, CNI, …);
- BGP convergence: the lab's own wait, from every pod CIDR handed out to the last one routed by
  every router (spines included) over every equal path;
- the operator: from its spawn to its last "pod CIDR" log line (every worker's CIDR handed out);
- pods: 10 CNI pods per node (the plugin exec'd), nodes side by side: pods/s across the cluster;
  every allocated IP distinct cluster-wide and inside its node's pod CIDR; a sample of cross-node
  pairs (other racks first) ping each other.

Then one table: each number per size, its growth per added node between the two largest
sizes (so the next doubling can be predicted), and the goals (64 workers: up < 60 s, < 6 GiB).

    python bench/scale.py [--sizes 8,16,32,64] [--pods 10] [--pairs 12]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from lab.backends.netns.host import lab_namespaces
from lab.backends.netns.lab import NetnsLab
from lab.deploy import lab_venv
from lab.model import scale
from lab.model.topology import Topology, load_topology

GOAL_UP_S = 60.0
GOAL_MEM_GIB = 6.0
GOAL_WORKERS = 64


# -- memory: the machine's MemAvailable, and RSS per kind of the lab's processes ------------------
def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def process_kind(argv: list[str]) -> str:
    """What a lab process is, by its command line."""
    text = " ".join(argv)
    if "podnet.cmd.agent" in text:
        return "agent"
    if "podnet.cmd.operator" in text:
        return "operator"
    if argv and Path(argv[0]).name == "bird":
        return "bird (agent speaker)" if "/run/bgp/" in text else "bird (router)"
    if argv and Path(argv[0]).name == "etcd":
        return "etcd"
    if argv and "cni" in Path(argv[0]).name:
        return "CNI plugin"
    if argv and Path(argv[0]).name == "bash":
        return "supervisor (bash)"
    return Path(argv[0]).name if argv else "?"


class MemorySampler:
    """MemAvailable's lowest, and the peak per-kind RSS sum over processes in the lab's namespaces."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.before = mem_available_kib()
        self.lowest = self.before
        self.peaks: dict[str, int] = {}
        self.cpu: dict[int, tuple[str, int]] = {}  # pid -> (kind, clock ticks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(self.interval_s):
            self.lowest = min(self.lowest, mem_available_kib())
            ticks += 1
            if ticks % 5 == 1:  # the /proc walk costs CPU the lab needs: once a second
                self._sample_rss()

    def _sample_rss(self) -> None:
        inodes = set()
        for name in lab_namespaces():
            try:
                inodes.add(os.stat(f"/run/netns/{name}").st_ino)
            except OSError:
                continue
        sums: dict[str, int] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if os.stat(proc / "ns" / "net").st_ino not in inodes:
                    continue
                argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
                rss = next(
                    int(x.split()[1]) for x in (proc / "status").read_text().splitlines() if x.startswith("VmRSS:")
                )
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, StopIteration, ValueError):
                continue  # gone, or a kernel thread
            kind = process_kind([a for a in argv if a])
            sums[kind] = sums.get(kind, 0) + rss
            self.cpu[int(proc.name)] = (kind, sum(int(x) for x in stat[11:15]))  # utime stime cutime cstime
        for kind, kib in sums.items():
            self.peaks[kind] = max(self.peaks.get(kind, 0), kib)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds per kind, of the processes seen (with their waited-for children), at their last sample."""
        total: dict[str, float] = {}
        for kind, ticks in self.cpu.values():
            total[kind] = total.get(kind, 0.0) + ticks / os.sysconf("SC_CLK_TCK")
        return total

    def drop_mib(self) -> float:
        return (self.before - self.lowest) / 1024

    def peak_rss_mib(self) -> dict[str, float]:
        return {k: v / 1024 for k, v in self.peaks.items()}


def pod_ping(netns: str, ip: str) -> bool:
    """One ping from a pod's namespace (a second try: the first may wait on ARP)."""
    argv = ["nsenter", f"--net={netns}", "busybox", "ping", "-c", "1", "-W", "2", ip]
    return any(subprocess.run(argv, capture_output=True, check=False).returncode == 0 for _ in range(2))


@dataclass
class Result:
    workers: int
    up_s: float = 0.0
    mem_drop_mib: float = 0.0
    rss_mib: dict[str, float] = field(default_factory=dict)
    up_cpu_s: dict[str, float] = field(default_factory=dict)
    bgp_s: float = 0.0
    operator_s: float = 0.0
    operator_start_s: float = 0.0
    pods: int = 0
    pods_s: float = 0.0
    pods_per_s: float = 0.0
    distinct: bool = False
    pairs_ok: str = ""
    slowest: list[tuple[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def step_seconds(lab: NetnsLab, prefix: str) -> tuple[float, float]:
    """(start, seconds) of the bring-up step whose name starts with prefix."""
    for t in lab.timings:
        if t.what.startswith(prefix):
            return t.start, t.seconds
    return 0.0, 0.0


def operator_seconds(lab: NetnsLab, up_wall: float) -> tuple[float, float]:
    """(spawn → its last 'pod CIDR' line, spawn → its 'cluster pool' line: its own start-up), from its
    log's wall-clock stamps."""
    control = lab.control
    assert control is not None
    start, seconds = step_seconds(lab, f"{control.name}: etcd")
    spawned = up_wall + start + seconds
    ready = last = 0.0
    for line in control.log_text("podnet-operator").splitlines():
        if ": pod CIDR " in line or ": cluster pool " in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if ": cluster pool " in line:
                ready = ready or stamp
            else:
                last = max(last, stamp)
    nan = float("nan")
    return (last - spawned if last else nan), (ready - spawned if ready else nan)


def pods_phase(lab: NetnsLab, per_node: int, pairs: int, result: Result) -> None:
    runtime = lab.pods()
    runtime.plugin()  # built once, before the clock

    def node_pods(name: str) -> list[tuple[str, str, str]]:
        made = []
        for i in range(per_node):
            pod = f"p{i}"
            status, output = runtime.call(lab.nodes[name], runtime="exec", command="ADD", pod=pod, ifname="eth0")
            if status != 0:
                raise RuntimeError(f"{name}/{pod}: ADD exited {status}: {output}")
            made.append((name, pod, output["ips"][0]["address"].split("/")[0]))
        return made

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(lab.workers)) as pool:
        made = [p for group in pool.map(node_pods, lab.workers) for p in group]
    result.pods_s = time.perf_counter() - t0
    result.pods = len(made)
    result.pods_per_s = len(made) / result.pods_s
    ips = [ip for _, _, ip in made]
    inside = all(
        ipaddress.ip_address(ip) in ipaddress.ip_network(lab.node_info[name]["pod_cidr"]) for name, _, ip in made
    )
    result.distinct = len(set(ips)) == len(ips) and inside
    if not result.distinct:
        result.errors.append(f"pod IPs: {len(ips) - len(set(ips))} duplicates; all inside their node's CIDR: {inside}")
    rng = random.Random(len(made))
    by_node = {name: [(n, p, ip) for n, p, ip in made if n == name] for name in lab.workers}
    names = list(by_node)
    sample = []
    for _ in range(pairs):
        a, b = rng.sample(names, 2)
        sample.append((rng.choice(by_node[a]), rng.choice(by_node[b])))
    with ThreadPoolExecutor(max_workers=8) as pool:
        oks = list(pool.map(lambda ab: pod_ping(runtime.pod_netns(lab.nodes[ab[0][0]], ab[0][1]), ab[1][2]), sample))
    result.pairs_ok = f"{sum(oks)}/{len(oks)}"
    for ok, (a, b) in zip(oks, sample, strict=True):
        if not ok:
            result.errors.append(f"no ping {a[0]}/{a[1]} → {b[0]}/{b[1]} {b[2]}")


def run_size(base: Topology, workers: int, args: argparse.Namespace, tmp: Path, console: Console) -> Result:
    topology = scale.derive(base, workers)
    scale.write(topology, tmp)
    result = Result(workers)
    sampler = MemorySampler(interval_s=0.2)
    lab = NetnsLab(topology)
    sampler.start()
    try:
        up_wall = time.time()
        with console.status(f"{topology.name}: lab up…"):
            lab.up()
        result.up_s = lab.up_seconds
        sampler._sample_rss()
        result.up_cpu_s = sampler.cpu_seconds()
        result.bgp_s = step_seconds(lab, "BGP:")[1]
        result.operator_s, result.operator_start_s = operator_seconds(lab, up_wall)
        per_kind: dict[str, float] = {}
        for t in lab.timings:
            kind = t.what.split(": ", 1)[-1] if t.what.startswith("node") else t.what
            per_kind[kind] = per_kind.get(kind, 0.0) + t.seconds
        result.slowest = sorted(per_kind.items(), key=lambda kv: -kv[1])[:5]
        with console.status(f"{topology.name}: {args.pods} pods per node…"):
            pods_phase(lab, args.pods, args.pairs, result)
    finally:
        sampler.stop()
        errors = lab.down(keep_logs=args.logs / topology.name if args.logs else None)
        result.errors += errors
    result.mem_drop_mib = sampler.drop_mib()
    result.rss_mib = sampler.peak_rss_mib()
    left = lab_namespaces()
    if left:
        result.errors.append(f"left behind: {', '.join(left)}")
    return result


def growth(results: list[Result], value: float, prev: float, workers: int, prev_workers: int) -> str:
    if len(results) < 2 or workers == prev_workers:
        return ""
    return f"{(value - prev) / (workers - prev_workers):+.3g}"


def report(results: list[Result], console: Console) -> None:
    results = sorted(results, key=lambda r: r.workers)
    kinds = sorted({k for r in results for k in r.rss_mib}, key=lambda k: -max(r.rss_mib.get(k, 0) for r in results))
    cpu_kinds = sorted(
        {k for r in results for k, v in r.up_cpu_s.items() if v >= 0.5},
        key=lambda k: -max(r.up_cpu_s.get(k, 0) for r in results),
    )
    rows: list[tuple[str, list[float], str, str]] = [
        ("lab up s", [r.up_s for r in results], "{:.1f}", f"< {GOAL_UP_S:g} s"),
        ("MemAvailable drop MiB", [r.mem_drop_mib for r in results], "{:.0f}", f"< {GOAL_MEM_GIB * 1024:g} MiB"),
        *[(f"  RSS {k} MiB", [r.rss_mib.get(k, 0.0) for r in results], "{:.0f}", "") for k in kinds],
        *[(f"CPU s during up: {k}", [r.up_cpu_s.get(k, 0.0) for r in results], "{:.1f}", "") for k in cpu_kinds],
        ("BGP: CIDRs handed out → on every router s", [r.bgp_s for r in results], "{:.2f}", ""),
        ("operator: spawn → last pod CIDR s", [r.operator_s for r in results], "{:.2f}", ""),
        ("  of which its start-up (spawn → serving) s", [r.operator_start_s for r in results], "{:.2f}", ""),
        ("pods created", [float(r.pods) for r in results], "{:.0f}", ""),
        ("pods/s (cluster)", [r.pods_per_s for r in results], "{:.1f}", ""),
    ]
    table = Table(title="scale: CNI workers on a spine-leaf (scale-64 cut to N workers), this machine")
    table.add_column("")
    for r in results:
        table.add_column(f"{r.workers} workers", justify="right")
    table.add_column("per added node", justify="right")
    table.add_column(f"goal ({GOAL_WORKERS} workers)", justify="right")
    for label, values, fmt, goal in rows:
        last = growth(results, values[-1], values[-2] if len(values) > 1 else 0, results[-1].workers,
                      results[-2].workers if len(results) > 1 else 0)  # fmt: skip
        table.add_row(
            label, *[fmt.format(v) for v in values], last, goal if results[-1].workers >= GOAL_WORKERS else ""
        )
    table.add_row("pod IPs distinct, in their node's CIDR", *["yes" if r.distinct else "NO" for r in results], "", "")
    table.add_row("cross-node pairs reaching", *[r.pairs_ok for r in results], "", "")
    console.print(table)
    for r in results:
        console.print(f"{r.workers} workers, where lab up went (s, summed over nodes): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in r.slowest))  # fmt: skip
        for err in r.errors:
            console.print(f"[red]{r.workers} workers: {err}[/]")
    if len(results) > 1:
        a, b = results[-2], results[-1]
        per_up = (b.up_s - a.up_s) / (b.workers - a.workers)
        per_mem = (b.mem_drop_mib - a.mem_drop_mib) / (b.workers - a.workers)
        nxt = b.workers * 2
        console.print(
            f"next doubling ({nxt} workers), linear from the last two sizes: lab up ≈ "
            f"{b.up_s + per_up * (nxt - b.workers):.0f} s, MemAvailable drop ≈ "
            f"{(b.mem_drop_mib + per_mem * (nxt - b.workers)) / 1024:.1f} GiB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="8,16,32,64", help="worker counts, comma-separated (each ≤ 64)")
    parser.add_argument("--pods", type=int, default=10, help="CNI pods per node")
    parser.add_argument("--pairs", type=int, default=12, help="cross-node pod pairs to ping")
    parser.add_argument("--logs", type=Path, default=None, help="keep every node's logs here (DIR/scale-N/<node>/)")
    args = parser.parse_args()
    console = Console(width=160)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes: {args.sizes!r} is not a comma-separated list of worker counts")
    base = load_topology("scale-64")
    t0 = time.perf_counter()
    _, built = lab_venv()  # once, before any clock: a changed impl/ pays the wheel here, not in lab up
    console.print(f"lab venv: {'built' if built else 'cached'} in {time.perf_counter() - t0:.1f}s")
    results = []
    with tempfile.TemporaryDirectory(prefix="podnet-scale-") as tmp:
        for workers in sizes:
            r = run_size(base, workers, args, Path(tmp), console)
            console.print(f"{workers} workers: up {r.up_s:.1f} s, MemAvailable −{r.mem_drop_mib:.0f} MiB, "
                          f"{r.pods_per_s:.1f} pods/s, pairs {r.pairs_ok}, {len(r.errors)} errors")  # fmt: skip
            results.append(r)
    report(results, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
