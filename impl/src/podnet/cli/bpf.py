"""`podnet bpf endpoints|policy|counters|ipcache`: the node's BPF maps, decoded by the agent."""

from __future__ import annotations

import argparse
from typing import Any

from podnet.api.client import AgentClient
from podnet.cli.agent_commands import add_socket_option
from podnet.cli.output import print_json, print_table


def register(commands: Any) -> None:
    bpf = commands.add_parser("bpf", help="dump the eBPF datapath's maps")
    sub = bpf.add_subparsers(dest="bpf_command", metavar="MAP", required=True)
    for name, text in (
        ("endpoints", "pod IP -> host veth, MACs, identity, policy flag"),
        ("policy", "allowed (source identity, destination identity, protocol, port), with hits"),
        ("counters", "per endpoint: packets and bytes each way, drops by reason"),
        ("ipcache", "identities of IPs that are not this node's endpoints"),
    ):
        p = sub.add_parser(name, help=text)
        add_socket_option(p)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=_dump, map=name)


def _labels(labels: list[str]) -> str:
    return ",".join(labels)


def _dump(args: argparse.Namespace) -> int:
    maps = AgentClient(args.socket).request("GET", "/v1/bpf")
    entries = maps[args.map]
    if args.json:
        print_json(entries)
        return 0
    title = f"{args.map} ({maps['pin-dir']}/pn_{args.map})"
    if args.map == "endpoints":
        print_table(
            title,
            ["IP", "ifindex", "interface", "endpoint", "identity", "MAC", "node MAC", "policy"],
            [
                (
                    e["ip"],
                    e["ifindex"],
                    e.get("interface-name"),
                    e.get("endpoint-id"),
                    e["identity"],
                    e["mac"],
                    e["node-mac"],
                    "enforced" if e["policy-enforced"] else "allow all",
                )
                for e in entries
            ],
        )
    elif args.map == "policy":
        print_table(
            title,
            ["source", "destination", "protocol", "port", "packets", "bytes"],
            [
                (
                    f"{e['src-identity']} {_labels(e['src-labels'])}",
                    f"{e['dst-identity']} {_labels(e['dst-labels'])}",
                    e["protocol"],
                    e["port"] or "any",
                    e["packets"],
                    e["bytes"],
                )
                for e in entries
            ],
        )
    elif args.map == "counters":
        print_table(
            title,
            ["endpoint", "interface", "from-container pkts", "bytes", "to-container pkts", "bytes", "drops"],
            [
                (
                    e.get("endpoint-id") or f"ifindex {e['ifindex']}",
                    e.get("interface-name"),
                    e["from-container-packets"],
                    e["from-container-bytes"],
                    e["to-container-packets"],
                    e["to-container-bytes"],
                    ", ".join(f"{reason}: {n}" for reason, n in e["drops"].items()) or "0",
                )
                for e in entries
            ],
        )
    else:
        print_table(title, ["IP", "identity"], sorted(entries.items()))
    return 0
