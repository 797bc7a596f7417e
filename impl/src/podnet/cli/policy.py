"""`podnet policy import FILE | get [NAME] | delete NAME|--all` (like `cilium policy`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from podnet.api.client import AgentClient, path
from podnet.cli.agent_commands import add_socket_option
from podnet.cli.output import print_json, print_table
from podnet.errors import PodnetError


def register(commands: Any) -> None:
    policy = commands.add_parser("policy", help="network policy rules (identity-based, L3/L4)")
    sub = policy.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("import", help="import rules from a JSON file (one rule or an array; '-' reads stdin)")
    p.add_argument("file")
    add_socket_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_import)
    p = sub.add_parser("get", help="show the rules (all, or one by name)")
    p.add_argument("name", nargs="?")
    add_socket_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_get)
    p = sub.add_parser("delete", help="delete a rule by name, or --all")
    p.add_argument("name", nargs="?")
    p.add_argument("--all", action="store_true", help="delete every rule")
    add_socket_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_delete)


def _read(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as err:
        raise PodnetError(f"cannot read policy file {path}: {err.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as err:
        raise PodnetError(f"policy file {path} is not valid JSON: {err}") from None


def _selector(sel: dict[str, Any] | None) -> str:
    labels = (sel or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(all)"


def _ingress(rule: dict[str, Any]) -> str:
    parts = []
    for ing in rule.get("ingress", []):
        sources = ing.get("fromEndpoints")
        src = "any" if sources is None else " | ".join(_selector(s) for s in sources)
        ports = [
            f"{p['port'] or 'any'}/{p.get('protocol', 'ANY')}" for pr in ing.get("toPorts") or [] for p in pr["ports"]
        ]
        parts.append(f"from {src} to {', '.join(ports) or 'any port'}")
    return "; ".join(parts) or "deny all"


def _show(state: dict[str, Any], as_json: bool, name: str | None = None) -> int:
    rules = state["rules"] if name is None else [r for r in state["rules"] if r["name"] == name]
    if name is not None and not rules:
        raise PodnetError(f"policy rule {name} not found")
    if as_json:
        print_json({**state, "rules": rules})
        return 0
    if state.get("message"):
        print(state["message"])
    print_table(
        f"policy revision {state['revision']}",
        ["name", "selects", "ingress allowed"],
        [(r["name"], _selector(r.get("endpointSelector")), _ingress(r)) for r in rules],
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    state = AgentClient(args.socket).request("PUT", "/v1/policy", body=_read(args.file))
    return _show(state, args.json)


def _get(args: argparse.Namespace) -> int:
    return _show(AgentClient(args.socket).request("GET", "/v1/policy"), args.json, args.name)


def _delete(args: argparse.Namespace) -> int:
    if bool(args.name) == bool(args.all):
        raise PodnetError("name one rule to delete, or give --all")
    client = AgentClient(args.socket)
    result = client.request("DELETE", "/v1/policy" if args.all else path("/v1/policy", args.name))
    if args.json:
        print_json(result)
    else:
        print(f"deleted {len(result['deleted'])} rule(s): {', '.join(result['deleted']) or '-'}")
    return 0
