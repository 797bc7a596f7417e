"""`podnet bgp peers|routes`."""

from __future__ import annotations

import argparse
from typing import Any

from podnet.api.client import AgentClient
from podnet.cli.agent_commands import add_socket_option
from podnet.cli.output import print_json, print_table


def register(commands: Any) -> None:
    bgp = commands.add_parser("bgp", help="the BGP session to the ToR and the announced pod CIDR")
    sub = bgp.add_subparsers(dest="bgp_command", metavar="SUBCOMMAND", required=True)
    for name, handler, text in (("peers", _peers, "BGP sessions"), ("routes", _routes, "routes announced")):
        p = sub.add_parser(name, help=text)
        add_socket_option(p)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=handler)


def _status(args: argparse.Namespace) -> dict[str, Any]:
    status: dict[str, Any] = AgentClient(args.socket).request("GET", "/v1/bgp")
    return status


def _peers(args: argparse.Namespace) -> int:
    status = _status(args)
    if args.json:
        print_json(status)
        return 0
    if not status["enabled"] or (status.get("message") and not status["peers"]):
        print(status.get("message") or "BGP is off")
        return 0 if not status["enabled"] else 1
    print_table(
        f"BGP on {status['node-ip']} (AS {status['local-asn']})",
        ["peer", "address", "AS", "state", "session", "since", "routes exported"],
        [
            (p["name"], p["peer-ip"], p["peer-asn"], p["state"], p["session"], p["since"], p["routes-exported"])
            for p in status["peers"]
        ],
    )
    if status.get("message"):  # e.g. the speaker was killed and the agent started it again
        print(f"speaker: {status['message']}")
    return 0


def _routes(args: argparse.Namespace) -> int:
    status = _status(args)
    if args.json:
        print_json({"routes": status.get("routes", []), "next-hop": status.get("node-ip")})
        return 0
    print_table(None, ["announced prefix", "next hop"], [(r, status.get("node-ip")) for r in status.get("routes", [])])
    return 0
