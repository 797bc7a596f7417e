"""`podnet node list|register|delete`: the cluster's nodes in the kvstore.

`list` shows every registered node with its pod CIDR or why it has none.
`register` adds nodes ahead of their agents (the operator serves nodes in
registration order, so an admin can fix that order; several in one call are
registered in the order given); `delete` removes a node that is gone, and the
operator releases its pod CIDR.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from typing import Any

from podnet.cli.output import print_json, print_table
from podnet.errors import PodnetError
from podnet.kvstore import DEFAULT_URL, open_store
from podnet.operator.registry import deregister_node, register_node, registrations, statuses


def register(commands: Any) -> None:
    node = commands.add_parser("node", help="cluster nodes and their pod CIDRs")
    sub = node.add_subparsers(dest="node_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="every registered node")
    _store_option(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
    add = sub.add_parser(
        "register", help="register nodes (before their agents start, to fix the order): NAME… --node-ip IP…"
    )
    _store_option(add)
    add.add_argument("name", nargs="+", help="node name; several: registered in this order")
    add.add_argument(
        "--node-ip", required=True, action="append", help="the node's underlay IP (BGP next hop); one per name"
    )
    add.set_defaults(handler=_register)
    delete = sub.add_parser("delete", help="remove a node that is gone; the operator releases its pod CIDR")
    _store_option(delete)
    delete.add_argument("name", help="node name")
    delete.set_defaults(handler=_delete)


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=os.environ.get("PODNET_STORE", DEFAULT_URL),
        help=f"the cluster's kvstore (default $PODNET_STORE or {DEFAULT_URL})",
    )


def _register(args: argparse.Namespace) -> int:
    if len(args.name) != len(args.node_ip):
        raise PodnetError(f"{len(args.name)} node names but {len(args.node_ip)} --node-ip: give one IP per name")
    with open_store(args.store) as store:
        for name, node_ip in zip(args.name, args.node_ip, strict=True):
            reg = register_node(store, name, node_ip)
            print(f"node {reg.name} registered with node IP {reg.node_ip}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        if not deregister_node(store, args.name):
            raise PodnetError(f"no node {args.name!r} is registered in {args.store}")
    print(f"node {args.name} deleted; the operator releases its pod CIDR")
    return 0


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
