"""`podnet monitor`: stream the datapath's drop (and trace) events, like `cilium monitor`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from podnet.api.client import AgentClient
from podnet.cli.agent_commands import add_socket_option


def register(commands: Any) -> None:
    p = commands.add_parser("monitor", help="stream drop/trace events from the eBPF datapath")
    p.add_argument("--type", choices=["drop", "trace", "all"], default="drop", help="which events (default drop)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--count", type=int, metavar="N", help="stop after N events")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="stop after this long")
    p.add_argument("--recent", action="store_true", help="first show the last drops the agent saw")
    add_socket_option(p)
    p.set_defaults(handler=_monitor)


def _ident(number: int, labels: list[str]) -> str:
    return f"{number}" + (f" ({','.join(labels)})" if labels else "")


def format_event(e: dict[str, Any]) -> str:
    where = e.get("endpoint-name") or e.get("endpoint-id") or f"ifindex {e['ifindex']}"
    ports = e["protocol"] in ("TCP", "UDP")
    src = f"{e['saddr']}:{e['sport']}" if ports else e["saddr"]
    dst = f"{e['daddr']}:{e['dport']}" if ports else e["daddr"]
    head = f"xx drop ({e['reason']})" if e["type"] == "drop" else "-> trace"
    return (
        f"{head} {e['direction']} endpoint {where}: identity {_ident(e['src-identity'], e.get('src-labels', []))}"
        f" -> {_ident(e['dst-identity'], e.get('dst-labels', []))}: {e['protocol']} {src} -> {dst}, {e['length']} bytes"
    )


def _monitor(args: argparse.Namespace) -> int:
    query = {"type": args.type}
    if args.recent:
        query["recent"] = "true"
    deadline = time.monotonic() + args.timeout if args.timeout else None
    client = AgentClient(args.socket)
    if not args.json:
        print(f"listening for {args.type} events (Ctrl-C to stop)", file=sys.stderr)
    for seen, event in enumerate(client.stream("/v1/monitor", query=query, timeout=args.timeout), 1):
        print(json.dumps(event) if args.json else format_event(event), flush=True)
        if (args.count and seen >= args.count) or (deadline and time.monotonic() > deadline):
            break
    return 0
