"""The underlay on the netns backend: every link of the topology a veth pair made directly inside its
two namespaces (never in the machine's), addressed as the topology derives it, and each namespace's
routes and sysctls as lab/model/underlay.py plans them (the rules are there).

`wire_underlay()` creates the veth pairs (one `ip -batch`) and runs each namespace's plan as one shell line.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab.backends.base import NodeError
from lab.backends.netns.node import NetnsNode
from lab.model.topology import Topology
from lab.model.underlay import FALLBACK_METRIC, Plan, plan

__all__ = ["FALLBACK_METRIC", "plan", "scripts", "veth_batch", "veth_pairs", "wire_underlay"]

HASH_SEED = Path("/proc/sys/net/ipv4/fib_multipath_hash_seed")


def veth_pairs(topology: Topology) -> list[tuple[str, str, str, str]]:
    """(lower namespace, its interface, upper namespace, its interface) per link."""
    return [(link.lower, link.lower_if, link.upper, link.upper_if) for link in topology.links()]


def veth_batch(topology: Topology, netns: Mapping[str, str]) -> str:
    """Every link's veth pair, made inside its two namespaces (`netns`: name -> namespace), as one
    `ip -batch` input: one `ip` for the whole underlay (scale-64 has 145 links)."""
    return "".join(
        shlex.join(["link", "add", lower_if, "netns", netns[lower], "type", "veth",
                    "peer", "name", upper_if, "netns", netns[upper]]) + "\n"
        for lower, lower_if, upper, upper_if in veth_pairs(topology)
    )  # fmt: skip


def scripts(commands: Plan) -> dict[str, str]:
    """Each namespace's plan as one shell line (stops at the first failure): one process per
    namespace instead of one per command (scale-64: ~75 namespaces, ~1000 commands)."""
    return {name: " && ".join(shlex.join(c) for c in steps) for name, steps in commands.items() if steps}


def wire_underlay(topology: Topology, routers: Mapping[str, NetnsNode], nodes: Mapping[str, NetnsNode]) -> None:
    every = {**routers, **nodes}
    batch = veth_batch(topology, {name: node.netns for name, node in every.items()})
    proc = subprocess.run(["ip", "-batch", "-"], input=batch, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NodeError(f"creating the underlay's veth pairs: {proc.stderr.strip()}")
    lines = scripts(plan(topology, seeds=HASH_SEED.exists()))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda item: every[item[0]].cmd("sh", "-c", item[1]), lines.items()))
