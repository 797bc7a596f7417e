"""`podnet node list`: every registered node, its pod CIDR or why it has none (from the kvstore)."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from typing import Any

from podnet.cli.output import print_json, print_table
from podnet.kvstore import DEFAULT_URL, open_store
from podnet.operator.registry import registrations, statuses


def register(commands: Any) -> None:
    node = commands.add_parser("node", help="cluster nodes and their pod CIDRs")
    sub = node.add_subparsers(dest="node_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="every registered node")
    listing.add_argument(
        "--store",
        default=os.environ.get("PODNET_STORE", DEFAULT_URL),
        help=f"the cluster's kvstore (default $PODNET_STORE or {DEFAULT_URL})",
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        regs = registrations(store)
        status = statuses(store)
    rows: list[dict[str, Any]] = []
    for reg in regs:
        s = status.get(reg.name)
        condition = s.condition if s else None
        rows.append(
            {
                "name": reg.name,
                "node-ip": reg.node_ip,
                "pod-cidrs": s.pod_cidrs if s else [],
                "condition": asdict(condition) if condition else None,
            }
        )
    if args.json:
        print_json(rows)
        return 0
    print_table(
        f"{len(rows)} node(s) in {args.store}",
        ["node", "node IP", "pod CIDRs", "condition"],
        [
            (
                r["name"],
                r["node-ip"],
                ", ".join(r["pod-cidrs"]) or "none",
                "waiting for the operator"
                if r["condition"] is None
                else f"{r['condition']['reason']}: {r['condition']['message']}",
            )
            for r in rows
        ],
    )
    return 0
