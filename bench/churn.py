"""Pod churn on one node: N concurrent CNI ADDs, then N concurrent DELs, podnet vs bridge+host-local;
then 1,000 endpoints on one node, with the agent's memory.

Part 1, per round and plugin (rounds interleave podnet and the reference): N pod namespaces made
first (not timed), then N exec'd ADDs at once: time until all answered, rate, p50/p99 of each
call, errors; the same for N DELs. After podnet's round: no host veth left (the veths go on a
background thread, each DEL answering once its own is gone: the time until the last is gone is printed), no IP but the router's, no
endpoints-map entry, no identity reference of the node still in use. Goal: podnet's rate
≥ 2x the reference's, errors 0, nothing left.

Part 2: `--scale` endpoints (default 1,000) on a /22 pod CIDR, made and deleted through the
exec'd plugin a few at a time: the agent's RSS at 0, at `--scale` and after; nothing left.
Goal: RSS < 80 MB at 1,000.

    python bench/churn.py [--pods 100] [--rounds 3] [--scale 1000] [--skip-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from lab.backends.netns.cniexec import REFERENCE, exec_cni, reference_conf
from lab.backends.netns.host import remove_tree
from lab.backends.netns.node import NetnsNode
from lab.deploy import cni_binary, lab_venv
from podnet.api import unixhttp

POD_CIDR = "10.60.0.0/22"
REF_SUBNET = "10.61.0.0/22"
RSS_GOAL_MB = 80


def agent_pid(node: NetnsNode) -> int:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"podnet.cmd.agent" in argv and node.name.encode() in argv and _is_python(proc):
            return int(proc.name)  # the agent itself, not the lab's wrapper whose argv names it
    raise RuntimeError(f"no podnet-agent process for {node.name}")


def _is_python(proc: Path) -> bool:
    try:
        return Path(os.readlink(proc / "exe")).name.startswith("python")
    except OSError:
        return False


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def agent(node: NetnsNode, path: str) -> Any:
    reply = unixhttp.request(str(node.agent_sock), "GET", path, timeout=30)
    return json.loads(reply.body)


def host_veths(node: NetnsNode, prefix: str) -> int:
    out = node.cmd("ip", "-o", "link", "show").stdout
    return sum(1 for line in out.splitlines() if line.split(": ")[1].startswith(prefix))


def identity_refs_in_use(node: NetnsNode) -> int:
    """This node's identity references still marked in use (read from its SQLite store)."""
    path = node.state_url.removeprefix("sqlite://")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT key, value FROM kv WHERE key LIKE 'podnet/identities/refs/%'").fetchall()
    return sum(1 for key, value in rows if key.endswith(f"/{node.name}") and json.loads(value).get("in_use"))


def leftovers(node: NetnsNode, wait_s: float = 60.0) -> dict[str, Any]:
    """What podnet left after every DEL: veths (and how long the background deletion took), IPs,
    map entries, identity references in use."""
    t0 = time.perf_counter()
    while host_veths(node, "lxc") and time.perf_counter() - t0 < wait_s:
        time.sleep(0.05)
    gone_after = time.perf_counter() - t0
    ipam = agent(node, "/v1/ipam")
    maps = agent(node, "/v1/bpf")
    return {
        "veths": host_veths(node, "lxc"),
        "veths gone after s": round(gone_after, 2),
        "IPs": sum(1 for a in ipam["allocations"] if a["owner"] != "router"),
        "map entries": len(maps.get("endpoints", [])),
        "endpoints": len(agent(node, "/v1/endpoint")),
        "identity refs in use": identity_refs_in_use(node),
    }


def ref_leftovers(node: NetnsNode) -> dict[str, Any]:
    data = node.path("host-local")
    ips = [p for p in data.rglob("*") if p.is_file() and p.name[0].isdigit()] if data.exists() else []
    return {"veths": host_veths(node, "veth"), "IPs": len(ips)}


class Plugin:
    def __init__(self, label: str, argv: list[str], conf: dict[str, object]):
        self.label, self.argv, self.conf = label, argv, conf


def burst(node: NetnsNode, plugin: Plugin, command: str, pods: list[tuple[str, str]]) -> tuple[float, list[float], int]:
    """All calls at once: (seconds until all answered, each call's seconds, errors)."""

    def one(pod: tuple[str, str]) -> tuple[int, float]:
        netns, cid = pod
        status, _out, seconds = exec_cni(node, plugin.argv, command, plugin.conf, netns, cid, pod=cid)
        return status, seconds

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(pods)) as pool:
        results = list(pool.map(one, pods))
    total = time.perf_counter() - t0
    return total, [s for _, s in results], sum(1 for status, _ in results if status != 0)


def make_netns(names: list[str], present: bool) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        verb = "add" if present else "del"
        list(pool.map(lambda n: subprocess.run(["ip", "netns", verb, n], check=present, capture_output=True), names))


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[-1] if len(values) > 1 else values[0]


def churn(node: NetnsNode, plugins: list[Plugin], pods: int, rounds: int, console: Console) -> None:
    rows: dict[tuple[str, str], list[tuple[float, list[float], int]]] = {}
    leaks: dict[str, dict[str, Any]] = {}
    for r in range(rounds):
        for plugin in plugins:
            tag = f"{plugin.label[:3]}{r}"
            names = [f"{node.netns}-{tag}-{i}" for i in range(pods)]
            make_netns(names, True)
            try:
                batch = [(f"/run/netns/{n}", f"{tag}-{i}") for i, n in enumerate(names)]
                with console.status(f"round {r + 1}/{rounds}: {pods} × {plugin.label} ADD at once…"):
                    rows.setdefault((plugin.label, "ADD"), []).append(burst(node, plugin, "ADD", batch))
                with console.status(f"round {r + 1}/{rounds}: {pods} × {plugin.label} DEL at once…"):
                    rows.setdefault((plugin.label, "DEL"), []).append(burst(node, plugin, "DEL", batch))
            finally:
                make_netns(names, False)
            leaks[plugin.label] = leftovers(node) if plugin.label == "podnet" else ref_leftovers(node)
    table = Table(title=f"{pods} concurrent CNI calls, then {pods} DELs; {rounds} rounds (medians over rounds)")
    for column in ("plugin", "command", "all answered s", "calls/s", "p50 ms", "p99 ms", "errors", "rate vs ref"):
        table.add_column(column, justify="left" if column in ("plugin", "command") else "right")
    for (label, command), runs in rows.items():
        total = statistics.median(r[0] for r in runs)
        ref_total = statistics.median(r[0] for r in rows[("bridge+host-local", command)])
        calls = [s for r in runs for s in r[1]]
        table.add_row(
            label,
            command,
            f"{total:.2f}",
            f"{pods / total:.0f}",
            f"{statistics.median(calls) * 1000:.1f}",
            f"{p99(calls) * 1000:.1f}",
            str(sum(r[2] for r in runs)),
            f"{ref_total / total:.2f}x",
        )
    console.print(table)
    console.print("goal: podnet's rate ≥ 2x the reference's (ADD and DEL), errors 0, nothing left")
    for label, left in leaks.items():
        console.print(f"left after {label}'s last round: {left}")


def scale(node: NetnsNode, plugin: Plugin, count: int, console: Console) -> None:
    pid = agent_pid(node)
    names = [f"{node.netns}-s{i}" for i in range(count)]
    rss = {"0 endpoints": rss_mb(pid)}
    with console.status(f"{count} pod namespaces…"):
        make_netns(names, True)
    try:
        batch = [(f"/run/netns/{n}", f"s{i}") for i, n in enumerate(names)]

        def run(command: str) -> tuple[float, int]:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(
                    pool.map(
                        lambda p: exec_cni(node, plugin.argv, command, plugin.conf, p[0], p[1], pod=p[1])[0], batch
                    )
                )
            return time.perf_counter() - t0, sum(1 for s in statuses if s != 0)

        with console.status(f"{count} endpoints, 8 ADDs at a time…"):
            add_s, add_errors = run("ADD")
        rss[f"{count} endpoints"] = rss_mb(pid)
        endpoints = len(agent(node, "/v1/endpoint"))
        with console.status(f"deleting the {count}…"):
            del_s, del_errors = run("DEL")
        left = leftovers(node, wait_s=120)
        rss["after deleting them"] = rss_mb(pid)
    finally:
        make_netns(names, False)
    table = Table(title=f"{count} endpoints on one node (pod CIDR {POD_CIDR})")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row(f"ADD ×{count} (8 at a time)", f"{add_s:.1f} s, {add_errors} errors, {endpoints} endpoints")
    table.add_row(f"DEL ×{count}", f"{del_s:.1f} s, {del_errors} errors")
    for when, mb in rss.items():
        table.add_row(f"agent RSS, {when}", f"{mb:.1f} MB" + (f" (goal < {RSS_GOAL_MB})" if str(count) in when else ""))
    console.print(table)
    console.print(f"left after deleting them: {left}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=int, default=1000)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    console = Console(width=140)
    python, _ = lab_venv()
    run_id = secrets.token_hex(3)
    root = Path(f"/tmp/podnet-bench-churn-{run_id}")
    node = NetnsNode("churn", run_id, root)
    try:
        node.create()
        node.start_agent(str(python), "--pod-cidr", POD_CIDR, "--ip-expiration", "600")
        podnet_conf = {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "agentSocket": str(node.agent_sock)}
        podnet = Plugin("podnet", [str(cni_binary(python))], podnet_conf)
        reference = Plugin("bridge+host-local", [str(REFERENCE / "bridge")], reference_conf(node, REF_SUBNET))
        churn(node, [podnet, reference], args.pods, args.rounds, console)
        if not args.skip_scale:
            scale(node, podnet, args.scale, console)
    finally:
        node.destroy()
        remove_tree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
