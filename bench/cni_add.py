"""CNI ADD / DEL latency: podnet vs the reference bridge + host-local and the kernel's floor, same run.

One node namespace runs podnet's agent (from the lab venv: the deployed wheel);
each cycle makes a fresh pod namespace, then times ADD and DEL of podnet's
exec'd plugin (the compiled podnet-cni, which forwards to the agent), of the
pure-Python plugin (`python -m podnet.cmd.cni`, for comparison), of Debian's
bridge plugin with host-local IPAM, and the kernel's floor (bench/kernel_floor.py:
exactly the kernel operations of one podnet endpoint, in a process already
running), interleaved so drift hits all.

`--profile` runs the agent at debug level and prints where its time goes per
phase (medians of the `phases:` lines it logs for each CNI call); the rest of
an exec'd call is the process start, the shim and the HTTP exchange.

    python bench/cni_add.py [--cycles 50] [--datapath bpf|routes] [--profile]
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from lab.backends.netns.cniexec import REFERENCE, exec_cni
from lab.backends.netns.host import remove_tree
from lab.backends.netns.node import NetnsNode
from lab.deploy import cni_binary, lab_venv

HERE = Path(__file__).resolve().parent
GOALS = {"ADD": (0.6, 2.0), "DEL": (0.3, None)}  # podnet / reference, podnet / floor
FLOOR = "kernel floor"
EXEC = "exec alone (/bin/true)"  # what every exec'd plugin pays before it does anything: the harness's nsenter, env


def timed(node: NetnsNode, argv: list[str], command: str, conf: dict[str, object], netns: str, cid: str) -> float:
    status, output, seconds = exec_cni(node, argv, command, conf, netns, cid, pod=cid)
    if status != 0:
        raise RuntimeError(f"{argv[0]} {command}: {output}")
    return seconds


class FloorProcess:
    """bench/kernel_floor.py serving in the node's namespace."""

    def __init__(self, node: NetnsNode, python: str):
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={node.netns_path}", python, str(HERE / "kernel_floor.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ask("")  # {"ready": true}

    def ask(self, line: str) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if line:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        reply: dict[str, object] = json.loads(self.proc.stdout.readline() or "{}")
        if "error" in reply or not reply:
            raise RuntimeError(f"kernel floor: {line}: {reply or 'exited'}")
        return reply

    def timed(self, command: str, netns: str, ident: str) -> float:
        reply = self.ask(f"ADD {netns} {ident}" if command == "ADD" else f"DEL {ident}")
        return float(reply["seconds"])  # type: ignore[arg-type]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


PHASE = re.compile(r"phases: cni (ADD|DEL) \S+: ([\d.]+) ms: (.*)$")


def phase_table(log: str, cycles: int) -> Table:
    """Medians per phase of the agent's `phases:` lines (the last `cycles` of each command)."""
    per: dict[str, list[tuple[float, dict[str, float]]]] = {"ADD": [], "DEL": []}
    for line in log.splitlines():
        m = PHASE.search(line)
        if m is None:
            continue
        phases: dict[str, float] = {}
        for part in m.group(3).split(", "):
            name, _, ms = part.rpartition(" ")
            phases[name] = phases.get(name, 0.0) + float(ms)
        per[m.group(1)].append((float(m.group(2)), phases))
    table = Table(title="where the agent's time goes per CNI call (medians, ms; --profile)")
    table.add_column("command")
    table.add_column("agent total", justify="right")
    table.add_column("phases (median ms each)")
    for command, rows in per.items():
        rows = rows[-cycles:]
        if not rows:
            continue
        names = list(dict.fromkeys(name for _, phases in rows for name in phases))
        medians = ", ".join(f"{n} {statistics.median([p.get(n, 0.0) for _, p in rows]):.2f}" for n in names)
        table.add_row(command, f"{statistics.median([t for t, _ in rows]):.2f}", medians)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--datapath", choices=["bpf", "routes"], default="bpf", help="the agent's datapath")
    parser.add_argument("--profile", action="store_true", help="agent at debug level: print its time per phase")
    args = parser.parse_args()
    console = Console(width=140)
    python, _ = lab_venv()
    podnet_cni = str(cni_binary(python))
    run_id = secrets.token_hex(3)
    root = Path(f"/tmp/podnet-bench-cni-{run_id}")
    node = NetnsNode("cnibench", run_id, root)
    times: dict[str, dict[str, list[float]]] = {
        "podnet": {"ADD": [], "DEL": []},
        "podnet (python plugin)": {"ADD": [], "DEL": []},
        "bridge+host-local": {"ADD": [], "DEL": []},
        FLOOR: {"ADD": [], "DEL": []},
        EXEC: {"ADD": [], "DEL": []},
    }
    floor: FloorProcess | None = None
    agent_log = ""
    try:
        node.create()
        debug = ("--log-level", "debug") if args.profile else ()
        node.start_agent(str(python), "--pod-cidr", "10.57.0.0/24", "--datapath", args.datapath, *debug)
        floor = FloorProcess(node, str(python))
        podnet_conf = {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "agentSocket": str(node.agent_sock)}
        confs: dict[str, tuple[list[str], dict[str, object]]] = {
            "podnet": ([podnet_cni], podnet_conf),
            "podnet (python plugin)": ([str(python), "-m", "podnet.cmd.cni"], podnet_conf),
            "bridge+host-local": (
                [str(REFERENCE / "bridge")],
                {
                    "cniVersion": "1.0.0",
                    "name": "ref",
                    "type": "bridge",
                    "bridge": "cniref0",
                    "isGateway": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.58.0.0/24"}]],
                        "dataDir": str(node.path("host-local")),
                    },
                },
            ),
        }
        with console.status(f"{args.cycles} ADD/DEL cycles per plugin…"):
            for i in range(args.cycles + 1):  # the first cycle warms caches and is not counted
                for label, (argv, conf) in confs.items():
                    ns = f"{node.netns}-p{i}{label[0]}{len(label)}"
                    subprocess.run(["ip", "netns", "add", ns], check=True)
                    try:
                        cid = f"c{i}-{len(label)}"
                        add = timed(node, argv, "ADD", conf, f"/run/netns/{ns}", cid)
                        delete = timed(node, argv, "DEL", conf, f"/run/netns/{ns}", cid)
                    finally:
                        subprocess.run(["ip", "netns", "del", ns], check=False)
                    if i:
                        times[label]["ADD"].append(add)
                        times[label]["DEL"].append(delete)
                ns = f"{node.netns}-f{i}"
                subprocess.run(["ip", "netns", "add", ns], check=True)
                try:
                    add = floor.timed("ADD", f"/run/netns/{ns}", f"f{i}")
                    delete = floor.timed("DEL", "", f"f{i}")
                finally:
                    subprocess.run(["ip", "netns", "del", ns], check=False)
                if i:
                    times[FLOOR]["ADD"].append(add)
                    times[FLOOR]["DEL"].append(delete)
                    for cmd in ("ADD", "DEL"):
                        times[EXEC][cmd].append(exec_cni(node, ["/bin/true"], cmd, {}, "/run/netns/x", "c")[2])
        if args.profile:
            agent_log = node.log_text("podnet-agent")
    finally:
        if floor is not None:
            floor.close()
        node.destroy()
        remove_tree(root)
    table = Table(
        title=f"CNI latency, {args.cycles} cycles each (exec'd plugins, real kernel, same node; "
        f"podnet's {args.datapath} datapath)"
    )
    columns = ("ADD median ms", "ADD p90 ms", "DEL median ms", "DEL p90 ms")
    columns += ("ADD / ref", "DEL / ref", "ADD / floor", "DEL / floor")
    table.add_column("plugin")
    for column in columns:
        table.add_column(column, justify="right")
    ref, base = times["bridge+host-local"], times[FLOOR]
    for label, t in times.items():
        row = [label]
        for cmd in ("ADD", "DEL"):
            row += [f"{statistics.median(t[cmd]) * 1000:.1f}", f"{statistics.quantiles(t[cmd], n=10)[-1] * 1000:.1f}"]
        row += [f"{statistics.median(t[c]) / statistics.median(ref[c]):.2f}" for c in ("ADD", "DEL")]
        row += [f"{statistics.median(t[c]) / statistics.median(base[c]):.2f}" for c in ("ADD", "DEL")]
        table.add_row(*row)
    console.print(table)
    podnet = times["podnet"]
    for cmd, (vs_ref, vs_floor) in GOALS.items():
        ratio = statistics.median(podnet[cmd]) / statistics.median(ref[cmd])
        line = f"podnet {cmd}: {ratio:.2f}x bridge+host-local (goal ≤ {vs_ref}x)"
        if vs_floor is not None:
            line += f", {statistics.median(podnet[cmd]) / statistics.median(base[cmd]):.2f}x the kernel floor (goal ≤ {vs_floor}x)"
        console.print(line)
    console.print(
        "kernel floor: bench/kernel_floor.py, podnet's kernel operations alone, in a running process (DEL includes "
        "the veth's deletion, which podnet's DEL waits for: its store work overlaps it); exec alone: what each exec'd "
        "plugin pays before it runs (nsenter into the node, env), included in every plugin's figures"
    )
    spare = statistics.median(podnet["ADD"]) - statistics.median(times[EXEC]["ADD"])
    console.print(
        f"podnet ADD less the exec: {spare * 1000:.1f} ms = {spare / statistics.median(base['ADD']):.2f}x the kernel floor"
    )
    if agent_log:
        console.print(phase_table(agent_log, args.cycles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
