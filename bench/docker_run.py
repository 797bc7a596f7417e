"""`docker run` on podnet vs Docker's bridge driver, and the plugin's per-call latency.

One lab node (own netns, own dockerd 20.10, podnet agent serving the plugin,
or with `--plugin process` podnet-docker beside it), both networks on the same
dockerd; runs alternate podnet/bridge so drift hits both:

- `docker run --rm --net NET IMAGE sh -c :`, N runs each: medians, p90, ratio;
  `--net none` is docker's own floor (a container with no network at all);
- per-call latency of the plugin as dockerd calls it (HTTP over the plugin
  socket, real agent, real veths): RequestAddress, CreateEndpoint, Join,
  DeleteEndpoint, ReleaseAddress.

    python bench/docker_run.py [--runs 20] [--calls 50] [--plugin agent|process]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from lab.backends.netns.node import NetnsNode
from lab.backends.netns.standalone import docker_node
from lab.image import IMAGE
from podnet.api import unixhttp


def post(sock: str, path: str, body: Any) -> tuple[float, dict[str, Any]]:
    """One plugin call as dockerd makes it: (seconds, reply)."""
    t0 = time.perf_counter()
    response = unixhttp.request(sock, "POST", path, body=json.dumps(body).encode(), host="x")
    elapsed = time.perf_counter() - t0
    reply = json.loads(response.body) if response.body else {}
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {reply}")
    return elapsed, reply


def time_docker_runs(node: NetnsNode, runs: int) -> dict[str, list[float]]:
    networks = {
        "podnet": "podnet-bench",
        "bridge (user-defined)": "bridge-bench",
        "bridge (default)": "bridge",
        "none (docker's floor)": "none",
    }
    times: dict[str, list[float]] = {label: [] for label in networks}
    for net in networks.values():  # warm-up, not counted
        node.docker("run", "--rm", "--net", net, IMAGE, "sh", "-c", ":")
    for _ in range(runs):
        for label, net in networks.items():
            t0 = time.perf_counter()
            node.docker("run", "--rm", "--net", net, IMAGE, "sh", "-c", ":")
            times[label].append(time.perf_counter() - t0)
    return times


def time_plugin_calls(node: NetnsNode, calls: int) -> dict[str, list[float]]:
    sock = str(node.plugin_dir / "podnet.sock")
    _, pool = post(sock, "/IpamDriver.RequestPool", {"AddressSpace": "podnet-local", "Pool": "", "Options": {}})
    network_id = secrets.token_hex(32)
    post(
        sock,
        "/NetworkDriver.CreateNetwork",
        {
            "NetworkID": network_id,
            "Options": {},
            "IPv4Data": [
                {
                    "AddressSpace": "podnet-local",
                    "Pool": pool["Pool"],
                    "Gateway": f"{pool['Data']['com.docker.network.gateway']}",
                }
            ],
        },
    )
    times: dict[str, list[float]] = {
        k: [] for k in ("RequestAddress", "CreateEndpoint", "Join", "DeleteEndpoint", "ReleaseAddress")
    }
    for _ in range(calls):
        endpoint_id = secrets.token_hex(32)
        t, reply = post(sock, "/IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": None})
        times["RequestAddress"].append(t)
        address = reply["Address"]
        t, _ = post(
            sock,
            "/NetworkDriver.CreateEndpoint",
            {
                "NetworkID": network_id,
                "EndpointID": endpoint_id,
                "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""},
                "Options": {},
            },
        )
        times["CreateEndpoint"].append(t)
        t, _ = post(
            sock,
            "/NetworkDriver.Join",
            {
                "NetworkID": network_id,
                "EndpointID": endpoint_id,
                "SandboxKey": "/var/run/docker/netns/bench",
                "Options": {},
            },
        )
        times["Join"].append(t)
        t, _ = post(sock, "/NetworkDriver.DeleteEndpoint", {"NetworkID": network_id, "EndpointID": endpoint_id})
        times["DeleteEndpoint"].append(t)
        t, _ = post(sock, "/IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": address.split("/")[0]})
        times["ReleaseAddress"].append(t)
    post(sock, "/NetworkDriver.DeleteNetwork", {"NetworkID": network_id})
    return times


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="docker runs per network (default 20)")
    parser.add_argument("--calls", type=int, default=50, help="plugin call sequences (default 50)")
    parser.add_argument(
        "--plugin",
        choices=["agent", "process"],
        default="agent",
        help="agent (default): podnet-agent serves the plugin socket; process: podnet-docker, a process of its own",
    )
    args = parser.parse_args()
    console = Console(width=140)
    with console.status(f"bringing up a lab node (own dockerd, podnet agent + plugin: {args.plugin})…"):
        ctx = docker_node("bench", sys.executable, plugin_in_agent=args.plugin == "agent")
        node = ctx.__enter__()
    try:
        node.docker("network", "create", "--driver", "podnet", "--ipam-driver", "podnet", "podnet-bench")
        node.docker("network", "create", "--driver", "bridge", "bridge-bench")
        with console.status(f"{args.runs} × docker run --rm on each network, alternating…"):
            runs = time_docker_runs(node, args.runs)
        with console.status(f"{args.calls} × plugin call sequence…"):
            calls = time_plugin_calls(node, args.calls)
    finally:
        ctx.__exit__(None, None, None)

    table = Table(title=f"docker run --rm IMAGE sh -c :  ({args.runs} runs each, alternating, same dockerd)")
    for column in ("network", "median ms", "p90 ms", "vs user-defined bridge", "above --net none ms"):
        table.add_column(column, justify="left" if column == "network" else "right")
    # Like for like: a user-defined network (podnet's kind) gets Docker's embedded DNS; the default bridge does not.
    bridge = statistics.median(runs["bridge (user-defined)"])
    floor = statistics.median(runs["none (docker's floor)"])
    for label in runs:
        med = statistics.median(runs[label])
        table.add_row(
            label,
            f"{med * 1000:.1f}",
            f"{p90(runs[label]) * 1000:.1f}",
            f"{med / bridge:.3f}",
            f"{(med - floor) * 1000:.1f}",
        )
    console.print(table)
    calls_table = Table(
        title=f"plugin call latency over its socket ({args.calls} sequences; real agent and veths; plugin: {args.plugin})"
    )
    for column in ("call", "median ms", "p90 ms", "goal"):
        calls_table.add_column(column, justify="left" if column == "call" else "right")
    for name, values in calls.items():
        goal = "≤ 4 ms" if name in ("CreateEndpoint", "DeleteEndpoint") else ""
        calls_table.add_row(name, f"{statistics.median(values) * 1000:.2f}", f"{p90(values) * 1000:.2f}", goal)
    console.print(calls_table)
    podnet = statistics.median(runs["podnet"])
    console.print(
        f"podnet / user-defined bridge = {podnet / bridge:.3f} (goal ≤ 0.95); podnet costs "
        f"{(podnet - floor) * 1000:.0f} ms over --net none, the bridge {(bridge - floor) * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
