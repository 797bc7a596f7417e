"""`podnet ipam …`."""

from __future__ import annotations

import argparse
from typing import Any

from podnet.cli.agent_commands import register_ipam_list
from podnet.cli.output import print_json, print_lines, print_table
from podnet.ipam.plan import make_plan


def register(commands: Any) -> None:
    ipam = commands.add_parser("ipam", help="IP address management")
    sub = ipam.add_subparsers(dest="ipam_command", metavar="SUBCOMMAND", required=True)

    plan = sub.add_parser(
        "plan",
        help="show which node gets which pod CIDR from a cluster pool",
        description="Plan a cluster pool: run the operator's allocation on an empty pool and show, "
        "node by node, the pod CIDR it would get, how many pod IPs that gives, and which nodes get none.",
    )
    plan.add_argument(
        "--cluster-cidr",
        action="append",
        required=True,
        metavar="CIDR",
        help="a cluster CIDR (repeat, in order of use)",
    )
    plan.add_argument("--mask-size", type=int, required=True, metavar="N", help="prefix length of each node's pod CIDR")
    group = plan.add_mutually_exclusive_group(required=True)
    group.add_argument("--nodes", type=_positive, metavar="N", help="plan for N nodes named node1 … nodeN")
    group.add_argument("--node", action="append", metavar="NAME", help="plan for these nodes, in order (repeat)")
    plan.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plan.set_defaults(handler=_plan)
    register_ipam_list(sub)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid node count {text!r}: expected a positive integer") from None
    if value < 1 or value > 1 << 20:
        raise argparse.ArgumentTypeError(f"invalid node count {value}: expected 1 to {1 << 20}")
    return value


def _plan(args: argparse.Namespace) -> int:
    nodes = args.node or [f"node{i}" for i in range(1, args.nodes + 1)]
    plan = make_plan(args.cluster_cidr, args.mask_size, nodes)
    if args.json:
        print_json(plan.to_json())
        return 0
    pool = plan.pool
    print_lines([f"note: {note}" for note in plan.notes])
    print_table(
        f"cluster pool {pool.describe()}: {pool.capacity} node CIDRs",
        ["node", "pod CIDR", "from cluster CIDR", "pod IPs"],
        [
            (n.node, n.pod_cidr, n.cluster_cidr, n.pod_ips) if n.pod_cidr is not None else (n.node, "none", "-", 0)
            for n in plan.nodes
        ],
    )
    unassigned = [n for n in plan.nodes if n.pod_cidr is None]
    assigned = len(plan.nodes) - len(unassigned)
    print(
        f"{assigned} of {len(plan.nodes)} nodes get a pod CIDR; each pod CIDR leaves 1 address for the node's router IP."
    )
    for n in unassigned:
        print(f"{n.node} gets no pod CIDR: {n.reason}")
    return 0
