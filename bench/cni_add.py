"""CNI ADD / DEL latency: podnet vs the reference bridge + host-local, same node, same run.

One node namespace runs podnet's agent (from the lab venv: the deployed wheel);
each cycle makes a fresh pod namespace, then times ADD and DEL of podnet's
exec'd plugin (the compiled podnet-cni, which forwards to the agent), of the
pure-Python plugin (`python -m podnet.cmd.cni`, for comparison), and of
Debian's bridge plugin with host-local IPAM, interleaved so drift hits all.

    python bench/cni_add.py [--cycles 50] [--datapath bpf|routes]
"""

from __future__ import annotations

import argparse
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


def timed(node: NetnsNode, argv: list[str], command: str, conf: dict[str, object], netns: str, cid: str) -> float:
    status, output, seconds = exec_cni(node, argv, command, conf, netns, cid, pod=cid)
    if status != 0:
        raise RuntimeError(f"{argv[0]} {command}: {output}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--datapath", choices=["bpf", "routes"], default="bpf", help="the agent's datapath")
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
    }
    try:
        node.create()
        node.start_agent(str(python), "--pod-cidr", "10.57.0.0/24", "--datapath", args.datapath)
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
    finally:
        node.destroy()
        remove_tree(root)
    table = Table(
        title=f"CNI latency, {args.cycles} cycles each (exec'd plugins, real kernel, same node; "
        f"podnet's {args.datapath} datapath)"
    )
    for column in ("plugin", "ADD median ms", "ADD p90 ms", "DEL median ms", "DEL p90 ms", "ADD ratio", "DEL ratio"):
        table.add_column(column, justify="left" if column == "plugin" else "right")
    ref = times["bridge+host-local"]
    for label, t in times.items():
        row = [label]
        for cmd in ("ADD", "DEL"):
            row += [f"{statistics.median(t[cmd]) * 1000:.1f}", f"{statistics.quantiles(t[cmd], n=10)[-1] * 1000:.1f}"]
        row += [f"{statistics.median(t[c]) / statistics.median(ref[c]):.3f}" for c in ("ADD", "DEL")]
        table.add_row(*row)
    console.print(table)
    console.print("ratio = podnet / bridge+host-local median (goal ≤ 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
