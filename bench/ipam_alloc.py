"""IPAM benchmark: podnet's allocators against a naive baseline and CNI host-local.

Every case runs in its own fresh Python process (so peak RSS is the case's
own), all in this one run, and the table prints ratios against the reference
measured alongside:

- pod IPs, a whole /16 (65,533 allocations): podnet in memory, podnet durable
  (SQLite, one transaction per allocation), and a naive baseline (every address
  materialised as an `ipaddress` object, a dict of used ones to their owner,
  a scanning cursor) — both record an owner per IP;
- node CIDRs, a /8 at /24 (65,536 nodes): podnet's ClusterPool vs the naive
  baseline over `ipaddress` subnets;
- one pod IP per call: the CNI reference `host-local` exec'd with
  CNI_COMMAND=ADD (IPAM-only config) vs podnet's durable allocation, and vs a
  one-shot podnet process (interpreter start + open store + allocate), which is
  what an exec'd plugin would pay without an agent.

    python bench/ipam_alloc.py [--quick]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HOST_LOCAL = "/usr/lib/cni/host-local"


def rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def timed(fn: Callable[[], int]) -> dict[str, Any]:
    start_rss = rss_kb()
    t0 = time.perf_counter()
    ops = fn()
    seconds = time.perf_counter() - t0
    return {"ops": ops, "seconds": seconds, "peak_rss_mib": (rss_kb() - start_rss) / 1024}


# -- cases (each runs in a child process) ---------------------------------------


def case_pod_memory(n: int) -> dict[str, Any]:
    from podnet.ipam import NodeAllocator

    def run() -> int:
        alloc = NodeAllocator("10.77.0.0/16")
        for i in range(n):
            alloc.allocate(f"pod-{i}")
        return n

    return timed(run)


def case_pod_sqlite(n: int) -> dict[str, Any]:
    from podnet.ipam import DurableNodeAllocator
    from podnet.kvstore.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "state.db")

        def run() -> int:
            alloc = DurableNodeAllocator(store, "10.77.0.0/16")
            for i in range(n):
                alloc.allocate(f"pod-{i}")
            return n

        result = timed(run)
        store.close()
        return result


def case_pod_naive(n: int) -> dict[str, Any]:
    def run() -> int:
        network = ipaddress.ip_network("10.77.0.0/16")
        candidates = list(network.hosts())
        owners: dict[ipaddress.IPv4Address, str] = {candidates[0]: "router"}
        cursor = 0
        for i in range(n):
            while candidates[cursor] in owners:
                cursor = (cursor + 1) % len(candidates)
            owners[candidates[cursor]] = f"pod-{i}"
        return n

    return timed(run)


def case_node_pool(n: int) -> dict[str, Any]:
    from podnet.ipam import ClusterPool

    def run() -> int:
        pool = ClusterPool(["10.0.0.0/8"], 24)
        for _ in range(n):
            pool.allocate()
        return n

    return timed(run)


def case_node_naive(n: int) -> dict[str, Any]:
    def run() -> int:
        subnets = list(ipaddress.ip_network("10.0.0.0/8").subnets(new_prefix=24))
        used: set[ipaddress.IPv4Network] = set()
        cursor = 0
        for _ in range(n):
            while subnets[cursor] in used:
                cursor = (cursor + 1) % len(subnets)
            used.add(subnets[cursor])
        return n

    return timed(run)


CASES: dict[str, Callable[[int], dict[str, Any]]] = {
    "pod_memory": case_pod_memory,
    "pod_sqlite": case_pod_sqlite,
    "pod_naive": case_pod_naive,
    "node_pool": case_node_pool,
    "node_naive": case_node_naive,
}


def run_case(name: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--case", name, "-n", str(n)], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


# -- per-call latency -----------------------------------------------------------


def host_local_latencies(n: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        conf = json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "bench",
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.78.0.0/16"}]], "dataDir": tmp},
            }
        )
        times = []
        for i in range(n):
            env = dict(
                os.environ,
                CNI_COMMAND="ADD",
                CNI_CONTAINERID=f"bench{i}",
                CNI_NETNS="/var/run/netns/bench",
                CNI_IFNAME="eth0",
                CNI_PATH="/usr/lib/cni",
            )
            t0 = time.perf_counter()
            subprocess.run([HOST_LOCAL], input=conf, env=env, check=True, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
        return times


def podnet_durable_latencies(n: int) -> list[float]:
    from podnet.ipam import DurableNodeAllocator
    from podnet.kvstore.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "state.db") as store:
        alloc = DurableNodeAllocator(store, "10.79.0.0/16")
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            alloc.allocate(f"bench{i}")
            times.append(time.perf_counter() - t0)
        return times


ONE_SHOT = """
import sys
from podnet.ipam import DurableNodeAllocator
from podnet.kvstore.sqlite import SQLiteStore
with SQLiteStore(sys.argv[1]) as store:
    print(DurableNodeAllocator(store, "10.80.0.0/16").allocate(sys.argv[2]).ip)
"""


def podnet_one_shot_latencies(n: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", ONE_SHOT, f"{tmp}/state.db", f"bench{i}"], check=True, capture_output=True
            )
            times.append(time.perf_counter() - t0)
        return times


# -- report ---------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer operations (smoke run)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(CASES[args.case](args.n)))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    pods = 6_000 if args.quick else 65_533  # a /16 minus network, broadcast, router
    nodes = 6_000 if args.quick else 65_536
    calls = 20 if args.quick else 100
    results: dict[str, Any] = {}

    table = Table(title="bulk allocation (each case in a fresh process; peak RSS above interpreter start)")
    for column in ("case", "allocations", "seconds", "allocations/s", "peak RSS MiB", "speed vs naive", "RSS vs naive"):
        table.add_column(column, justify="right" if column != "case" else "left")
    for group, n, members in (
        ("pod IPs in a /16", pods, ["pod_memory", "pod_sqlite", "pod_naive"]),
        ("node CIDRs, /8 at /24", nodes, ["node_pool", "node_naive"]),
    ):
        measured = {m: run_case(m, n) for m in members}
        base = measured[members[-1]]
        for m in members:
            r = measured[m]
            rate = r["ops"] / r["seconds"]
            base_rate = base["ops"] / base["seconds"]
            table.add_row(
                f"{group}: {m}",
                str(r["ops"]),
                f"{r['seconds']:.3f}",
                f"{rate:,.0f}",
                f"{r['peak_rss_mib']:.1f}",
                f"{rate / base_rate:.2f}x",
                f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x" if base["peak_rss_mib"] > 0 else "-",
            )
        results.update(measured)
    console.print(table)

    latency = Table(title=f"one pod IP per call ({calls} calls each, same run)")
    for column in ("path", "median ms", "p90 ms", "vs host-local"):
        latency.add_column(column, justify="right" if column != "path" else "left")
    rows: dict[str, list[float]] = {}
    if Path(HOST_LOCAL).exists():
        rows["CNI host-local, exec'd ADD (reference)"] = host_local_latencies(calls)
    else:
        console.print(f"[yellow]{HOST_LOCAL} missing (Debian containernetworking-plugins): no reference row[/]")
    rows["podnet durable allocation (SQLite, in the agent's process)"] = podnet_durable_latencies(calls)
    rows["podnet one-shot process (interpreter start + store + allocate)"] = podnet_one_shot_latencies(calls)
    reference = next(iter(rows.values()))
    ref_median = statistics.median(reference)
    for path, times in rows.items():
        med = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        latency.add_row(path, f"{med * 1000:.3f}", f"{p90 * 1000:.3f}", f"{med / ref_median:.3f}x")
        results[path] = {"median_s": med, "p90_s": p90}
    console.print(latency)
    console.print("ratios < 1 in 'vs host-local' mean faster than the reference; 'speed vs naive' > 1 means faster.")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
