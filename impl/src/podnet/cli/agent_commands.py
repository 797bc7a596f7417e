"""`podnet status`, `podnet endpoint list|get`, `podnet ipam list`: the agent's view."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from podnet.api.client import DEFAULT_SOCKET, AgentClient
from podnet.cli.output import print_json, print_table
from podnet.errors import PodnetError


def add_socket_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket",
        default=os.environ.get("PODNET_SOCKET", DEFAULT_SOCKET),
        help=f"the agent's API socket (default $PODNET_SOCKET or {DEFAULT_SOCKET})",
    )


def register(commands: Any) -> None:
    status = commands.add_parser("status", help="the agent's health, pod CIDR and endpoint count")
    add_socket_option(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)

    endpoint = commands.add_parser("endpoint", help="endpoints of this node")
    sub = endpoint.add_subparsers(dest="endpoint_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="every endpoint")
    add_socket_option(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_endpoint_list)
    get = sub.add_parser("get", help="one endpoint (by id or a unique id prefix)")
    get.add_argument("id")
    add_socket_option(get)
    get.add_argument("--json", action="store_true", help="print JSON")
    get.set_defaults(handler=_endpoint_get)


def register_ipam_list(ipam_commands: Any) -> None:
    listing = ipam_commands.add_parser("list", help="this node's pod CIDR and every allocated IP")
    add_socket_option(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_ipam_list)


def _status(args: argparse.Namespace) -> int:
    client = AgentClient(args.socket)
    health = client.healthz()
    # A node still waiting for its pod CIDR serves only healthz: show that, not the 503.
    node = client.request("GET", "/v1/node") if health.get("pod-cidr") else None
    if args.json:
        print_json({"healthz": health, "node": node})
        return 0 if health["state"] != "failure" else 1
    print_table(
        f"podnet agent on {health['node']}: {health['state'].upper()} (up {health['uptime-s']:.0f}s)",
        ["component", "state", "detail"],
        [
            ("store", health["store"]["state"], health["store"]["message"]),
            ("datapath", health["datapath"]["state"], health["datapath"]["message"]),
            ("ipam", health["ipam"]["state"], health["ipam"]["message"]),
            *([("bgp", health["bgp"]["state"], health["bgp"]["message"])] if health.get("bgp") else []),
            *(
                [
                    ("node", "", f"pod CIDR {', '.join(node['pod-cidrs'])}, router IP {node['router-ip']}"),
                    ("cluster pool", "", node["cluster-pool"]),
                ]
                if node
                else [("node", "", "no pod CIDR yet")]
            ),
            ("endpoints", "", str(health["endpoints"])),
            # stored records the agent cannot read: kept as they are, never acted on
            *(("quarantined", q["key"], q["reason"]) for q in health.get("quarantined", [])),
        ],
    )
    return 0 if health["state"] != "failure" else 1


def _short(text: str | None, n: int = 12) -> str:
    return (text or "")[:n]


def _endpoint_list(args: argparse.Namespace) -> int:
    endpoints = AgentClient(args.socket).request("GET", "/v1/endpoint")
    if args.json:
        print_json(endpoints)
        return 0
    rows = []
    for e in endpoints:
        counters = e.get("counters") or {}
        rows.append(
            (
                _short(e["id"]),
                e["state"],
                e.get("container-name") or e.get("pod-name") or _short(e.get("container-id")),
                ", ".join(a.get("ipv4", "") for a in e["networking"]["addressing"]),
                e["networking"]["interface-name"],
                ", ".join(e.get("labels") or []),
                f"{counters.get('rx-packets', 0)}/{counters.get('tx-packets', 0)}",
            )
        )
    print_table(
        f"{len(endpoints)} endpoint(s)",
        ["id", "state", "container", "IPv4", "host interface", "labels", "pkts from/to"],
        rows,
    )
    return 0


def _resolve(client: AgentClient, prefix: str) -> dict[str, Any]:
    endpoints = client.request("GET", "/v1/endpoint")
    exact = [e for e in endpoints if e["id"] == prefix]
    matches = exact or [e for e in endpoints if e["id"].startswith(prefix)]
    if not matches:
        raise PodnetError(f"no endpoint with id {prefix!r} (podnet endpoint list shows them)")
    if len(matches) > 1:
        raise PodnetError(f"endpoint id prefix {prefix!r} is ambiguous: {', '.join(_short(e['id']) for e in matches)}")
    result: dict[str, Any] = matches[0]
    return result


def _endpoint_get(args: argparse.Namespace) -> int:
    endpoint = _resolve(AgentClient(args.socket), args.id)
    if args.json:
        print_json(endpoint)
        return 0
    net = endpoint["networking"]
    counters = endpoint.get("counters") or {}
    rows = [
        ("id", endpoint["id"]),
        ("state", endpoint["state"]),
        ("container", f"{endpoint.get('container-name') or '-'} ({endpoint.get('container-id') or '-'})"),
        (
            "docker endpoint / network",
            f"{endpoint.get('docker-endpoint-id') or '-'} / {endpoint.get('docker-network-id') or '-'}",
        ),
        ("labels", ", ".join(endpoint.get("labels") or []) or "-"),
        ("IPv4", ", ".join(a.get("ipv4", "") for a in net["addressing"])),
        ("router IP", net["router-ip"]),
        ("host interface", f"{net['interface-name']} (index {net['interface-index']}, MAC {net['host-mac']})"),
        ("container interface", f"{net['container-interface-name']} (MAC {net['mac']})"),
        ("sandbox", endpoint.get("sandbox-key") or "-"),
        (
            "counters",
            f"from container {counters.get('rx-packets', 0)} pkts/{counters.get('rx-bytes', 0)} B, "
            f"to container {counters.get('tx-packets', 0)} pkts/{counters.get('tx-bytes', 0)} B",
        ),
    ]
    rows += [
        (time.strftime("%H:%M:%S", time.localtime(x["timestamp"])), f"{x['state']}: {x['message']}")
        for x in endpoint.get("log", [])
    ]
    print_table(None, ["field", "value"], rows)
    return 0


def _ipam_list(args: argparse.Namespace) -> int:
    state = AgentClient(args.socket).request("GET", "/v1/ipam")
    if args.json:
        print_json(state)
        return 0
    now = time.time()
    rows = []
    for a in state["allocations"]:
        expires = a.get("expires-at")
        rows.append((a["ip"], a["owner"], "-" if expires is None else f"in {max(0, expires - now):.0f}s"))
    print_table(
        f"pod CIDR {state['pod-cidr']}: {state['used']}/{state['capacity']} in use, router IP {state['router-ip']}",
        ["IP", "owner", "expires"],
        rows,
    )
    return 0
