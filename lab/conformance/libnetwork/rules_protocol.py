"""libnetwork rules spoken directly: handshake, capabilities, errors, an endpoint's replies, IPAM."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from lab.conformance.libnetwork.context import GATEWAY, IPAM_DRIVER, NETWORK_DRIVER, Context, Reply
from lab.conformance.libnetwork.spec import ipam, is_cidr, is_ip, remote, seed
from lab.conformance.model import CannotCheck, Failed, Outcome, Rule

SCOPES = ("local", "global")
OPTIONAL = ("DiscoverNew", "DiscoverDelete", "ProgramExternalConnectivity", "RevokeExternalConnectivity")


def activate(ctx: Context) -> Outcome:
    r = ctx.post("/Plugin.Activate")
    implements = r.body.get("Implements") if isinstance(r.body, dict) else None
    if r.status != 200 or not isinstance(implements, list) or not all(isinstance(i, str) for i in implements):
        raise Failed("Plugin.Activate did not answer a manifest", '{"Implements": ["NetworkDriver", …]}', r.describe())
    if not {NETWORK_DRIVER, IPAM_DRIVER} & set(implements):
        raise Failed("it implements neither NetworkDriver nor IpamDriver", "NetworkDriver or IpamDriver", r.describe())
    return Outcome.ok(", ".join(implements))


def network_capabilities(ctx: Context) -> Outcome:
    body = ctx.must("/NetworkDriver.GetCapabilities")
    scope, connectivity = body.get("Scope"), body.get("ConnectivityScope")
    if scope not in SCOPES:
        raise Failed(f"Scope {scope!r}: dockerd refuses to register it", '"Scope": "local" or "global"', str(body))
    if connectivity not in (None, "", *SCOPES):
        raise Failed(f"ConnectivityScope {connectivity!r}", '"local", "global" or absent', str(body))
    return Outcome.ok(f"Scope {scope}")


def ipam_capabilities(ctx: Context) -> Outcome:
    r = ctx.post("/IpamDriver.GetCapabilities")
    if r.status == 404:
        return Outcome.ok("not implemented (404): registered with no capabilities")
    if not r.ok or not isinstance(r.body, dict):
        raise Failed(
            "GetCapabilities failed", "200 with {RequiresMACAddress, RequiresRequestReplay}, or 404", r.describe()
        )
    wrong = [
        k for k in ("RequiresMACAddress", "RequiresRequestReplay") if k in r.body and not isinstance(r.body[k], bool)
    ]
    if wrong:
        raise Failed(f"{', '.join(wrong)} not a boolean", "booleans", r.describe())
    return Outcome.ok(f"RequiresMACAddress {bool(r.body.get('RequiresMACAddress'))}")


def address_spaces(ctx: Context) -> Outcome:
    body = ctx.must("/IpamDriver.GetDefaultAddressSpaces")
    empty = [
        k
        for k in ("LocalDefaultAddressSpace", "GlobalDefaultAddressSpace")
        if not isinstance(body.get(k), str) or not body[k]
    ]
    if empty:
        raise Failed(f"{', '.join(empty)} missing or empty", "two address space names", str(body))
    return Outcome.ok(f"{body['LocalDefaultAddressSpace']}, {body['GlobalDefaultAddressSpace']}")


def _failure_problem(r: Reply) -> str:
    """Why dockerd would not see this failure's message (or would take it for success); "" if it would."""
    body = r.body if isinstance(r.body, dict) else {}
    ipam_call = r.path.startswith("/IpamDriver.")
    if r.status == 200:
        if ipam_call and body.get("Err") and not body.get("Error"):
            return "an IPAM failure answered 200 with Err: dockerd reads a 200 IPAM reply's error from Error, so it takes this for success"
        if not ipam_call and body.get("Error") and not body.get("Err"):
            return "a failure answered 200 with Error: dockerd reads Err, so it takes this for success"
        return ""
    if not isinstance(body.get("Err"), str) or not body["Err"]:
        return f"HTTP {r.status} without an Err message (dockerd shows the body as it is)" + (
            "; it says Error, dockerd reads Err" if body.get("Error") else ""
        )
    return ""


def err_field(ctx: Context) -> Outcome:
    """A failure it must report (IPAM: an address from a pool it never made; network: an endpoint of a
    network it never made, without an address), and every other failure seen so far."""
    if IPAM_DRIVER in ctx.implements:
        ctx.post("/IpamDriver.RequestAddress", {"PoolID": "conformance-unknown-pool", "Address": "", "Options": {}})
    if NETWORK_DRIVER in ctx.implements:
        ctx.post(
            "/NetworkDriver.CreateEndpoint",
            {"NetworkID": ctx.ident("nonet"), "EndpointID": ctx.ident("ep"), "Interface": None, "Options": {}},
        )
        ctx.post("/NetworkDriver.DeleteEndpoint", {"NetworkID": "", "EndpointID": ""})
    failures = [r for r in [*ctx.history, *ctx.transcript] if not r.ok and r.status != 404]
    if not failures:
        raise CannotCheck("no request failed, so no error reply was seen")
    for r in failures:
        problem = _failure_problem(r)
        if problem:
            raise Failed(problem, 'non-200 with {"Err": "…"} (IPAM on 200: {"Error": "…"})', r.describe())
    return Outcome.ok(f"{len(failures)} failures, each with its message where dockerd reads it")


def bad_payload(ctx: Context) -> Outcome:
    path = "/NetworkDriver.CreateNetwork" if NETWORK_DRIVER in ctx.implements else "/IpamDriver.RequestPool"
    r = ctx.post(path, raw=b'{"NetworkID": "x", "IPv4Data": [ not json')
    if not 400 <= r.status < 600:
        raise Failed(f"a body that is not JSON got HTTP {r.status}", "HTTP 4xx or 5xx", r.describe())
    return Outcome.ok(f"HTTP {r.status}")


def unknown_method(ctx: Context) -> Outcome:
    r = ctx.post("/NetworkDriver.ConformanceNoSuchMethod", {})
    if r.status != 404:
        raise Failed(f"an unknown method got HTTP {r.status}", "HTTP 404 Not Found", r.describe())
    return Outcome.ok()


def optional_methods(ctx: Context) -> Outcome:
    ctx.needs(NETWORK_DRIVER)
    with ctx.network() as net, ctx.endpoint(net) as ep:
        ids = {"NetworkID": net["network_id"], "EndpointID": ep["endpoint_id"]}
        bodies: dict[str, Any] = {
            "DiscoverNew": {"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.1", "self": False}},
            "DiscoverDelete": {"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.1", "self": False}},
            "ProgramExternalConnectivity": {**ids, "Options": {}},
            "RevokeExternalConnectivity": ids,
        }
        seen = []
        for method in OPTIONAL:
            r = ctx.post(f"/NetworkDriver.{method}", bodies[method])
            if not (r.status == 404 or r.ok):
                raise Failed(
                    f"{method} failed: an optional method it does not implement must be a 404",
                    "success, or HTTP 404",
                    r.describe(),
                )
            seen.append(f"{method} {'404' if r.status == 404 else 'ok'}")
    return Outcome.ok(", ".join(seen))


def interface_reply(ctx: Context) -> Outcome:
    with ctx.network() as net, ctx.endpoint(net) as ep:
        body = ep["create"].body if isinstance(ep["create"].body, dict) else {}
        interface = body.get("Interface")
        if interface and any(v for v in interface.values()):
            raise Failed(
                "CreateEndpoint got an Interface and answered a non-empty one: dockerd rolls the endpoint back",
                '"Interface": {} (or null)',
                ep["create"].describe(),
            )
    return Outcome.ok()


def join_reply(ctx: Context) -> Outcome:
    with ctx.network() as net, ctx.endpoint(net) as ep:
        body = ep["join"].body if isinstance(ep["join"].body, dict) else {}
        name = body.get("InterfaceName") or {}
        src, prefix = name.get("SrcName"), name.get("DstPrefix")
        if not src or not prefix:
            raise Failed(
                "InterfaceName lacks SrcName or DstPrefix",
                '{"SrcName": "…", "DstPrefix": "eth"}',
                ep["join"].describe(),
            )
        if src not in ctx.side.links():
            raise Failed(
                f"SrcName {src} is not an interface where dockerd runs: dockerd cannot move it",
                f"{src} among the interfaces",
                ", ".join(sorted(ctx.side.links())),
            )
        if body.get("Gateway") and not is_ip(body["Gateway"]):
            raise Failed(f"Gateway {body['Gateway']!r} is not an IP address", "an IP address", ep["join"].describe())
        for route in body.get("StaticRoutes") or []:
            kind, hop = route.get("RouteType"), route.get("NextHop")
            if (
                not is_cidr(route.get("Destination"))
                or kind not in (0, 1)
                or (kind == 0) != bool(hop)
                or (hop and not is_ip(hop))
            ):
                raise Failed(
                    f"static route {route} is malformed",
                    "Destination in CIDR; RouteType 0 with NextHop, or 1 (connected) without",
                    ep["join"].describe(),
                )
        if "DisableGatewayService" in body and not isinstance(body["DisableGatewayService"], bool):
            raise Failed("DisableGatewayService is not a boolean", "true or false", ep["join"].describe())
    return Outcome.ok(f"{src} -> {prefix}N")


def oper_info(ctx: Context) -> Outcome:
    with ctx.network() as net, ctx.endpoint(net) as ep:
        r = ctx.post(
            "/NetworkDriver.EndpointOperInfo", {"NetworkID": net["network_id"], "EndpointID": ep["endpoint_id"]}
        )
        if not r.ok or not isinstance(r.body, dict) or not isinstance(r.body.get("Value", {}), dict):
            raise Failed("EndpointOperInfo did not answer a Value map", '{"Value": {…}}', r.describe())
    return Outcome.ok()


def delete_cleans(ctx: Context) -> Outcome:
    with ctx.network() as net:
        with ctx.endpoint(net) as ep:
            src = ((ep["join"].body or {}).get("InterfaceName") or {}).get("SrcName", "")
            ids = {"NetworkID": net["network_id"], "EndpointID": ep["endpoint_id"]}
            for method in ("Leave", "DeleteEndpoint"):
                r = ctx.post(f"/NetworkDriver.{method}", ids)
                if not r.ok:
                    raise Failed(f"{method} failed", "HTTP 200", r.describe())
            ep.pop("join"), ep.pop("create")
        deadline = time.monotonic() + ctx.subject.settle_s
        while src and src in ctx.side.links() and time.monotonic() < deadline:
            time.sleep(0.1)
        if src and src in ctx.side.links():
            raise Failed(
                f"{src} is still there {ctx.subject.settle_s:g} s after DeleteEndpoint", f"no {src}", f"{src} present"
            )
        r = ctx.post("/NetworkDriver.DeleteNetwork", {"NetworkID": net["network_id"]})
        if not r.ok:
            raise Failed("DeleteNetwork failed", "HTTP 200", r.describe())
        net.pop("created", None)
    return Outcome.ok()


def _pool_request(ctx: Context) -> dict[str, Any]:
    space = ctx.must("/IpamDriver.GetDefaultAddressSpaces").get("LocalDefaultAddressSpace", "")
    return {"AddressSpace": space, "Pool": "", "SubPool": "", "Options": {}, "V6": False}


def pool_idempotent(ctx: Context) -> Outcome:
    request = _pool_request(ctx)
    first = ctx.must("/IpamDriver.RequestPool", request)
    second = ctx.must("/IpamDriver.RequestPool", request)
    try:
        for key in ("PoolID", "Pool", "Data"):
            if first.get(key) != second.get(key):
                raise Failed(f"two identical RequestPool calls answered different {key}", str(first), str(second))
        if not first.get("PoolID") or not is_cidr(first.get("Pool")):
            raise Failed(
                "RequestPool's answer lacks a PoolID or a Pool in CIDR form", "{PoolID, Pool, Data}", str(first)
            )
    finally:
        for _ in range(2):
            ctx.post("/IpamDriver.ReleasePool", {"PoolID": first.get("PoolID", "")})
    return Outcome.ok(f"{first['PoolID']} {first['Pool']}")


def pool_refcounted(ctx: Context) -> Outcome:
    request = _pool_request(ctx)
    pool = ctx.must("/IpamDriver.RequestPool", request)["PoolID"]
    ctx.must("/IpamDriver.RequestPool", request)
    ctx.must("/IpamDriver.ReleasePool", {"PoolID": pool})
    r = ctx.post("/IpamDriver.RequestAddress", {"PoolID": pool, "Address": "", "Options": {}})
    try:
        if not r.ok or not isinstance(r.body, dict) or not r.body.get("Address"):
            raise Failed(
                "after two RequestPool and one ReleasePool the pool is gone",
                "the pool still serves addresses",
                r.describe(),
            )
    finally:
        if r.ok and isinstance(r.body, dict) and r.body.get("Address"):
            ctx.post("/IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": r.body["Address"]})
        ctx.post("/IpamDriver.ReleasePool", {"PoolID": pool})
    return Outcome.ok()


def gateway_request(ctx: Context) -> Outcome:
    pool = ctx.must("/IpamDriver.RequestPool", _pool_request(ctx))
    try:
        r = ctx.post(
            "/IpamDriver.RequestAddress",
            {"PoolID": pool["PoolID"], "Address": "", "Options": {"RequestAddressType": GATEWAY}},
        )
        address = r.body.get("Address") if isinstance(r.body, dict) else None
        if not r.ok or not is_cidr(address):
            raise Failed(
                "the gateway request did not answer an address in CIDR form", '{"Address": "A.B.C.D/M"}', r.describe()
            )
        announced = (pool.get("Data") or {}).get(GATEWAY)
        if announced and ipaddress.ip_interface(announced).ip != ipaddress.ip_interface(str(address)).ip:
            raise Failed(
                f"RequestPool announced gateway {announced}, the gateway request answered {address}",
                announced,
                str(address),
            )
        ctx.post("/IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": address})
    finally:
        ctx.post("/IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})
    return Outcome.ok(str(address))


def request_address(ctx: Context) -> Outcome:
    pool = ctx.must("/IpamDriver.RequestPool", _pool_request(ctx))
    got: list[str] = []
    try:
        for _ in range(2):
            r = ctx.post("/IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": {}})
            address = r.body.get("Address") if isinstance(r.body, dict) else None
            if not r.ok or not is_cidr(address):
                raise Failed(
                    "RequestAddress did not answer an address in CIDR form", '{"Address": "A.B.C.D/MM"}', r.describe()
                )
            got.append(str(address))
        network = ipaddress.ip_network(pool["Pool"], strict=False)
        outside = [a for a in got if ipaddress.ip_interface(a).ip not in network]
        if outside:
            raise Failed(f"{', '.join(outside)} outside the pool {pool['Pool']}", pool["Pool"], ", ".join(got))
        if got[0] == got[1]:
            raise Failed(f"two requests got the same address {got[0]}", "distinct addresses", ", ".join(got))
    finally:
        for address in got:
            ctx.post("/IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": address})
        ctx.post("/IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})
    return Outcome.ok(", ".join(got))


def release_address(ctx: Context) -> Outcome:
    pool = ctx.must("/IpamDriver.RequestPool", _pool_request(ctx))
    try:
        first = ctx.must("/IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": {}})[
            "Address"
        ]
        ctx.must("/IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": first})
        bare = str(ipaddress.ip_interface(first).ip)
        r = ctx.post("/IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": bare, "Options": {}})
        again = r.body.get("Address") if isinstance(r.body, dict) else None
        if not r.ok or not again or str(ipaddress.ip_interface(again).ip) != bare:
            raise Failed(f"{bare}, just released, cannot be requested again", f'{{"Address": "{first}"}}', r.describe())
        ctx.post("/IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": again})
    finally:
        ctx.post("/IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})
    return Outcome.ok(f"{bare} released and taken again")


RULES: list[Rule[Context]] = [
    Rule("handshake.activate", "Plugin.Activate answers the interfaces it implements",
         remote("Handshake", "handshake", "When loaded, a remote driver process receives an HTTP POST on the URL `/Plugin.Activate` with no payload. It must respond with a manifest"),
         activate, always=True),
    Rule("network.capabilities", "GetCapabilities answers a Scope dockerd accepts",
         remote("Set capability", "set-capability", "Value of \"Scope\" should be either \"local\" or \"global\" … Any other value will fail driver's registration"),
         network_capabilities, needs=NETWORK_DRIVER),
    Rule("ipam.capabilities", "IPAM GetCapabilities answers booleans, or 404",
         ipam("GetCapabilities", "getcapabilities", "It is not mandatory for the driver to support this URL endpoint."),
         ipam_capabilities, needs=IPAM_DRIVER),
    Rule("ipam.address-spaces", "GetDefaultAddressSpaces names both address spaces",
         ipam("GetDefaultAddressSpaces", "getdefaultaddressspaces", "GetDefaultAddressSpaces returns the default local and global address space names for this IPAM."),
         address_spaces, needs=IPAM_DRIVER),
    Rule("errors.bad-payload", "a body that is not JSON is an HTTP error",
         remote("Errors", "errors", "If the remote process cannot decode, or otherwise detects a syntactic problem with the HTTP request or payload, it must respond with an HTTP error status (4xx or 5xx)."),
         bad_payload),
    Rule("errors.unknown-method", "an unknown method is a 404",
         remote("Errors", "errors", "If the remote process http server receives a request for an unknown URI, it should respond with the HTTP StatusCode `404 Not Found`."),
         unknown_method),
    Rule("errors.optional-methods", "an optional method succeeds or is a 404, never a failure",
         remote("Errors", "errors", "This allows LibNetwork to detect when a remote driver does not implement yet a newly added method, therefore not to deem the request as failed."),
         optional_methods, needs=NETWORK_DRIVER),
    Rule("endpoint.interface-reply", "CreateEndpoint given an Interface answers an empty one",
         remote("Create endpoint", "create-endpoint", "If the remote process was supplied a non-empty value in `Interface`, it must respond with an empty `Interface` value."),
         interface_reply, needs=NETWORK_DRIVER),
    Rule("endpoint.join-reply", "Join names an interface dockerd can move, with a well-formed gateway and routes",
         remote("Join", "join", "The entries in `InterfaceName` represent actual OS level interfaces that should be moved by LibNetwork into the sandbox"),
         join_reply, needs=NETWORK_DRIVER),
    Rule("endpoint.oper-info", "EndpointOperInfo answers a Value map",
         remote("Endpoint operational info", "endpoint-operational-info", "It must send a response of the form {\"Value\": { ... }}"),
         oper_info, needs=NETWORK_DRIVER),
    Rule("endpoint.delete-cleans", "Leave, DeleteEndpoint and DeleteNetwork succeed, and the interface goes",
         remote("Delete endpoint", "delete-endpoint", "When an endpoint is deleted, the remote process shall receive a POST to the URL `/NetworkDriver.DeleteEndpoint`"),
         delete_cleans, needs=NETWORK_DRIVER),
    Rule("ipam.pool-idempotent", "identical RequestPool calls answer the same pool",
         ipam("RequestPool", "requestpool", "Multiple identical calls must return the same result."),
         pool_idempotent, needs=IPAM_DRIVER),
    Rule("ipam.pool-refcounted", "a pool requested twice outlives one ReleasePool",
         ipam("RequestPool", "requestpool", "It is the IPAM driver's responsibility to keep a reference count for the pool."),
         pool_refcounted, needs=IPAM_DRIVER),
    Rule("ipam.gateway-request", "the gateway request (RequestAddressType) answers the pool's gateway in CIDR form",
         seed("000_185a468d9b98e65a.txt", "creating the network: Gateway", "the gateway is required; when RequestPool does not return it, dockerd calls RequestAddress for it"),
         gateway_request, needs=IPAM_DRIVER),
    Rule("ipam.request-address", "RequestAddress answers distinct addresses of the pool in CIDR form",
         ipam("RequestAddress", "requestaddress", "`Address` is the allocated address in CIDR format (A.B.C.D/MM)"),
         request_address, needs=IPAM_DRIVER),
    Rule("ipam.release-address", "an address released can be requested again",
         ipam("ReleaseAddress", "releaseaddress", "This API is for releasing an IP address."),
         release_address, needs=IPAM_DRIVER),
]  # fmt: skip

LAST: list[Rule[Context]] = [
    Rule("errors.err-field", "every failure carries its message where dockerd reads it (Err; a 200 IPAM reply's Error)",
         remote("Errors", "errors", "If the remote process can decode the request, but cannot complete the operation, it must send a response in the form {\"Err\": string}"),
         err_field),
]  # fmt: skip
