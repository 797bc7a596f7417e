"""Pod-to-pod TCP on one node: podnet's eBPF datapath vs its plain-route datapath vs Docker's bridge.

Two lab nodes, each with its own dockerd and podnet: one agent runs
`--datapath bpf`, the other `--datapath routes`. On each, a server and a
client container share a network (podnet's, or Docker's default bridge on the
bpf node). The tools run from the machine inside each container's network
namespace (nsenter), so all three paths are measured with the same binaries:

- throughput: iperf3, one TCP stream, `--seconds` each;
- request/response: bench/tcp_rr.c (1-byte request and response on one TCP
  connection, like netperf TCP_RR), transactions per second;
- packet rate: iperf3 UDP with 64-byte datagrams, unthrottled, datagrams
  received per second (where the per-packet cost of the datapath shows most).

Each column prints the median and the spread (min-max) over the rounds: on a
small VM the noise between rounds is often larger than the differences.

The physical limit is measured too: a bare veth pair between two namespaces
(no bridge, no programs, no routing), the same tools on each end.

Rounds interleave the four paths so drift hits all; medians are printed with
ratios against the bridge and the bare veth pair. Goals (issue 17): eBPF TCP
throughput within 5 % of the bare veth pair, TCP_RR ≥ 1.3x and UDP packets/s
≥ 1.5x Docker's bridge.

    python bench/datapath.py [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from lab.backends.netns.node import NetnsNode
from lab.backends.netns.standalone import docker_node
from lab.deploy import lab_venv
from lab.image import IMAGE

HERE = Path(__file__).resolve().parent
LIMIT = "bare veth pair (limit)"


class Pair:
    """A server and a client container on one network of one node."""

    def __init__(self, label: str, node: NetnsNode, network: str):
        self.label, self.node, self.network = label, node, network
        tag = network.replace("-", "")[:6]
        self.server, self.client = f"srv{tag}", f"cli{tag}"
        for name in (self.server, self.client):
            node.docker("run", "-d", "--name", name, "--net", network, IMAGE, "sleep", "3600")
        self._netns: dict[str, str] = {}
        self.server_ip = node.docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", self.server
        ).stdout.strip()

    def netns(self, container: str) -> str:
        if container not in self._netns:
            pid = self.node.docker("inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
            self._netns[container] = f"/proc/{pid}/ns/net"
        return self._netns[container]

    def run_in(self, container: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", f"--net={self.netns(container)}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def start_servers(self, stack: ExitStack, rr: Path) -> None:
        for argv in (["iperf3", "-s", "-p", "5201"], [str(rr), "server", "5202"]):
            proc = subprocess.Popen(
                ["nsenter", f"--net={self.netns(self.server)}", *argv],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(proc.kill)
        for _ in range(100):
            listening = self.run_in(self.server, "ss", "-ltnH").stdout
            if ":5201 " in listening and ":5202 " in listening:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.label}: iperf3/tcp_rr servers did not start")

    def throughput_gbps(self, seconds: float) -> float:
        out = self.run_in(self.client, "iperf3", "-c", self.server_ip, "-p", "5201", "-t", str(seconds), "-J").stdout
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9

    def udp_pps(self, seconds: float) -> float:
        """64-byte UDP datagrams received per second, the sender unthrottled (the datapath's per-packet cost)."""
        out = self.run_in(
            self.client,
            "iperf3",
            "-c",
            self.server_ip,
            "-p",
            "5201",
            "-u",
            "-b",
            "0",
            "-l",
            "64",
            "-t",
            str(seconds),
            "-J",
        ).stdout
        end = json.loads(out)["end"]["sum"]
        return float(end["packets"] - end["lost_packets"]) / float(end["seconds"])

    def rr_per_s(self, rr: Path, seconds: float) -> float:
        return float(self.run_in(self.client, str(rr), "client", self.server_ip, "5202", str(seconds)).stdout)


class VethPair(Pair):
    """The physical limit: two namespaces joined by one veth pair, nothing else."""

    def __init__(self, label: str, tag: str, stack: ExitStack):
        self.label = label
        self.server, self.client = f"pn-bench-{tag}-srv", f"pn-bench-{tag}-cli"
        for ns in (self.server, self.client):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            stack.callback(subprocess.run, ["ip", "netns", "del", ns], check=False)
        subprocess.run(
            ["ip", "link", "add", "eth0", "netns", self.server, "type", "veth", "peer", "eth0", "netns", self.client],
            check=True,
        )
        for ns, ip in ((self.server, "10.62.0.1/30"), (self.client, "10.62.0.2/30")):
            for argv in (["ip", "addr", "add", ip, "dev", "eth0"], ["ip", "link", "set", "eth0", "up"]):
                subprocess.run(["ip", "-n", ns, *argv[1:]], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        self.server_ip = "10.62.0.1"
        self._netns = {name: f"/run/netns/{name}" for name in (self.server, self.client)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    console = Console(width=140)
    python, _ = lab_venv()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        rr = Path(tmp) / "tcp_rr"
        subprocess.run(["cc", "-O2", "-o", str(rr), str(HERE / "tcp_rr.c")], check=True)
        with console.status("bringing up two nodes (bpf, routes)…"):
            bpf = stack.enter_context(docker_node("dpbpf", str(python), agent_args=("--datapath", "bpf")))
            routes = stack.enter_context(docker_node("dproutes", str(python), agent_args=("--datapath", "routes")))
            pairs = []
            for label, node, network in (
                ("podnet eBPF", bpf, "podnet-net"),
                ("podnet routes", routes, "podnet-net"),
                ("docker bridge", bpf, "bridge"),
            ):
                if network == "podnet-net":
                    node.docker("network", "create", "--driver", "podnet", "--ipam-driver", "podnet", network)
                pair = Pair(label, node, network)
                pair.start_servers(stack, rr)
                pairs.append(pair)
                results[label] = {"gbps": [], "rr": [], "pps": []}
            bare = VethPair(LIMIT, secrets.token_hex(3), stack)
            bare.start_servers(stack, rr)
            pairs.append(bare)
            results[LIMIT] = {"gbps": [], "rr": [], "pps": []}
        for round_no in range(1, args.rounds + 1):
            with console.status(f"round {round_no}/{args.rounds}…"):
                for pair in pairs:
                    results[pair.label]["gbps"].append(pair.throughput_gbps(args.seconds))
                    results[pair.label]["rr"].append(pair.rr_per_s(rr, args.seconds))
                    results[pair.label]["pps"].append(pair.udp_pps(args.seconds))
    table = Table(title=f"pod-to-pod on one node, {args.rounds} rounds of {args.seconds:g} s (median, min-max)")
    columns = (
        ("gbps", "TCP Gbit/s", "{:.2f}"),
        ("rr", "TCP_RR trans/s", "{:,.0f}"),
        ("pps", "UDP 64 B pkts/s", "{:,.0f}"),
    )
    table.add_column("datapath")
    for _, title, _fmt in columns:
        table.add_column(title, justify="right")
        table.add_column("vs bridge", justify="right")
        table.add_column("vs veth", justify="right")
    ref, limit = results["docker bridge"], results[LIMIT]
    for label, r in results.items():
        row = [label]
        for key, _title, fmt in columns:
            median = statistics.median(r[key])
            spread = f"{fmt.format(min(r[key]))}-{fmt.format(max(r[key]))}"
            row += [
                f"{fmt.format(median)} ({spread})",
                f"{median / statistics.median(ref[key]):.2f}x",
                f"{median / statistics.median(limit[key]):.2f}x",
            ]
        table.add_row(*row)
    console.print(table)
    ebpf = results["podnet eBPF"]
    med = {k: statistics.median(ebpf[k]) for k in ebpf}
    console.print(
        f"podnet eBPF: TCP {med['gbps'] / statistics.median(limit['gbps']):.2f}x the bare veth pair (goal ≥ 0.95x), "
        f"TCP_RR {med['rr'] / statistics.median(ref['rr']):.2f}x the bridge (goal ≥ 1.3x), "
        f"UDP pkts/s {med['pps'] / statistics.median(ref['pps']):.2f}x the bridge (goal ≥ 1.5x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
