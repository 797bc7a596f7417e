"""Mutants of a libnetwork remote driver: podnet-docker behind a proxy that breaks exactly one rule of
`lab conformance libnetwork` (MUTANTS says how). In-process (`Mutant.handle`, the unit tests) or as a
process serving a unix socket (`python -m tests.conformance.lnwproxy LISTEN UPSTREAM RULE STATE_DIR`,
the integration tests, started by the suite in dockerd's namespace)."""

from __future__ import annotations

import json
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from podnet.api import unixhttp

MUTANTS = {
    "handshake.activate": "Implements is a string, not a list",
    "network.capabilities": 'Scope "cluster"',
    "ipam.capabilities": 'RequiresMACAddress is "no", a string',
    "ipam.address-spaces": "GlobalDefaultAddressSpace is empty",
    "errors.bad-payload": "a body that is not JSON gets 200 {}",
    "errors.unknown-method": "an unknown method gets 500 with Err",
    "errors.optional-methods": "DiscoverNew fails: 500 'not implemented'",
    "endpoint.interface-reply": "CreateEndpoint echoes the Interface it got",
    "endpoint.join-reply": "Join names an interface that does not exist",
    "endpoint.oper-info": "EndpointOperInfo's Value is a string",
    "endpoint.delete-cleans": "DeleteEndpoint answers 200 and deletes nothing",
    "ipam.pool-idempotent": "each RequestPool answers other Data",
    "ipam.pool-refcounted": "the first ReleasePool ends the pool, however many requested it",
    "ipam.gateway-request": "the gateway address comes without its prefix length",
    "ipam.request-address": "addresses come without their prefix length",
    "ipam.release-address": "ReleaseAddress answers 200 and releases nothing",
    "errors.err-field": "IPAM failures answer 200 with Err (dockerd reads Error there)",
    "docker.network-create": "CreateNetwork fails on the options dockerd always sends",
    "docker.run-join": "Join's default route goes via a next hop that is not on-link",
    "docker.subnet-honoured": "RequestPool ignores the Pool asked for",
    "docker.ip-honoured": "on a pool asked for (--subnet), RequestAddress ignores the Address asked for",
    "docker.network-rm-releases": "DeleteNetwork answers 200 and forgets nothing",
    "docker.plugin-restart": "after a restart, CreateEndpoint fails",
}
GATEWAY = "com.docker.network.gateway"


def _json(status: int, body: Any) -> tuple[int, bytes]:
    return status, json.dumps(body).encode()


def _bare(address: str) -> str:
    return address.split("/")[0]


class Mutant:
    def __init__(self, upstream: str, rule: str, state: Path):
        if rule not in MUTANTS:
            raise ValueError(f"no mutant for {rule!r}")
        self.upstream, self.rule = upstream, rule
        self.lock = threading.Lock()
        self.calls = 0
        self.released: set[str] = set()
        self.asked_pools: set[str] = set()
        state.mkdir(parents=True, exist_ok=True)
        marker = state / "started"
        self.restarted = marker.exists()
        marker.write_text("")

    def forward(self, path: str, body: bytes) -> tuple[int, bytes]:
        r = unixhttp.request(self.upstream, "POST", path, body=body, timeout=60)
        return r.status, r.body

    def handle(self, path: str, body: bytes) -> tuple[int, bytes]:
        rule = self.rule
        try:
            request: Any = json.loads(body) if body.strip() else {}
        except ValueError:
            if rule == "errors.bad-payload":
                return _json(200, {})
            return self.forward(path, body)
        request = request if isinstance(request, dict) else {}
        method = path.rsplit(".", 1)[-1]
        # -- answered without podnet ------------------------------------------------------
        if rule == "errors.optional-methods" and path == "/NetworkDriver.DiscoverNew":
            return _json(500, {"Err": "DiscoverNew: not implemented"})
        if rule == "endpoint.delete-cleans" and path == "/NetworkDriver.DeleteEndpoint":
            return _json(200, {})
        if rule == "ipam.release-address" and path == "/IpamDriver.ReleaseAddress":
            return _json(200, {})
        if rule == "docker.network-rm-releases" and path == "/NetworkDriver.DeleteNetwork":
            return _json(200, {})
        dockerd_options = "com.docker.network.enable_ipv6" in (request.get("Options") or {})
        if rule == "docker.network-create" and path == "/NetworkDriver.CreateNetwork" and dockerd_options:
            return _json(500, {"Err": "unexpected option com.docker.network.enable_ipv6"})
        if rule == "docker.plugin-restart" and self.restarted and path == "/NetworkDriver.CreateEndpoint":
            return _json(500, {"Err": f"unknown network {request.get('NetworkID', '')[:12]}"})
        if rule == "ipam.pool-refcounted":
            with self.lock:
                if path == "/IpamDriver.ReleasePool":
                    self.released.add(str(request.get("PoolID")))
                    return _json(200, {})
                if path == "/IpamDriver.RequestAddress" and request.get("PoolID") in self.released:
                    return _json(500, {"Err": f"pool {request.get('PoolID')} was released"})
        # -- what goes to podnet --------------------------------------------------------------
        if rule == "docker.subnet-honoured" and path == "/IpamDriver.RequestPool":
            request = {**request, "Pool": "", "SubPool": ""}
        if rule == "docker.ip-honoured" and path == "/IpamDriver.RequestAddress":
            with self.lock:
                if request.get("PoolID") in self.asked_pools and not (request.get("Options") or {}).get(
                    "RequestAddressType"
                ):
                    request = {**request, "Address": ""}
        status, raw = self.forward(path, json.dumps(request).encode() if body.strip() else body)
        # -- what comes back ---------------------------------------------------------------------
        try:
            reply: Any = json.loads(raw) if raw.strip() else None
        except ValueError:
            return status, raw
        if rule == "errors.unknown-method" and status == 404:
            return _json(500, {"Err": f"{path}: unknown"})
        if rule == "errors.err-field" and path.startswith("/IpamDriver.") and status != 200:
            return _json(200, reply)
        if status != 200 or not isinstance(reply, dict):
            return status, raw
        if rule == "ipam.pool-refcounted" and path == "/IpamDriver.RequestPool":
            with self.lock:
                self.released.discard(str(reply.get("PoolID")))
        if rule == "docker.ip-honoured" and path == "/IpamDriver.RequestPool" and request.get("Pool"):
            with self.lock:
                self.asked_pools.add(str(reply.get("PoolID")))
        if rule == "handshake.activate" and method == "Activate":
            reply["Implements"] = ", ".join(reply.get("Implements", []))
        elif rule == "network.capabilities" and path == "/NetworkDriver.GetCapabilities":
            reply["Scope"] = "cluster"
        elif rule == "ipam.capabilities" and path == "/IpamDriver.GetCapabilities":
            reply["RequiresMACAddress"] = "no"
        elif rule == "ipam.address-spaces" and method == "GetDefaultAddressSpaces":
            reply["GlobalDefaultAddressSpace"] = ""
        elif rule == "endpoint.interface-reply" and method == "CreateEndpoint":
            reply["Interface"] = request.get("Interface")
        elif rule == "endpoint.join-reply" and method == "Join":
            reply["InterfaceName"] = {**(reply.get("InterfaceName") or {}), "SrcName": "cfnosuchif0"}
        elif rule == "docker.run-join" and method == "Join":
            for route in reply.get("StaticRoutes") or []:
                if route.get("Destination") == "0.0.0.0/0":
                    route.update(RouteType=0, NextHop="198.51.100.1")
        elif rule == "endpoint.oper-info" and method == "EndpointOperInfo":
            reply["Value"] = "not-a-map"
        elif rule == "ipam.pool-idempotent" and method == "RequestPool":
            with self.lock:
                self.calls += 1
                reply["Data"] = {**(reply.get("Data") or {}), "cf.call": str(self.calls)}
        elif rule in ("ipam.gateway-request", "ipam.request-address") and method == "RequestAddress":
            gateway = (request.get("Options") or {}).get("RequestAddressType") == GATEWAY
            if gateway == (rule == "ipam.gateway-request") and reply.get("Address"):
                reply["Address"] = _bare(reply["Address"])
        return status, json.dumps(reply).encode()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(listen: str, mutant: Mutant) -> _Server:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, reply = mutant.handle(self.path, body)
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def address_string(self) -> str:
            return "unix"

        def log_message(self, format: str, *args: Any) -> None:
            print(format % args, file=sys.stderr, flush=True)

    Path(listen).unlink(missing_ok=True)
    return _Server(listen, Handler)


def main() -> int:
    listen, upstream, rule, state = sys.argv[1:5]
    server = serve(listen, Mutant(upstream, rule, Path(state)))
    print(f"mutant {rule} ({MUTANTS[rule]}) on {listen} in front of {upstream}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
